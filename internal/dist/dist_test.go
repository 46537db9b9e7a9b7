package dist

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pipeline"
	"github.com/gorun/gorun/internal/process"
)

func TestCheckVersion(t *testing.T) {
	for v, ok := range map[string]bool{"2.15.2": true, "2.10.0": true, "v2.12.1": true, "3.0.0": true, "2.9.10": false, "1.4.0": false, "junk": false} {
		if err := checkVersion(v); (err == nil) != ok {
			t.Errorf("checkVersion(%q): got %v, want ok=%v", v, err, ok)
		}
	}
}

// serveInProcess starts an embedded broker for the test and connects to it.
func serveInProcess(t *testing.T) *Conn {
	t.Helper()
	srv, err := Serve(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	conn, err := Connect(context.Background(), srv.ClientURL(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// startWorker runs a worker of slots on conn until stop is called; stop waits for it.
func startWorker(conn *Conn, slots int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Worker{Conn: conn, Runner: &process.Runner{Grace: time.Second, BaseEnv: os.Environ()}, Slots: slots, Grace: time.Second}
	worked := make(chan error)
	go func() { worked <- w.Run(ctx) }()
	return func() { cancel(); <-worked }
}

// TestSubmitterAndWorkerInProcess runs a small run through an embedded broker, a
// worker and a submitter in this process.
func TestSubmitterAndWorkerInProcess(t *testing.T) {
	ctx := context.Background()
	conn := serveInProcess(t)
	stop := startWorker(conn, 3)

	var tasks []jobs.Task
	for i, cmd := range []string{"echo one", "echo two >&2; exit 4", "printf '%s' \"$GORUN_TASK_ID:$GORUN_RUN_ID\""} {
		sp := jobs.Spec{Run: cmd}
		tasks = append(tasks, jobs.Resolve(i+1, &sp, jobs.Settings{}, &jobs.Defaults{}))
	}
	var out strings.Builder
	sub := &Submitter{Conn: conn, RunID: "inproc", Grace: time.Second}
	got := map[int]jobs.Result{}
	opts := pipeline.Options{Output: pipeline.Grouped, Stdout: &out, Stderr: io.Discard}
	if err := sub.Run(ctx, input.NewSliceSource(tasks), opts, func(r jobs.Result) { got[r.Index] = r }); err != nil {
		t.Fatal(err)
	}
	stop()
	if len(got) != 3 || got[1].Status != jobs.Succeeded || got[2].Status != jobs.Failed || *got[2].ExitCode != 4 || got[3].StdoutTail != "task-3:inproc" {
		b, _ := json.Marshal(got)
		t.Errorf("results: %s", b)
	}
	if !strings.Contains(out.String(), "one\n") {
		t.Errorf("output %q, want the tasks' output", out.String())
	}
	if e, err := conn.Runs.Get(ctx, "inproc"); err != nil || string(e.Value()) != StateDone {
		t.Errorf("run state: %v, want done", err)
	}
}

func TestGraphRunInProcess(t *testing.T) {
	ctx := context.Background()
	conn := serveInProcess(t)
	defer startWorker(conn, 4)()

	dir := t.TempDir()
	f, err := input.Parse("g.yaml", []byte(`version: 1
tasks:
  - {id: fetch, run: "sleep 0.2; date +%s%N > `+dir+`/fetch"}
  - {id: use, run: "test -f `+dir+`/fetch", needs: [fetch]}
  - {id: broken, run: "exit 1"}
  - {id: after-broken, run: "true", needs: [broken]}
`))
	if err != nil {
		t.Fatal(err)
	}
	sub := &Submitter{Conn: conn, RunID: "graph", Grace: time.Second}
	got := map[string]jobs.Result{}
	src := input.NewGraphSource(f.Tasks(jobs.Settings{}), f.Needs)
	opts := pipeline.Options{Output: pipeline.None, Stdout: io.Discard, Stderr: io.Discard}
	if err := sub.Run(ctx, src, opts, func(r jobs.Result) { got[r.ID] = r }); err != nil {
		t.Fatal(err)
	}
	if got["use"].Status != jobs.Succeeded || got["after-broken"].Status != jobs.Skipped || got["after-broken"].Error != `needs "broken", which failed` {
		b, _ := json.Marshal(got)
		t.Errorf("got %s", b)
	}
}
