package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

// fakeRunner "runs" a task by writing its command to stdout, after a short random
// sleep when jitter is set.
type fakeRunner struct{ jitter time.Duration }

func (f fakeRunner) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	start := time.Now()
	if f.jitter > 0 {
		time.Sleep(time.Duration(rand.Int64N(int64(f.jitter))))
	}
	fmt.Fprintf(stdout, "out %s\n", t.Command())
	fmt.Fprintf(stderr, "err %s\n", t.Command())
	return jobs.Attempt{Start: start, Duration: time.Since(start), ExitCode: 0}
}

// lines generates n input lines without holding them.
type lines struct{ n, i int }

func (l *lines) Read(p []byte) (int, error) {
	w := 0
	for l.i < l.n {
		s := fmt.Sprintf("task number %d\n", l.i)
		if w+len(s) > len(p) {
			break
		}
		w += copy(p[w:], s)
		l.i++
	}
	if w == 0 {
		return 0, io.EOF
	}
	return w, nil
}

// peakHeap runs f and returns the highest live heap (as the last GC measured it) seen
// while it ran.
func peakHeap(f func()) uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}} // marked live by the last GC: garbage does not count
	var peak uint64
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				metrics.Read(sample)
				mu.Lock()
				peak = max(peak, sample[0].Value.Uint64())
				mu.Unlock()
			}
		}
	}()
	f()
	close(stop)
	<-done
	return peak
}

func TestMemoryDoesNotGrowWithInput(t *testing.T) {
	if testing.Short() {
		t.Skip("streams a million lines")
	}
	run := func(n int) (uint64, int) {
		count := 0
		peak := peakHeap(func() {
			src := input.NewLineSource("stdin", io.NopCloser(&lines{n: n}), input.LineOptions{})
			opts := Options{Workers: 8, Runner: fakeRunner{}, Output: Grouped, Stdout: io.Discard, Stderr: io.Discard}
			if err := Run(context.Background(), src, opts, func(jobs.Result) { count++ }); err != nil {
				t.Fatal(err)
			}
		})
		return peak, count
	}
	small, n1 := run(100_000)
	large, n2 := run(1_000_000)
	if n1 != 100_000 || n2 != 1_000_000 {
		t.Fatalf("got %d and %d results, want every line run", n1, n2)
	}
	t.Logf("peak live heap: %.1f MiB for 100k lines, %.1f MiB for 1M lines", float64(small)/(1<<20), float64(large)/(1<<20))
	// Generous slack over the 1.1x target: the garbage collector's timing differs per run.
	if large > small*3/2+(4<<20) {
		t.Errorf("peak heap %d bytes for 1M lines, %d for 100k: memory grows with the input", large, small)
	}
}

func TestKeepOrderUnderRandomDurations(t *testing.T) {
	for _, mode := range []Output{Grouped, Line, Tag, JSONL} {
		t.Run(string(mode), func(t *testing.T) {
			var cmds []string
			for i := 1; i <= 60; i++ {
				cmds = append(cmds, fmt.Sprintf("t%02d", i))
			}
			var out, errOut bytes.Buffer
			var order []int
			opts := Options{Workers: 8, Runner: fakeRunner{jitter: 5 * time.Millisecond}, Output: mode, KeepOrder: true, Stdout: &out, Stderr: &errOut}
			err := Run(context.Background(), input.NewSliceSource(shellTasks(cmds...)), opts, func(r jobs.Result) { order = append(order, r.Index) })
			if err != nil {
				t.Fatal(err)
			}
			for i, idx := range order {
				if idx != i+1 {
					t.Fatalf("result %d is task %d, want input order", i+1, idx)
				}
			}
			got := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(got) != 60 {
				t.Fatalf("got %d stdout lines, want 60", len(got))
			}
			for i, line := range got {
				want := fmt.Sprintf("out t%02d", i+1)
				switch mode {
				case Tag:
					want = fmt.Sprintf("task-%d\t%s", i+1, want)
				case JSONL:
					var r jobs.Result
					if err := json.Unmarshal([]byte(line), &r); err != nil {
						t.Fatal(err)
					}
					line = r.StdoutTail[:len(r.StdoutTail)-1]
				}
				if line != want {
					t.Fatalf("stdout line %d: got %q, want %q", i+1, line, want)
				}
			}
		})
	}
}

