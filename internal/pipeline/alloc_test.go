package pipeline

import (
	"context"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

// noopRunner "runs" a task in no time; with out set it prints one short line, as
// many real tasks do.
type noopRunner struct{ out bool }

func (n noopRunner) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	if n.out {
		_, _ = stdout.Write([]byte("done\n"))
	}
	return jobs.Attempt{Start: time.Now(), ExitCode: 0}
}

// runNoop runs n no-op tasks from a stream of lines, as `gorun exec -` does, with the
// output mode given.
func runNoop(tb testing.TB, n int, mode Output, r noopRunner) {
	src := input.NewLineSource("stdin", io.NopCloser(&lines{n: n}), input.LineOptions{})
	opts := Options{Workers: 2, Runner: r, Output: mode, Stdout: io.Discard, Stderr: io.Discard}
	count := 0
	if err := Run(context.Background(), src, opts, func(jobs.Result) { count++ }); err != nil {
		tb.Fatal(err)
	}
	if count != n {
		tb.Fatalf("got %d results, want %d", count, n)
	}
}

// BenchmarkNoopTask measures what the pipeline itself costs a task (reading its line,
// the pool, the captures, the result, the printer) with a runner that costs nothing:
// allocs/op is allocations per task.
func BenchmarkNoopTask(b *testing.B) {
	for _, c := range []struct {
		name string
		mode Output
		r    noopRunner
	}{{"grouped", Grouped, noopRunner{}}, {"grouped-output", Grouped, noopRunner{out: true}}, {"line-output", Line, noopRunner{out: true}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			runNoop(b, b.N, c.mode, c.r)
		})
	}
}

// maxAllocsPerNoopTask bounds the pipeline's allocations per task: the line's text,
// the task and its result, the pool's job and channel traffic, the summary's copy.
// Capture buffers are reused, so the bound holds whatever the task prints.
const maxAllocsPerNoopTask = 30

// TestAllocsPerNoopTask holds the pipeline's allocations per task under
// maxAllocsPerNoopTask, and its bytes per task under 4 KiB, for tasks that print
// nothing and for tasks that print a line.
func TestAllocsPerNoopTask(t *testing.T) {
	const n = 20_000
	for _, c := range []struct {
		name string
		mode Output
		r    noopRunner
	}{{"grouped", Grouped, noopRunner{}}, {"grouped-output", Grouped, noopRunner{out: true}}, {"line-output", Line, noopRunner{out: true}}} {
		t.Run(c.name, func(t *testing.T) {
			runNoop(t, 100, c.mode, c.r) // warm up: pools, buffers
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			runNoop(t, n, c.mode, c.r)
			runtime.ReadMemStats(&after)
			allocs := float64(after.Mallocs-before.Mallocs) / n
			bytes := float64(after.TotalAlloc-before.TotalAlloc) / n
			t.Logf("%s: %.1f allocations, %.0f bytes per task", c.name, allocs, bytes)
			if allocs > maxAllocsPerNoopTask {
				t.Errorf("got %.1f allocations per task, want at most %d", allocs, maxAllocsPerNoopTask)
			}
			if bytes > 4096 {
				t.Errorf("got %.0f bytes allocated per task, want at most 4096", bytes)
			}
		})
	}
}
