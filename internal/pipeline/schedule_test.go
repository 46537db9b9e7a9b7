package pipeline

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

// sleeper is a fake runner whose tasks take the time their command names
// ("sleep-250ms"; anything else takes no time) and end as their command says
// ("fail" exits 1). It records the order and time of each start.
type sleeper struct {
	mu     sync.Mutex
	order  []string
	starts map[string]time.Time
	ends   map[string]time.Time
}

func (s *sleeper) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	now := time.Now()
	s.mu.Lock()
	if s.starts == nil {
		s.starts, s.ends = map[string]time.Time{}, map[string]time.Time{}
	}
	s.order = append(s.order, t.ID)
	s.starts[t.ID] = now
	s.mu.Unlock()
	a := jobs.Attempt{Start: now}
	if d, ok := strings.CutPrefix(t.Run, "sleep-"); ok {
		dur, _ := time.ParseDuration(d)
		select {
		case <-ctx.Done():
			a.ExitCode, a.Stopped = -1, true
		case <-time.After(dur):
		}
	}
	if t.Run == "fail" {
		a.ExitCode = 1
	}
	if code, ok := strings.CutPrefix(t.Run, "exit-"); ok {
		fmt.Sscan(code, &a.ExitCode)
	}
	a.Duration = time.Since(now)
	s.mu.Lock()
	s.ends[t.ID] = time.Now()
	s.mu.Unlock()
	return a
}

// runFile runs the task file src with the sleeper and returns it.
func runFile(t testing.TB, src string, opts Options) *sleeper {
	sl, _ := runFileResults(t, src, opts)
	return sl
}

// runFileResults runs the task file src with the sleeper and returns it, and the
// results by task id.
func runFileResults(t testing.TB, src string, opts Options) (*sleeper, map[string]jobs.Result) {
	t.Helper()
	f, err := input.Parse("s.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	sl := &sleeper{}
	opts.Runner, opts.Output, opts.Stdout, opts.Stderr = sl, None, io.Discard, io.Discard
	results := map[string]jobs.Result{}
	if err := Run(context.Background(), input.NewGraphSource(f.Tasks(jobs.Settings{}), f.Needs), opts, func(r jobs.Result) { results[r.ID] = r }); err != nil {
		t.Fatal(err)
	}
	if len(results) != f.Len() {
		t.Fatalf("got %d results, want %d", len(results), f.Len())
	}
	return sl, results
}

func TestPriorityStartsHighestFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sl := runFile(t, `tasks:
  - {id: a, run: sleep-1s}
  - {id: b, run: sleep-1s, priority: 5}
  - {id: c, run: sleep-1s, priority: 1}
  - {id: d, run: sleep-1s, priority: 5}
  - {id: e, run: sleep-1s, priority: -1}
  - {id: f, run: sleep-1s}
`, Options{Workers: 1})
		if want := []string{"b", "d", "c", "a", "f", "e"}; !slices.Equal(sl.order, want) {
			t.Errorf("got start order %v, want %v", sl.order, want)
		}
	})
}

func TestInputOrderIgnoresPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sl := runFile(t, "tasks:\n  - {id: a, run: x}\n  - {id: b, run: x, priority: 5}\n", Options{Workers: 1, InputOrder: true})
		if want := []string{"a", "b"}; !slices.Equal(sl.order, want) {
			t.Errorf("got start order %v, want %v", sl.order, want)
		}
	})
}

// TestCriticalPathFirst: among ready tasks of equal priority, the one with the longest
// chain of expected work after it starts first; a task's estimate counts for its
// chain, and a task without one counts 1s.
func TestCriticalPathFirst(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"chain length", `tasks:
  - {id: a, run: x}
  - {id: b, run: x}
  - {id: c, run: x, needs: [b]}
  - {id: d, run: x, needs: [c]}
  - {id: e, run: x}
`, []string{"b", "c", "a", "e", "d"}},
		{"estimates", `tasks:
  - {id: a, run: x, estimate: 10s}
  - {id: b, run: x}
  - {id: c, run: x, needs: [b], estimate: 2s}
  - {id: d, run: x, needs: [c]}
  - {id: e, run: x, estimate: 3s}
`, []string{"a", "b", "e", "c", "d"}},
		{"priority before the critical path", `tasks:
  - {id: a, run: x}
  - {id: b, run: x}
  - {id: c, run: x, needs: [b]}
  - {id: e, run: x, priority: 1}
`, []string{"e", "b", "a", "c"}},
		{"a dependant made ready starts before tasks that waited", `tasks:
  - {id: long, run: x, estimate: 5s}
  - {id: x1, run: x, estimate: 2s}
  - {id: x2, run: x, estimate: 2s}
  - {id: after, run: x, needs: [long], estimate: 3s}
`, []string{"long", "after", "x1", "x2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sl := runFile(t, tt.file, Options{Workers: 1})
				if !slices.Equal(sl.order, tt.want) {
					t.Errorf("got start order %v, want %v", sl.order, tt.want)
				}
			})
		})
	}
}