func TestKeepOrderSpillsBeyondItsBound(t *testing.T) {
	// Task 1 is slow; the 1000 after it, each with 64 KiB of output, must wait for it:
	// 64 MiB in all, four times what keep-order holds in memory.
	big := strings.Repeat("x", 64<<10-1) + "\n"
	slow := make(chan struct{})
	runner := runnerFunc(func(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
		if t.Index == 1 {
			<-slow
		} else if t.Index == 1001 {
			close(slow)
		}
		fmt.Fprintf(stdout, "%d:%s", t.Index, big)
		return jobs.Attempt{Start: time.Now(), ExitCode: 0}
	})
	var cmds []string
	for i := 0; i < 1001; i++ {
		cmds = append(cmds, "x")
	}
	var out bytes.Buffer
	peak := peakHeap(func() {
		opts := Options{Workers: 4, Runner: runner, Output: Grouped, KeepOrder: true, Stdout: &limitedBuffer{&out}, Stderr: io.Discard}
		if err := Run(context.Background(), input.NewSliceSource(shellTasks(cmds...)), opts, func(jobs.Result) {}); err != nil {
			t.Fatal(err)
		}
	})
	chunks := strings.SplitAfter(out.String(), "\n")
	for i := 1; i <= 1001; i++ {
		if !strings.HasPrefix(chunks[i-1], fmt.Sprintf("%d:x", i)) {
			t.Fatalf("output chunk %d starts %q, want task %d's", i, chunks[i-1][:10], i)
		}
	}
	t.Logf("peak live heap %.1f MiB while 64 MiB of output waited", float64(peak)/(1<<20))
	if peak > 48<<20 {
		t.Errorf("peak live heap %d MiB, want the waiting output spilled to disk (bound 16 MiB)", peak>>20)
	}
}

// limitedBuffer keeps only the first 16 bytes of each write, so that the test's own
// record of the output does not count as gorun's memory.
type limitedBuffer struct{ b *bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	for _, line := range bytes.SplitAfter(p, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		l.b.Write(line[:min(16, len(line))])
		if line[len(line)-1] == '\n' && len(line) > 16 {
			l.b.WriteByte('\n')
		}
	}
	return len(p), nil
}

type runnerFunc func(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt

func (f runnerFunc) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	return f(ctx, t, slot, attempt, stdout, stderr)
}

func TestKeepOrderSpillKeepsWholeResults(t *testing.T) {
	var got []jobs.Result
	p := newPrinter(&Options{Output: None, KeepOrder: true, Stdout: io.Discard, Stderr: io.Discard}, func(r jobs.Result) { got = append(got, r) })
	code := 3
	want := make([]jobs.Result, 20)
	for i := range want {
		want[i] = jobs.Result{
			ID: fmt.Sprintf("t%d", i+1), Index: i + 1, Key: fmt.Sprintf("t%d:hash", i+1),
			Command: strings.Repeat("c", 1<<20), // 20 MiB in all: beyond the 16 MiB held in memory
			Status:  jobs.Failed, ExitCode: &code, Signal: "SIGTERM", Attempts: 2, Slot: 3,
			StartedAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Duration: jobs.Seconds(123456789012345 + i),
			StdoutTail: "out", StdoutBytes: 10, StderrTail: "err", StderrBytes: 20, Error: "why",
		}
	}
	for i := len(want) - 1; i >= 1; i-- { // every task waits for task 1
		p.add(want[i], nil)
	}
	if p.spill == nil {
		t.Fatal("got nothing spilled, want the held results beyond 16 MiB in the spill file")
	}
	p.add(want[0], nil)
	p.finish()
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			g, w := got[i], want[i]
			g.Command, w.Command = "…", "…"
			g.ExitCode, w.ExitCode = nil, nil
			t.Errorf("result %d: got %+v (exit %v), want %+v (exit %d)", i+1, g, got[i].ExitCode, w, code)
		}
	}
}

