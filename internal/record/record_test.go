package record

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/journal"
	"github.com/gorun/gorun/internal/pipeline"
	"github.com/gorun/gorun/internal/process"
	"github.com/gorun/gorun/internal/report"
)

// fullDisk is a journal file on a disk that fills after `room` writes: the write that
// does not fit writes half its bytes and fails with ENOSPC, as write(2) does.
type fullDisk struct {
	*os.File
	mu   sync.Mutex
	room int
}

func (f *fullDisk) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.room == 0 {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	f.room--
	return f.File.Write(p)
}

type runnerFunc func(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt

func (f runnerFunc) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	return f(ctx, t, slot, attempt, stdout, stderr)
}

func TestFullJournalStopsStartsAndKeepsReports(t *testing.T) {
	const total, room = 50, 8 // the header and 7 results fit
	dir := t.TempDir()
	opts := Options{
		Input: "tasks", Journal: filepath.Join(dir, "journal"),
		Report: filepath.Join(dir, "report.json"), ReportFmt: report.JSON, Metrics: filepath.Join(dir, "gorun.prom"),
		createJournal: func(path string, h journal.Header) (*journal.Writer, error) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, FileMode)
			if err != nil {
				return nil, err
			}
			return journal.NewWriter(&fullDisk{File: f, room: room}, path, h)
		},
	}
	emitted := make(chan struct{}, total)
	runner := runnerFunc(func(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
		if t.Index > 1 {
			<-emitted // one task at a time, each after the previous result was recorded
		}
		return jobs.Attempt{Start: time.Now(), ExitCode: 0}
	})
	tasks := make([]jobs.Task, total)
	for i := range tasks {
		sp := jobs.Spec{Run: fmt.Sprintf("echo %d", i+1)}
		tasks[i] = jobs.Resolve(i+1, &sp, jobs.Settings{}, &jobs.Defaults{})
	}
	run := report.Run{ID: "run1", StartedAt: time.Now()}
	popts := pipeline.Options{Workers: 1, Runner: runner, Output: pipeline.None, Stdout: io.Discard, Stderr: io.Discard}
	rec, err := Open(opts, run, &popts)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	sum := report.Summary{}
	if err := pipeline.Run(context.Background(), input.NewSliceSource(tasks), popts, func(r jobs.Result) {
		sum.Add(r)
		rec.Add(r)
		emitted <- struct{}{}
	}); err != nil {
		t.Fatal(err)
	}
	err = rec.Finish(run, &sum)

	started := sum.Started()
	if started < room || started > room+2 {
		t.Errorf("got %d tasks started, want %d to %d: nothing starts after the journal fails", started, room, room+2)
	}
	if sum.Counts[jobs.Skipped] != total-started {
		t.Errorf("got %d skipped, want %d", sum.Counts[jobs.Skipped], total-started)
	}
	journaled := 0
	if err := journal.Read(opts.Journal, func(journal.Record) error { journaled++; return nil }); err != nil {
		t.Fatalf("reading the journal back: %v", err)
	}
	if journaled != room-1 {
		t.Errorf("got %d results in the journal, want %d", journaled, room-1)
	}
	var jerr *JournalError
	if !errors.As(err, &jerr) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Finish: got %v, want a *JournalError wrapping ENOSPC", err)
	}
	msg := err.Error()
	want := fmt.Sprintf("journal %s: no space left on device: %d results not journaled (a --resume runs those tasks again)", opts.Journal, started-journaled)
	if started-journaled == 1 {
		want = fmt.Sprintf("journal %s: no space left on device: 1 result not journaled (a --resume runs that task again)", opts.Journal)
	}
	if msg != want {
		t.Errorf("message: got %q, want %q", msg, want)
	}
	var doc struct {
		Results []jobs.Result `json:"results"`
	}
	data, rerr := os.ReadFile(opts.Report)
	if rerr != nil || json.Unmarshal(data, &doc) != nil || len(doc.Results) != total {
		t.Errorf("report: got %d results (%v), want %d", len(doc.Results), rerr, total)
	} else if r := doc.Results[total-1]; r.Status != jobs.Skipped || !strings.Contains(r.Error, "no space left on device") {
		t.Errorf("last task: got %s %q, want skipped because of the journal", r.Status, r.Error)
	}
	if data, err := os.ReadFile(opts.Metrics); err != nil || !strings.Contains(string(data), `gorun_tasks{status="skipped"}`) {
		t.Errorf("metrics: got %q, %v, want them written", data, err)
	}
	for _, p := range []string{opts.Journal, opts.Report, opts.Metrics} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != FileMode {
			t.Errorf("%s: got mode %v (%v), want %v", filepath.Base(p), st.Mode().Perm(), err, os.FileMode(FileMode))
		}
	}
}

func TestCheckDistinct(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "tasks.json")
	os.WriteFile(in, []byte("{}"), 0o644)
	os.Symlink(in, filepath.Join(dir, "link.json"))
	os.Mkdir(filepath.Join(dir, "real"), 0o755)
	os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "dirlink"))
	os.MkdirAll(filepath.Join(dir, "other", "sub"), 0o755)
	os.Symlink(filepath.Join(dir, "other", "sub"), filepath.Join(dir, "sublink"))
	os.Link(in, filepath.Join(dir, "hard.json"))
	t.Chdir(dir)
	for _, tc := range []struct {
		name    string
		input   string
		outputs []Path
		want    string // "" for no error, else a part of the message
	}{
		{"distinct", "tasks.json", []Path{{"--journal", "j"}, {"--report", "r.json"}, {"--metrics", "m.prom"}}, ""},
		{"report is the input", "tasks.json", []Path{{"--report", "tasks.json"}}, "--report tasks.json is the input file"},
		{"relative and absolute", in, []Path{{"--journal", "./tasks.json"}}, "is the input file"},
		{"through a symlink", "tasks.json", []Path{{"--report", "link.json"}}, "is the input file"},
		{"a hard link", "tasks.json", []Path{{"--journal", "hard.json"}}, "is the input file"},
		{"two outputs, not yet there", "-", []Path{{"--journal", "out"}, {"--metrics", "sublink/../out"}}, ""},
		{"dot-dot after a directory link", "-", []Path{{"--journal", "other/out"}, {"--metrics", "sublink/../out"}}, "are the same file"},
		{"two outputs through a directory link", "-", []Path{{"--journal", "real/out"}, {"--metrics", "dirlink/out"}}, "--journal real/out and --metrics dirlink/out are the same file"},
		{"stdin is not compared", "", []Path{{"--report", "-"}}, ""},
	} {
		err := CheckDistinct(tc.input, tc.outputs...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: got %v, want nil", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