// TestRetryKeepsItsPriority: a retry waits its delay, then starts before the
// lower-priority tasks that are ready.
func TestRetryKeepsItsPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sl := runFile(t, `tasks:
  - {id: hi, run: fail, priority: 9, retries: 1, retry_delay: 1ms}
  - {id: lo1, run: sleep-1s}
  - {id: lo2, run: sleep-1s}
`, Options{Workers: 1, Jitter: func() float64 { return 1 }})
		if want := []string{"hi", "lo1", "hi", "lo2"}; !slices.Equal(sl.order, want) {
			t.Errorf("got start order %v, want %v", sl.order, want)
		}
	})
}

// randomDAG writes a task file of n tasks, from seed: each needs up to 2 of the 10
// tasks before it, and takes a skewed time, Pareto-distributed (α 1.2, at least
// 10ms, at most 2s: most tasks are short, a few are long). With estimates, each
// task's estimate is its time.
func randomDAG(seed uint64, n int, estimates bool) string {
	rng := rand.New(rand.NewPCG(seed, 0))
	var b strings.Builder
	b.WriteString("tasks:\n")
	for i := range n {
		d := time.Duration(float64(10*time.Millisecond) * math.Pow(1-rng.Float64(), -1/1.2))
		d = min(d.Round(time.Millisecond), 2*time.Second)
		fmt.Fprintf(&b, "  - {id: t%d, run: sleep-%v", i, d)
		if estimates {
			fmt.Fprintf(&b, ", estimate: %v", d)
		}
		var needs []string
		for k := rng.IntN(3); k > 0 && i > 0; k-- {
			needs = append(needs, fmt.Sprintf("t%d", max(0, i-1-rng.IntN(10))))
		}
		if len(needs) > 0 {
			fmt.Fprintf(&b, ", needs: [%s]", strings.Join(needs, ", "))
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// makespan is the time from the first start to the last end.
func (s *sleeper) makespan() time.Duration {
	var first, last time.Time
	for id, st := range s.starts {
		if first.IsZero() || st.Before(first) {
			first = st
		}
		if e := s.ends[id]; e.After(last) {
			last = e
		}
	}
	return last.Sub(first)
}

// TestCriticalPathShortensRandomDAGs: on seeded random graphs of 200 tasks with
// skewed durations at 4 workers, critical path first ends at least 10% sooner than
// input order on average, and never much later on any one graph (in the bubble's
// time, which only the fake tasks advance, so the numbers are exact).
func TestCriticalPathShortensRandomDAGs(t *testing.T) {
	const seeds = 6
	var gain float64
	for seed := range uint64(seeds) {
		file := randomDAG(seed+1, 200, true)
		var cp, in time.Duration
		synctest.Test(t, func(t *testing.T) { cp = runFile(t, file, Options{Workers: 4}).makespan() })
		synctest.Test(t, func(t *testing.T) { in = runFile(t, file, Options{Workers: 4, InputOrder: true}).makespan() })
		g := 1 - cp.Seconds()/in.Seconds()
		gain += g / seeds
		t.Logf("seed %d: critical path first %v, input order %v (%.1f%% shorter)", seed+1, cp, in, 100*g)
		if cp > in*105/100 {
			t.Errorf("seed %d: critical path first took %v, input order %v: want no more than 5%% longer", seed+1, cp, in)
		}
	}
	if gain < 0.10 {
		t.Errorf("critical path first is %.1f%% shorter on average, want at least 10%%", 100*gain)
	}
}