func TestAbortStopsStarts(t *testing.T) {
	// The recorder fails at the 5th result: a task already dispatched then runs to its
	// end, nothing more starts, and the rest are skipped with the recorder's error.
	errFull := errors.New("journal j: no space left on device")
	emitted := make(chan int, 100)
	runner := runnerFunc(func(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
		if t.Index > 1 {
			<-emitted // task n starts its work once result n-1 is emitted
		}
		return jobs.Attempt{Start: time.Now(), ExitCode: 0}
	})
	cmds := make([]string, 50)
	for i := range cmds {
		cmds[i] = "x"
	}
	n := 0
	opts := Options{Workers: 1, Runner: runner, Output: None, Stdout: io.Discard, Stderr: io.Discard,
		Abort: func() error {
			if n >= 5 {
				return errFull
			}
			return nil
		}}
	results := map[int]jobs.Result{}
	err := Run(context.Background(), input.NewSliceSource(shellTasks(cmds...)), opts, func(r jobs.Result) {
		results[r.Index] = r
		n++
		emitted <- r.Index
	})
	if err != nil {
		t.Fatal(err)
	}
	c := count(results)
	if started := c[jobs.Succeeded]; started < 5 || started > 7 {
		t.Errorf("got %d tasks started, want 5 to 7: the 5 before the failure and at most the two dispatched meanwhile", started)
	}
	if c[jobs.Skipped] != 50-c[jobs.Succeeded] {
		t.Errorf("got %v, want the rest skipped", c)
	}
	if r := results[50]; r.Error != errFull.Error() {
		t.Errorf("skip reason: got %q, want %q", r.Error, errFull)
	}
}

// heldRunner blocks every task until release is closed; the first one to start says
// so on started.
type heldRunner struct {
	started chan struct{}
	once    *sync.Once
	release chan struct{}
}

func (h heldRunner) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	h.once.Do(func() { close(h.started) })
	<-h.release
	return jobs.Attempt{Start: time.Now(), ExitCode: 0}
}

// TestWaitingTasksAreHeldOnce: the tasks of a source known whole (a task file with
// priorities) that wait to start cost the run their Task and one entry in the pool's
// queue each: the run keeps no second list of them. Measured as the live heap, after
// a collection, while every task but the running ones waits.
func TestWaitingTasksAreHeldOnce(t *testing.T) {
	const n = 50_000
	cmds := make([]string, n)
	for i := range cmds {
		cmds[i] = "true"
	}
	base := liveHeap()
	tasks := shellTasks(cmds...)
	for i := range tasks {
		tasks[i].Priority = i % 7
	}
	withTasks := liveHeap()
	h := heldRunner{started: make(chan struct{}), once: &sync.Once{}, release: make(chan struct{})}
	ran := make(chan error, 1)
	go func() {
		opts := Options{Workers: 2, Runner: h, Output: Grouped, Stdout: io.Discard, Stderr: io.Discard}
		ran <- Run(context.Background(), input.NewSliceSource(tasks), opts, func(jobs.Result) {})
	}()
	<-h.started
	waiting := liveHeap()
	close(h.release)
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	task := float64(withTasks-base) / n
	run := float64(waiting-withTasks) / n
	t.Logf("per waiting task: %.0f bytes its Task, %.0f bytes the run's own", task, run)
	if run > 800 {
		t.Errorf("the run holds %.0f bytes per waiting task beyond the Task itself, want at most 800: a second copy of the tasks?", run)
	}
}

// liveHeap returns the bytes of the heap a full collection finds live.
func liveHeap() uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}
