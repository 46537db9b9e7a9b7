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
