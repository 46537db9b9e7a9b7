package pipeline

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

type instant struct{}

func (instant) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	return jobs.Attempt{ExitCode: 0}
}

// BenchmarkResourcePacking: n tasks of one CPU with a task of every CPU after each
// 100, on 4 CPUs and 8 workers, with a runner that returns at once: the scheduler's
// own cost, a large task waiting in line most of the time.
func BenchmarkResourcePacking(b *testing.B) {
	for _, n := range []int{5000, 20000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var sb strings.Builder
			sb.WriteString("tasks:\n")
			for i := range n {
				cpu := 1
				if i%100 == 50 {
					cpu = 4
				}
				fmt.Fprintf(&sb, "  - {run: x, resources: {cpu: %d}}\n", cpu)
			}
			f, err := input.Parse("b.yaml", []byte(sb.String()))
			if err != nil {
				b.Fatal(err)
			}
			tasks := f.Tasks(jobs.Settings{})
			c := jobs.Capacity{MilliCPU: 4000}
			b.ResetTimer()
			for range b.N {
				opts := Options{Workers: 8, Capacity: &c, Runner: instant{}, Output: None, Stdout: io.Discard, Stderr: io.Discard}
				if err := Run(context.Background(), input.NewSliceSource(tasks), opts, func(jobs.Result) {}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
