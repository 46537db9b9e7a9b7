//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/journal"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory, unmounted at the end of
// the test; it skips the test where mounting is not permitted.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v): this test needs root or CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// sideCounts counts the lines of a file that tasks append their number to.
func sideCounts(t *testing.T, path string) map[string]int {
	t.Helper()
	c := map[string]int{}
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(data)) {
		c[f]++
	}
	return c
}

// jsonReport reads the results of a --report FILE.json.
func jsonReport(t *testing.T, path string) []jobs.Result {
	t.Helper()
	var doc struct {
		Results []jobs.Result `json:"results"`
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("report %s: %v", path, err)
	}
	return doc.Results
}

func TestE2EJournalOnFullDisk(t *testing.T) {
	const total = 300
	full := mountTmpfs(t, 48<<10) // room for about 150 results
	dir := t.TempDir()
	side := filepath.Join(dir, "side")
	var b strings.Builder
	for i := 1; i <= total; i++ {
		fmt.Fprintf(&b, "echo %d >> %s\n", i, side)
	}
	tasks := writeFile(t, "tasks", b.String())
	jpath := filepath.Join(full, "journal")
	report, metrics := filepath.Join(dir, "report.json"), filepath.Join(dir, "gorun.prom")

	r := startGorun(t, nil, "exec", tasks, "-j", "4", "--journal", jpath, "--report", report, "--metrics", metrics)
	if code := r.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("got exit %d, want 1; stderr:\n%s", code, r.stderr)
	}
	var lines []string
	for _, l := range strings.Split(r.stderr.String(), "\n") {
		if strings.HasPrefix(l, "gorun: ") && strings.Contains(l, "journal") { // not the summary's skip reasons
			lines = append(lines, l)
		}
	}
	re := regexp.MustCompile(`^gorun: journal (\S+): no space left on device: (\d+) results? not journaled \(a --resume runs (those tasks|that task) again\)$`)
	if len(lines) != 1 || !re.MatchString(lines[0]) {
		t.Fatalf("got journal lines %q, want one naming the journal and the results it missed; stderr:\n%s", lines, r.stderr)
	}
	m := re.FindStringSubmatch(lines[0])
	missed, _ := strconv.Atoi(m[2])
	if m[1] != jpath {
		t.Errorf("got journal %s in the message, want %s", m[1], jpath)
	}

	results := jsonReport(t, report)
	if len(results) != total {
		t.Fatalf("report: got %d results, want %d", len(results), total)
	}
	started, skipped := 0, 0
	for _, res := range results {
		switch {
		case res.Status == jobs.Skipped && strings.Contains(res.Error, "no space left on device"):
			skipped++
		case res.Attempts > 0:
			started++
		}
	}
	if skipped == 0 || started+skipped != total {
		t.Errorf("got %d started and %d skipped for the full journal, want the rest of %d skipped", started, skipped, total)
	}
	if data, err := os.ReadFile(metrics); err != nil || !strings.Contains(string(data), fmt.Sprintf(`gorun_tasks{status="skipped"} %d`, skipped)) {
		t.Errorf("metrics: got %q, %v, want %d skipped", data, err, skipped)
	}

	// The next run, with room again (the journal copied off the full disk), runs
	// what the journal does not hold and nothing it does.
	data, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	jcopy := filepath.Join(dir, "journal")
	if err := os.WriteFile(jcopy, data, 0o600); err != nil {
		t.Fatal(err)
	}
	journaled := map[string]bool{}
	if err := journal.Read(jcopy, func(rec journal.Record) error {
		if rec.Status == jobs.Succeeded {
			journaled[strings.Fields(rec.Command)[1]] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(journaled)+missed != started {
		t.Errorf("got %d journaled and %d missed, want them to add up to the %d started", len(journaled), missed, started)
	}
	before := sideCounts(t, side)
	r = startGorun(t, nil, "exec", tasks, "-j", "4", "--journal", jcopy, "--resume")
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("resume: got exit %d, want 0; stderr:\n%s", code, r.stderr)
	}
	after := sideCounts(t, side)
	for i := 1; i <= total; i++ {
		n := strconv.Itoa(i)
		if journaled[n] && after[n] != before[n] {
			t.Errorf("task %s: ran again on resume although journaled as succeeded", n)
		}
		if after[n] < 1 {
			t.Errorf("task %s: never ran", n)
		}
	}
}

func TestE2EJournalRefusesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	side := filepath.Join(dir, "side")
	tasks := writeFile(t, "tasks", "echo ran >> "+side+"\n")
	foreign := filepath.Join(dir, "notes.txt")
	const content = "my notes\nthe last line has no newline"
	if err := os.WriteFile(foreign, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	journalFile := filepath.Join(dir, "real.journal")
	if code := startGorun(t, nil, "exec", tasks, "--journal", journalFile).wait(t, 30*time.Second); code != 0 {
		t.Fatalf("first run: got exit %d, want 0", code)
	}
	journalBytes, _ := os.ReadFile(journalFile)
	os.Remove(side)
	for _, target := range []string{foreign, journalFile} {
		link := filepath.Join(dir, "link-to-"+filepath.Base(target))
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, path, target, want string }{
		{"foreign file", foreign, foreign, "is not a gorun journal"},
		{"symlink to a foreign file", filepath.Join(dir, "link-to-notes.txt"), foreign, "is a symbolic link"},
		{"symlink to a journal", filepath.Join(dir, "link-to-real.journal"), journalFile, "is a symbolic link"},
	} {
		before, _ := os.ReadFile(tc.target)
		r := startGorun(t, nil, "exec", tasks, "--journal", tc.path, "--resume")
		if code := r.wait(t, 30*time.Second); code != 2 {
			t.Errorf("%s: got exit %d, want 2; stderr:\n%s", tc.name, code, r.stderr)
		}
		stderr := strings.TrimSuffix(r.stderr.String(), "\n")
		if strings.Contains(stderr, "\n") || !strings.Contains(stderr, tc.path) || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: got stderr %q, want one line naming %s: %s", tc.name, stderr, tc.path, tc.want)
		}
		if after, _ := os.ReadFile(tc.target); string(after) != string(before) {
			t.Errorf("%s: got target %q, want it byte-identical: %q", tc.name, after, before)
		}
		if _, err := os.Stat(side); err == nil {
			t.Errorf("%s: a task ran, want nothing run", tc.name)
		}
	}
	if got, _ := os.ReadFile(foreign); string(got) != content {
		t.Errorf("foreign file: got %q, want %q", got, content)
	}
	if got, _ := os.ReadFile(journalFile); string(got) != string(journalBytes) {
		t.Errorf("journal behind the link: changed, want it byte-identical")
	}
}

