package cluster_test

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pipeline"
	"github.com/gorun/gorun/internal/process"
)

var _ pipeline.Runner = (*cluster.Executor)(nil)

// TestSchedulerOnTheCluster runs the local scheduler with the remote executor: the
// same retries, halts and output order as a local run.
func TestSchedulerOnTheCluster(t *testing.T) {
	srv, err := cluster.Serve(t.TempDir(), "127.0.0.1:0", cluster.BrokerSecurity{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	conn, err := cluster.Connect(context.Background(), srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wctx, stopWorker := context.WithCancel(context.Background())
	worked := make(chan error, 1)
	go func() {
		w := &cluster.Worker{Conn: conn, Runner: &process.Runner{Grace: time.Second, BaseEnv: os.Environ()}, Slots: 4, Grace: time.Second}
		worked <- w.Run(wctx)
	}()
	defer func() { stopWorker(); <-worked }()

	run := func(name string, opts pipeline.Options, settings jobs.Settings, cmds ...string) (string, map[string]jobs.Result) {
		t.Helper()
		e, err := cluster.Open(context.Background(), conn, name, 2*time.Second, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		var tasks []jobs.Task
		for i, c := range cmds {
			sp := jobs.Spec{Run: c}
			tasks = append(tasks, jobs.Resolve(i+1, &sp, settings, &jobs.Defaults{}))
		}
		var out strings.Builder
		opts.Runner, opts.Stdout, opts.Stderr, opts.Jitter = e, &out, io.Discard, func() float64 { return 0 }
		got := map[string]jobs.Result{}
		if err := pipeline.Run(context.Background(), input.NewSliceSource(tasks), opts, func(r jobs.Result) { got[r.ID] = r }); err != nil {
			t.Fatal(err)
		}
		return out.String(), got
	}

	out, got := run("order", pipeline.Options{Workers: 4, Output: pipeline.Grouped, KeepOrder: true}, jobs.Settings{},
		"sleep 0.3; echo one", "echo two", "echo three; echo $GORUN_ATTEMPT; exit 1")
	if out != "one\ntwo\nthree\n1\n" || got["task-3"].Status != jobs.Failed {
		t.Errorf("keep-order: got %q and %+v", out, got)
	}

	retries, delay := 2, time.Millisecond
	out, got = run("retry", pipeline.Options{Workers: 2, Output: pipeline.Grouped}, jobs.Settings{Retries: &retries, RetryDelay: &delay},
		`echo "attempt $GORUN_ATTEMPT"; exit 3`)
	if r := got["task-1"]; r.Attempts != 3 || r.Status != jobs.Failed || out != "attempt 3\n" {
		t.Errorf("two retries: got %+v, output %q; want 3 attempts, the last one's output", r, out)
	}

	_, got = run("halt", pipeline.Options{Workers: 1, Output: pipeline.None, Halt: pipeline.Halt{When: "soon", Count: 1}}, jobs.Settings{},
		"exit 1", "true", "true")
	if got["task-1"].Status != jobs.Failed || got["task-2"].Status != jobs.Skipped || got["task-3"].Status != jobs.Skipped {
		t.Errorf("halt soon,fail=1: got %+v", got)
	}
}
