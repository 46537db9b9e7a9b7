package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func shellTasks(cmds ...string) []jobs.Task {
	tasks := make([]jobs.Task, len(cmds))
	for i, c := range cmds {
		sp := jobs.Spec{Run: c}
		tasks[i] = jobs.Resolve(i+1, &sp, jobs.Settings{}, &jobs.Defaults{})
	}
	return tasks
}

func options(workers int, out, errOut io.Writer) Options {
	return Options{Workers: workers, Runner: &process.Runner{Grace: time.Second}, Output: Grouped, Stdout: out, Stderr: errOut}
}

func TestFirstTaskRunsBeforeInputEnds(t *testing.T) {
	pr, pw := io.Pipe()
	src := input.NewLineSource("stdin", pr, input.LineOptions{})
	results := make(chan jobs.Result, 10)
	finished := make(chan error)
	go func() {
		finished <- Run(context.Background(), src, options(2, io.Discard, io.Discard), func(r jobs.Result) { results <- r })
	}()
	if _, err := io.WriteString(pw, "echo first\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-results:
		if r.Status != jobs.Succeeded || r.StdoutTail != "first\n" {
			t.Errorf("got %+v, want the first task succeeded", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first task did not finish while the input stayed open")
	}
	_, _ = io.WriteString(pw, "\n\necho second\n")
	pw.Close()
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	if r := <-results; r.Index != 2 || r.StdoutTail != "second\n" {
		t.Errorf("got %+v, want task 2 (empty lines skipped)", r)
	}
}

func TestInterruptCancelsRunningAndSkipsTheRest(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	src := input.NewSliceSource(shellTasks("sleep 30", "sleep 30", "sleep 30", "sleep 30", "sleep 30"))
	time.AfterFunc(300*time.Millisecond, func() { cancel(errors.New("interrupted by SIGINT")) })
	counts := map[jobs.Status]int{}
	var reasons []string
	start := time.Now()
	err := Run(ctx, src, options(2, io.Discard, io.Discard), func(r jobs.Result) {
		counts[r.Status]++
		if r.Status == jobs.Skipped {
			reasons = append(reasons, r.Error)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v, want the run to stop soon after the interrupt", took)
	}
	if counts[jobs.Cancelled] != 2 || counts[jobs.Skipped] != 3 {
		t.Errorf("got %v, want 2 cancelled and 3 skipped", counts)
	}
	for _, r := range reasons {
		if r != "interrupted by SIGINT" {
			t.Errorf("skip reason %q, want the interruption", r)
		}
	}
}

func TestInterruptStopsReadingStdin(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	src := input.NewLineSource("stdin", pr, input.LineOptions{})
	go func() {
		_, _ = io.WriteString(pw, "sleep 30\n")
		time.Sleep(200 * time.Millisecond)
		cancel()
	}()
	var got []jobs.Status
	done := make(chan error)
	go func() {
		done <- Run(ctx, src, options(2, io.Discard, io.Discard), func(r jobs.Result) { got = append(got, r.Status) })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still waits on an open input after the interrupt")
	}
	if len(got) != 1 || got[0] != jobs.Cancelled {
		t.Errorf("got %v, want one cancelled task", got)
	}
}

func TestGroupedOutputNeverInterleaves(t *testing.T) {
	var cmds []string
	for i := range 8 {
		cmds = append(cmds, fmt.Sprintf(`for n in 1 2 3; do echo "t%d line $n"; echo "t%d err $n" >&2; sleep 0.02; done`, i, i))
	}
	var out, errOut bytes.Buffer
	err := Run(context.Background(), input.NewSliceSource(shellTasks(cmds...)), options(8, &out, &errOut), func(jobs.Result) {})
	if err != nil {
		t.Fatal(err)
	}
	for name, buf := range map[string]string{"stdout": out.String(), "stderr": errOut.String()} {
		lines := strings.Split(strings.TrimSpace(buf), "\n")
		if len(lines) != 24 {
			t.Fatalf("%s: got %d lines, want 24", name, len(lines))
		}
		for i := 0; i < len(lines); i += 3 {
			task := strings.Fields(lines[i])[0]
			for j := 1; j < 3; j++ {
				if !strings.HasPrefix(lines[i+j], task+" ") || !strings.HasSuffix(lines[i+j], fmt.Sprint(j+1)) {
					t.Errorf("%s: task output interleaved at line %d: %q after %q", name, i+j+1, lines[i+j], lines[i])
				}
			}
		}
	}
}

type failingSource struct{ n int }

func (f *failingSource) Next() (jobs.Task, error) {
	f.n++
	if f.n > 2 {
		return jobs.Task{}, &jobs.InputError{File: "stdin", Line: 3, Msg: "bad line"}
	}
	return shellTasks("true")[0], nil
}
func (f *failingSource) Close() error { return nil }

func TestInputErrorIsReturned(t *testing.T) {
	var n int
	err := Run(context.Background(), &failingSource{}, options(1, io.Discard, io.Discard), func(jobs.Result) { n++ })
	var ie *jobs.InputError
	if !errors.As(err, &ie) || n != 2 {
		t.Errorf("got %v after %d results, want the input error after 2", err, n)
	}
}
