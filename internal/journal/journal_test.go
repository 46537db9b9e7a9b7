package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

func TestWriteAndRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	w, err := Create(path, Header{RunID: "r1", StartedAt: time.Now(), Input: "tasks.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	zero := 0
	_ = w.Write(jobs.Result{ID: "a", Index: 1, Key: "ka", Status: jobs.Succeeded, ExitCode: &zero, Attempts: 1})
	_ = w.Write(jobs.Result{ID: "b", Index: 2, Key: "kb", Status: jobs.Failed, Attempts: 2})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A second run, resumed: b succeeds now.
	w, _ = Create(path, Header{RunID: "r2", StartedAt: time.Now()})
	_ = w.Write(jobs.Result{ID: "b", Index: 2, Key: "kb", Status: jobs.Succeeded, ExitCode: &zero, Attempts: 1})
	w.Close()

	done, err := Succeeded(path)
	if err != nil || len(done) != 2 || !done["ka"] || !done["kb"] {
		t.Errorf("Succeeded: got %v, %v, want ka and kb", done, err)
	}
	latest, err := Latest(path)
	if err != nil || len(latest) != 2 || latest[1].Status != jobs.Succeeded || latest[1].Attempts != 1 {
		t.Errorf("Latest: got %+v, %v, want b's last result", latest, err)
	}
}

func TestTornLastLineIsSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	w, _ := Create(path, Header{RunID: "r1"})
	_ = w.Write(jobs.Result{ID: "a", Key: "ka", Status: jobs.Succeeded})
	_ = w.Write(jobs.Result{ID: "b", Key: "kb", Status: jobs.Succeeded})
	w.Close()
	data, _ := os.ReadFile(path)
	torn := data[:len(data)-25] // cut in the middle of the last record
	if err := os.WriteFile(path, torn, 0o644); err != nil {
		t.Fatal(err)
	}
	done, err := Succeeded(path)
	if err != nil || !done["ka"] || done["kb"] {
		t.Errorf("got %v, %v, want ka only: the torn record is skipped", done, err)
	}
	// The next run cuts the torn line off before it appends, and the journal reads on.
	w, _ = Create(path, Header{RunID: "r2"})
	_ = w.Write(jobs.Result{ID: "b", Key: "kb", Status: jobs.Succeeded})
	w.Close()
	if done, err := Succeeded(path); err != nil || !done["ka"] || !done["kb"] {
		t.Errorf("after the next run: got %v, %v, want ka and kb", done, err)
	}
}

func TestCorruptMiddleLineIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	content := `{"type":"run","run_id":"r"}` + "\n" + "garbage\n" + `{"type":"result","key":"k","status":"succeeded"}` + "\n"
	os.WriteFile(path, []byte(content), 0o644)
	_, err := Succeeded(path)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), ":2:") {
		t.Errorf("got %v, want ErrCorrupt naming line 2", err)
	}
}

func TestMissingJournalIsEmpty(t *testing.T) {
	done, err := Succeeded(filepath.Join(t.TempDir(), "none"))
	if err != nil || len(done) != 0 {
		t.Errorf("got %v, %v", done, err)
	}
}

func TestKeys(t *testing.T) {
	task := func(id, run string, env ...string) *jobs.Task {
		sp := jobs.Spec{ID: id, Run: run}
		tk := jobs.Resolve(1, &sp, jobs.Settings{}, &jobs.Defaults{})
		tk.Env = env
		return &tk
	}
	var k Keyer
	a1 := k.Key(task("", "echo a"))
	a2 := k.Key(task("", "echo a"))
	b := k.Key(task("", "echo b"))
	if a1 == a2 || !strings.HasSuffix(a1, "#1") || !strings.HasSuffix(a2, "#2") || !strings.HasSuffix(b, "#1") {
		t.Errorf("unnamed keys: %s %s %s, want the same command numbered by occurrence", a1, a2, b)
	}
	var k2 Keyer // another run, another order: same keys
	if k2.Key(task("", "echo b")) != b || k2.Key(task("", "echo a")) != a1 {
		t.Error("keys depend on input order")
	}
	n1 := k.Key(task("build", "make"))
	n2 := k.Key(task("build", "make"))
	n3 := k.Key(task("build", "make -j4"))
	n4 := k.Key(task("build", "make", "CC=clang"))
	if n1 != n2 || n1 == n3 || n1 == n4 || !strings.HasPrefix(n1, "build:") {
		t.Errorf("named keys: %s %s %s %s, want the id plus a hash of command and env", n1, n2, n3, n4)
	}
}
