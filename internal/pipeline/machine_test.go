package pipeline

import (
	"context"
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
)

// fakeMachine's load and memory follow a script of the bubble's time.
type fakeMachine struct {
	start time.Time
	load  func(since time.Duration) float64
	free  func(since time.Duration) uint64
}

func (m *fakeMachine) Load() (float64, string, error) {
	return m.load(time.Since(m.start)), "fake load", nil
}

func (m *fakeMachine) MemAvailable() (uint64, error) { return m.free(time.Since(m.start)), nil }

// TestLoadHoldsBackStarts: while the load is above --load nothing starts; running
// tasks go on; once it drops, the tasks start within a reading.
func TestLoadHoldsBackStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &fakeMachine{start: time.Now(),
			load: func(s time.Duration) float64 {
				if s < 3*time.Second {
					return 9
				}
				return 1
			},
			free: func(time.Duration) uint64 { return 1 << 40 }}
		var waits []string
		sl := &sleeper{}
		opts := Options{Workers: 4, MaxLoad: 4, Machine: m, Waiting: func(why string) { waits = append(waits, why) },
			Runner: sl, Output: None, Stdout: io.Discard, Stderr: io.Discard}
		start := time.Now()
		if err := Run(context.Background(), input.NewSliceSource(shellTasks("sleep-1s", "sleep-1s")), opts, func(jobs.Result) {}); err != nil {
			t.Fatal(err)
		}
		for id, st := range sl.starts {
			if at := st.Sub(start); at != 3*time.Second {
				t.Errorf("%s started at %v, want 3s: when the load dropped, at the next reading", id, at)
			}
		}
		if len(waits) != 2 || waits[0] != "load: fake load 9.00 above 4" || waits[1] != "" {
			t.Errorf("got waits %q, want the load, then no more waiting", waits)
		}
	})
}

// TestMemfreeHoldsBackStarts: while less memory than --memfree is available, nothing
// starts.
func TestMemfreeHoldsBackStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &fakeMachine{start: time.Now(), load: func(time.Duration) float64 { return 0 },
			free: func(s time.Duration) uint64 {
				if s < 2*time.Second {
					return 100 << 20
				}
				return 2 << 30
			}}
		var waits []string
		sl := &sleeper{}
		opts := Options{Workers: 2, MinFree: 1 << 30, Machine: m, Waiting: func(why string) { waits = append(waits, why) },
			Runner: sl, Output: None, Stdout: io.Discard, Stderr: io.Discard}
		start := time.Now()
		if err := Run(context.Background(), input.NewSliceSource(shellTasks("x")), opts, func(jobs.Result) {}); err != nil {
			t.Fatal(err)
		}
		if at := sl.starts["task-1"].Sub(start); at != 2*time.Second {
			t.Errorf("started at %v, want 2s", at)
		}
		if len(waits) == 0 || !strings.HasPrefix(waits[0], "memfree: 100MiB available, below 1GiB") {
			t.Errorf("got waits %q", waits)
		}
	})
}

func TestProcMachineReads(t *testing.T) {
	load, source, err := ProcMachine{}.Load()
	if err != nil || load < 0 || source == "" {
		t.Errorf("Load: %v %q %v", load, source, err)
	}
	if free, err := (ProcMachine{}).MemAvailable(); err != nil || free == 0 {
		t.Errorf("MemAvailable: %v %v", free, err)
	}
}

// TestMemfreeStopsTheYoungest: below half of --memfree, the youngest running task is
// stopped and queued again (the attempt uses no retry), one a reading, never the last
// one running; it runs again once memory is back.
func TestMemfreeStopsTheYoungest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &fakeMachine{start: time.Now(), load: func(time.Duration) float64 { return 0 },
			free: func(s time.Duration) uint64 {
				if s >= 1500*time.Millisecond && s < 4*time.Second {
					return 100 << 20 // below half of 1GiB
				}
				return 2 << 30
			}}
		sl := &sleeper{}
		opts := Options{Workers: 3, MinFree: 1 << 30, Machine: m, Runner: sl, Output: None, Stdout: io.Discard, Stderr: io.Discard}
		results := map[string]jobs.Result{}
		tasks := shellTasks("sleep-5s", "sleep-5s", "sleep-5s")
		tasks[2].Retries = 1
		start := time.Now()
		if err := Run(context.Background(), input.NewSliceSource(tasks), opts, func(r jobs.Result) { results[r.ID] = r }); err != nil {
			t.Fatal(err)
		}
		// Readings at 0, 1, 2, 3, 4 s...: at 2 s task-3 (the youngest) is stopped, at 3 s
		// task-2; task-1 runs on. From 4 s memory is back: both start again.
		for id, want := range map[string]int{"task-1": 1, "task-2": 2, "task-3": 2} {
			r := results[id]
			if r.Status != jobs.Succeeded || r.Attempts != want || r.RetryLog != nil {
				t.Errorf("%s: got %s after %d attempts, retry log %v; want succeeded after %d, no retry used", id, r.Status, r.Attempts, r.RetryLog, want)
			}
		}
		if got := sl.starts["task-3"].Sub(start); got != 4*time.Second {
			t.Errorf("task-3 started again at %v, want 4s (memory back)", got)
		}
	})
}
