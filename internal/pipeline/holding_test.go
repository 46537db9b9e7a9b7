package pipeline

import (
	"context"
	"io"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
)

// holdingDuring runs tasks with opts and reads opts.Holding at 0.5 s, 1.5 s, 2.5 s
// ... of the bubble's time until the run ends, as a progress bar does.
func holdingDuring(t *testing.T, tasks []jobs.Task, opts Options) map[time.Duration]string {
	t.Helper()
	h := &Holding{}
	opts.Holding, opts.Output, opts.Stdout, opts.Stderr = h, None, io.Discard, io.Discard
	got := map[time.Duration]string{}
	done, read := make(chan struct{}), make(chan struct{})
	start := time.Now()
	go func() {
		defer close(read)
		time.Sleep(500 * time.Millisecond)
		for {
			got[time.Since(start)] = h.String()
			select {
			case <-done:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	if err := Run(context.Background(), input.NewSliceSource(tasks), opts, func(jobs.Result) {}); err != nil {
		t.Fatal(err)
	}
	close(done)
	<-read
	return got
}

func wantHolding(t *testing.T, got map[time.Duration]string, want map[time.Duration]string) {
	t.Helper()
	for _, at := range slices.Sorted(maps.Keys(want)) {
		if got[at] != want[at] {
			t.Errorf("at %v: got %q, want %q (all: %q)", at, got[at], want[at], got)
		}
	}
}

// TestHoldingSaysWhy: while a pool, the machine, a back-off or the rate holds the
// next start back, Holding says which; once nothing does, it says nothing.
func TestHoldingSaysWhy(t *testing.T) {
	t.Run("limit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f, err := input.Parse("l.yaml", []byte("limits: {api: {concurrency: 1}}\ntasks:\n"+
				"  - {id: a, run: sleep-1s, limits: [api]}\n  - {id: b, run: sleep-1s, limits: [api]}\n"))
			if err != nil {
				t.Fatal(err)
			}
			got := holdingDuring(t, f.Tasks(jobs.Settings{}), Options{Workers: 2, Limits: f.Limits, Runner: &sleeper{}})
			wantHolding(t, got, map[time.Duration]string{500 * time.Millisecond: "waiting: limit api", 1500 * time.Millisecond: ""})
		})
	})
	t.Run("memfree", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := &fakeMachine{start: time.Now(), load: func(time.Duration) float64 { return 0 },
				free: func(s time.Duration) uint64 {
					if s < 2*time.Second {
						return 100 << 20
					}
					return 2 << 30
				}}
			got := holdingDuring(t, shellTasks("sleep-1s"), Options{Workers: 2, MinFree: 1 << 30, Machine: m, Runner: &sleeper{}})
			wantHolding(t, got, map[time.Duration]string{500 * time.Millisecond: "waiting: memfree", 1500 * time.Millisecond: "waiting: memfree",
				2500 * time.Millisecond: ""})
		})
	})
	t.Run("back-off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// At once task-1 backs off: 2 of 4 may run, 3 run, and the others wait for
			// the window, which grows as tasks succeed (1 s and 2 s): the last ones
			// start at 2 s at the latest.
			got := holdingDuring(t, shellTasks("backoff-once", "x", "x", "x", "x", "x", "x"), Options{Workers: 4, BackoffCode: 75, Runner: &crowd{}})
			wantHolding(t, got, map[time.Duration]string{500 * time.Millisecond: "concurrency 2 of 4 after back-off", 2500 * time.Millisecond: ""})
		})
	})
	t.Run("rate", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			got := holdingDuring(t, shellTasks("x", "x", "x"), Options{Workers: 1, Limiter: rate.NewLimiter(1, 1), Runner: &sleeper{}})
			wantHolding(t, got, map[time.Duration]string{500 * time.Millisecond: "waiting: rate", 1500 * time.Millisecond: "waiting: rate"})
		})
	})
}