func TestE2EOutputIsInput(t *testing.T) {
	dir := t.TempDir()
	side := filepath.Join(dir, "side")
	content := fmt.Sprintf(`{"version": 1, "tasks": [{"run": "echo ran >> %s"}]}`, side)
	tasks := writeFile(t, "tasks.json", content)
	os.Symlink(tasks, filepath.Join(dir, "link.json"))
	for _, args := range [][]string{
		{"--report", tasks},
		{"--journal", tasks},
		{"--metrics", filepath.Join(filepath.Dir(tasks), ".", "tasks.json")},
		{"--report", filepath.Join(dir, "link.json")},
		{"--journal", filepath.Join(dir, "out"), "--report", filepath.Join(dir, "out"), "--report-format", "json"},
		{"--trace", tasks},
		{"--report", filepath.Join(dir, "out"), "--trace", filepath.Join(dir, "out"), "--report-format", "html"},
	} {
		r := startGorun(t, nil, append([]string{"exec", tasks}, args...)...)
		if code := r.wait(t, 30*time.Second); code != 2 {
			t.Errorf("%q: got exit %d, want 2; stderr:\n%s", args, code, r.stderr)
		}
		if !strings.Contains(r.stderr.String(), "is the input file") && !strings.Contains(r.stderr.String(), "are the same file") {
			t.Errorf("%q: got stderr %q, want the clash named", args, r.stderr)
		}
		if got, _ := os.ReadFile(tasks); string(got) != content {
			t.Errorf("%q: got the task file %q, want it unchanged", args, got)
		}
		if _, err := os.Stat(side); err == nil {
			t.Errorf("%q: a task ran, want nothing run", args)
		}
		if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
			t.Errorf("%q: an output was written, want none", args)
		}
	}
}

func TestE2EKeepOrderSpillThenResume(t *testing.T) {
	// Task 1 waits until the last task has run; the 100 between print 300 KB each and
	// wait for it: 30 MB held, beyond the 16 MiB keep-order holds in memory.
	dir := t.TempDir()
	side := filepath.Join(dir, "side")
	var b strings.Builder
	fmt.Fprintf(&b, "while [ ! -e %s/go ]; do sleep 0.01; done; echo 1 >> %s\n", dir, side)
	for i := 2; i <= 101; i++ {
		fmt.Fprintf(&b, "head -c 300000 /dev/zero | tr '\\0' x; echo; echo %d >> %s\n", i, side)
	}
	fmt.Fprintf(&b, "echo 102 >> %s; touch %s/go\n", side, dir)
	tasks := writeFile(t, "tasks", b.String())
	jpath := filepath.Join(dir, "journal")
	r := startGorun(t, nil, "exec", tasks, "-j", "4", "-k", "--journal", jpath)
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("got exit %d, want 0; stderr:\n%s", code, r.stderr)
	}
	keys := 0
	if err := journal.Read(jpath, func(rec journal.Record) error {
		if rec.Key == "" {
			t.Errorf("task %d: journaled with an empty key, want its identity", rec.Index)
		}
		keys++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if keys != 102 {
		t.Errorf("got %d records, want 102", keys)
	}
	before := sideCounts(t, side)
	r = startGorun(t, nil, "exec", tasks, "-j", "4", "-k", "--journal", jpath, "--resume")
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("resume: got exit %d, want 0; stderr:\n%s", code, r.stderr)
	}
	if !strings.Contains(r.stderr.String(), "102 skipped") {
		t.Errorf("resume: got summary %q, want all 102 skipped", r.stderr)
	}
	after := sideCounts(t, side)
	for n, c := range after {
		if c != before[n] {
			t.Errorf("task %s: ran again on resume", n)
		}
	}
}

func TestE2EFileModes(t *testing.T) {
	dir := t.TempDir()
	tasks := writeFile(t, "tasks", "echo secret-output\n")
	var paths []string
	for _, ext := range []string{"json", "xml", "md", "txt"} {
		jpath := filepath.Join(dir, "journal-"+ext)
		report := filepath.Join(dir, "report."+ext)
		metrics := filepath.Join(dir, "metrics-"+ext+".prom")
		if code := startGorun(t, nil, "exec", tasks, "--journal", jpath, "--report", report, "--metrics", metrics).wait(t, 30*time.Second); code != 0 {
			t.Fatalf("%s: got exit %d, want 0", ext, code)
		}
		paths = append(paths, jpath, report, metrics)
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: got mode %v, want 0600", filepath.Base(p), got)
		}
	}
}
