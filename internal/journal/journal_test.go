package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
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

func TestCreateRefusesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content string }{
		{"no-newline", "just some text"},
		{"text", "line one\nline two\nunfinished"},
		{"json-not-journal", `{"type":"other"}` + "\n"},
		{"header-without-run-id", `{"type":"run"}` + "\n"},
		{"foreign-tail", `{"type":"run","run_id":"r"}` + "\n" + "not a record"},
		{"result-prefix-then-garbage", `{"type":"run","run_id":"r"}` + "\n" + `{"type":"result","run_id":"r",]`},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		var refused *RefusedError
		if err := Check(path); !errors.As(err, &refused) {
			t.Errorf("%s: Check: got %v, want a *RefusedError", tc.name, err)
		}
		w, err := Create(path, Header{RunID: "r2"})
		if !errors.As(err, &refused) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Create: got %v, want a *RefusedError naming the file", tc.name, err)
		}
		if w != nil {
			w.Close()
		}
		if got, _ := os.ReadFile(path); string(got) != tc.content {
			t.Errorf("%s: got content %q, want it unchanged: %q", tc.name, got, tc.content)
		}
	}
}

func TestCreateRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	const content = "precious\ndata without end"
	os.WriteFile(target, []byte(content), 0o644)
	for _, tc := range []struct{ name, to string }{{"link", target}, {"dangling", filepath.Join(dir, "nowhere")}} {
		link := filepath.Join(dir, tc.name)
		if err := os.Symlink(tc.to, link); err != nil {
			t.Fatal(err)
		}
		var refused *RefusedError
		if err := Check(link); !errors.As(err, &refused) {
			t.Errorf("%s: Check: got %v, want a *RefusedError", tc.name, err)
		}
		if _, err := Create(link, Header{RunID: "r"}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%s: Create: got %v, want a *RefusedError for a symbolic link", tc.name, err)
		}
	}
	if got, _ := os.ReadFile(target); string(got) != content {
		t.Errorf("target: got %q, want it unchanged", got)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dangling link's target: got %v, want it not created", err)
	}
}

func TestCreateCutsOnlyGorunFragments(t *testing.T) {
	dir := t.TempDir()
	head := `{"type":"run","run_id":"r1"}` + "\n"
	for _, tc := range []struct{ name, content, want string }{
		{"torn-header-only", `{"type":"run","run_`, ""},
		{"torn-record", head + `{"type":"result","run_id":"r1","key":"k","id":"a","std`, head},
		{"record-without-newline", head + `{"type":"result","run_id":"r1","key":"k"}`, head},
		{"short-fragment", head + `{"ty`, head},
	} {
		path := filepath.Join(dir, tc.name)
		os.WriteFile(path, []byte(tc.content), 0o644)
		w, err := Create(path, Header{RunID: "r2"})
		if err != nil {
			t.Errorf("%s: got %v, want the torn line cut", tc.name, err)
			continue
		}
		w.Close()
		got, _ := os.ReadFile(path)
		if !strings.HasPrefix(string(got), tc.want+`{"type":"run","run_id":"r2"`) {
			t.Errorf("%s: got %q, want %q and then the new header", tc.name, got, tc.want)
		}
	}
}

func TestModes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "new")
	w, err := Create(path, Header{RunID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("new journal: got mode %v, want 0600", st.Mode().Perm())
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	w, _ = Create(path, Header{RunID: "r2"})
	w.Close()
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("existing journal: got mode %v, want 0640 left alone", st.Mode().Perm())
	}
}

// fakeFile is a File that counts writes and fsyncs, and fails writes after failAfter
// of them (0: never).
type fakeFile struct {
	mu        sync.Mutex
	data      []byte
	writes    int
	syncs     int
	failAfter int
}

func (f *fakeFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAfter > 0 && f.writes >= f.failAfter {
		n := len(p) / 2 // a short write, as a full disk leaves
		f.data = append(f.data, p[:n]...)
		return n, &os.PathError{Op: "write", Path: "fake", Err: syscall.ENOSPC}
	}
	f.writes++
	f.data = append(f.data, p...)
	return len(p), nil
}

func (f *fakeFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	return nil
}

func (f *fakeFile) Close() error { return nil }

func (f *fakeFile) counts() (writes, syncs int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes, f.syncs
}

func TestGroupCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeFile{}
		w, err := NewWriter(f, "fake", Header{RunID: "r"})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, syncs := f.counts(); syncs != 0 {
			t.Errorf("before any record: got %d fsyncs, want 0", syncs)
		}
		start := time.Now()
		for i := range 50 { // a burst of records shares one fsync
			if err := w.Write(jobs.Result{ID: "a", Index: i + 1, Key: "k"}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if _, syncs := f.counts(); syncs != 0 {
			t.Errorf("right after the writes: got %d fsyncs, want 0 (they wait for SyncDelay)", syncs)
		}
		time.Sleep(SyncDelay) // the fake clock: no real time passes
		synctest.Wait()
		if writes, syncs := f.counts(); writes != 51 || syncs != 1 {
			t.Errorf("after SyncDelay: got %d writes and %d fsyncs, want 51 and 1", writes, syncs)
		}
		if waited := time.Since(start); waited > 200*time.Millisecond {
			t.Errorf("fsync came %v after the records, want within 200ms", waited)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if _, syncs := f.counts(); syncs != 1 {
			t.Errorf("with nothing written since: got %d fsyncs, want still 1", syncs)
		}
		_ = w.Write(jobs.Result{ID: "b", Index: 51, Key: "k"})
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, syncs := f.counts(); syncs != 2 {
			t.Errorf("after Close: got %d fsyncs, want 2: Close fsyncs", syncs)
		}
	})
}

func TestWriteErrorIsSticky(t *testing.T) {
	f := &fakeFile{failAfter: 3} // the header and two records
	w, err := NewWriter(f, "j", Header{RunID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if err := w.Write(jobs.Result{ID: "a", Index: i}); err != nil {
			t.Fatalf("record %d: got %v, want nil", i, err)
		}
	}
	err = w.Write(jobs.Result{ID: "a", Index: 3})
	if !errors.Is(err, syscall.ENOSPC) || err.Error() != "journal j: no space left on device" {
		t.Errorf("got %v, want ENOSPC naming the journal once", err)
	}
	before := len(f.data)
	if err2 := w.Write(jobs.Result{ID: "a", Index: 4}); !errors.Is(err2, syscall.ENOSPC) {
		t.Errorf("after the failure: got %v, want the first error again", err2)
	}
	if len(f.data) != before {
		t.Errorf("after the failure: got %d more bytes written, want none", len(f.data)-before)
	}
	if err := w.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Close: got %v, want the write error", err)
	}
	if _, syncs := f.counts(); syncs == 0 {
		t.Errorf("Close after a failure: got no fsync, want one (the records before it count)")
	}
}
