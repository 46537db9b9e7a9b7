//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/journal"
	"github.com/gorun/gorun/internal/testutil"
)

func jsonlResults(t *testing.T, out string) map[string]jobs.Result {
	t.Helper()
	res := map[string]jobs.Result{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r jobs.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("stdout line %q: %v", sc.Text(), err)
		}
		res[r.ID] = r
	}
	return res
}

func TestE2ERetries(t *testing.T) {
	dir := t.TempDir()
	tasks := writeFile(t, "t.yaml", fmt.Sprintf(`version: 1
tasks:
  - id: flaky
    run: echo "$GORUN_ATTEMPT" >> %[1]s/attempts; [ "$GORUN_ATTEMPT" -ge 3 ]
    retries: 4
    retry_delay: 50ms
  - id: hopeless
    run: echo "$GORUN_ATTEMPT" >> %[1]s/hopeless; exit 7
`, dir))
	r := startGorun(t, nil, "exec", tasks, "-o", "jsonl", "--retries", "1", "--retry-delay", "10ms")
	if code := r.wait(t, 30*time.Second); code != 1 {
		t.Errorf("got exit %d, want 1 (hopeless fails)", code)
	}
	res := jsonlResults(t, r.stdout.String())
	if f := res["flaky"]; f.Status != jobs.Succeeded || f.Attempts != 3 {
		t.Errorf("flaky: got %s after %d attempts, want succeeded after 3", f.Status, f.Attempts)
	}
	if h := res["hopeless"]; h.Status != jobs.Failed || h.Attempts != 2 || *h.ExitCode != 7 {
		t.Errorf("hopeless: got %s after %d attempts, want failed after 2 (--retries 1)", h.Status, h.Attempts)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "attempts")); string(got) != "1\n2\n3\n" {
		t.Errorf("GORUN_ATTEMPT went %q, want 1, 2, 3", got)
	}
}

func TestE2EFailFast(t *testing.T) {
	r := startGorun(t, strings.NewReader("exit 1\ntrue\ntrue\ntrue\n"), "exec", "-j", "1", "--fail-fast")
	if code := r.wait(t, 30*time.Second); code != 1 {
		t.Errorf("got exit %d, want 1", code)
	}
	if got := r.stderr.String(); !strings.Contains(got, "0 succeeded, 1 failed, 0 timed out, 0 cancelled, 3 skipped") {
		t.Errorf("summary %q, want 1 failed and 3 skipped", got)
	}
}

// TestE2ECrashAndResume kills gorun with SIGKILL at several points of a 200-task run
// and resumes it each time: in the end every task succeeded exactly once in the
// journal, and no task that had finished before a kill ran again.
func TestE2ECrashAndResume(t *testing.T) {
	dir := t.TempDir()
	side := filepath.Join(dir, "side-effects")
	var b strings.Builder
	b.WriteString("version: 1\ntasks:\n")
	for i := 1; i <= 200; i++ {
		fmt.Fprintf(&b, "  - id: t%d\n    run: sleep 0.0$((%d %% 7)); echo $GORUN_TASK_ID >> %s\n", i, i, side)
	}
	tasks := writeFile(t, "t.yaml", b.String())
	jpath := filepath.Join(dir, "journal")

	sideCounts := func() map[string]int {
		c := map[string]int{}
		data, _ := os.ReadFile(side)
		for _, id := range strings.Fields(string(data)) {
			c[id]++
		}
		return c
	}
	journaled := func() map[string]int {
		c := map[string]int{}
		if err := journal.Read(jpath, func(r journal.Record) error {
			if r.Status == jobs.Succeeded {
				c[r.ID]++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i, delay := range []time.Duration{150 * time.Millisecond, 350 * time.Millisecond, 600 * time.Millisecond} {
		before, sideBefore := journaled(), sideCounts()
		r := startGorun(t, nil, "exec", tasks, "-j", "8", "--journal", jpath, "--resume")
		time.Sleep(delay)
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		r.wait(t, 10*time.Second)
		testutil.NoSurvivors(t, r.mark) // the guard killed the run's tasks
		after := sideCounts()
		for id := range before {
			if after[id] != sideBefore[id] {
				t.Errorf("kill %d: %s had finished before, and ran again", i+1, id)
			}
		}
		t.Logf("kill %d after %v: %d tasks journaled as succeeded", i+1, delay, len(journaled()))
	}
	before := journaled()
	sideBefore := sideCounts()
	r := startGorun(t, nil, "exec", tasks, "-j", "8", "--journal", jpath, "--resume")
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("final resume: exit %d; stderr:\n%s", code, r.stderr)
	}
	if got := r.stderr.String(); !strings.Contains(got, fmt.Sprintf("%d skipped", len(before))) {
		t.Errorf("final resume: summary %q, want the %d finished tasks skipped", got, len(before))
	}
	final := journaled()
	after := sideCounts()
	for i := 1; i <= 200; i++ {
		id := fmt.Sprintf("t%d", i)
		if final[id] != 1 {
			t.Errorf("%s is in the journal %d times as succeeded, want exactly once", id, final[id])
		}
		if _, done := before[id]; done && after[id] != sideBefore[id] {
			t.Errorf("%s ran again although it had finished", id)
		}
		if after[id] < 1 {
			t.Errorf("%s never ran", id)
		}
	}
}

func TestE2ETornJournalResumes(t *testing.T) {
	dir := t.TempDir()
	jpath := filepath.Join(dir, "journal")
	tasks := writeFile(t, "t.yaml", fmt.Sprintf("version: 1\ntasks:\n  - id: a\n    run: echo a >> %[1]s/side\n  - id: b\n    run: echo b >> %[1]s/side\n", dir))
	r := startGorun(t, nil, "exec", tasks, "-j", "1", "--journal", jpath)
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	data, _ := os.ReadFile(jpath)
	if err := os.WriteFile(jpath, data[:len(data)-30], 0o644); err != nil { // b's record torn
		t.Fatal(err)
	}
	r = startGorun(t, nil, "exec", tasks, "-j", "1", "--journal", jpath, "--resume")
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("resume after a torn line: exit %d; stderr:\n%s", code, r.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "side")); string(got) != "a\nb\nb\n" {
		t.Errorf("side effects %q, want a once and b again (its record was torn)", got)
	}
}

func TestE2ELock(t *testing.T) {
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "lock")
	tasks := writeFile(t, "t.yaml", "version: 1\ntasks:\n  - run: sleep 0.5\n")
	for round := range 10 {
		var wg sync.WaitGroup
		codes := make([]int, 2)
		took := make([]time.Duration, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				j, rep := filepath.Join(dir, fmt.Sprintf("j%d-%d", round, i)), filepath.Join(dir, fmt.Sprintf("r%d-%d.json", round, i))
				cmd := exec.Command(gorunBin, "exec", tasks, "--lock", lockPath, "--journal", j, "--report", rep)
				cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir)
				start := time.Now()
				_ = cmd.Run()
				took[i] = time.Since(start)
				codes[i] = cmd.ProcessState.ExitCode()
				if codes[i] == 75 {
					for _, f := range []string{j, rep} {
						if _, err := os.Stat(f); err == nil {
							t.Errorf("round %d: the run that found the lock held wrote %s", round, f)
						}
					}
				}
			}()
		}
		wg.Wait()
		if !(codes[0] == 0 && codes[1] == 75 || codes[0] == 75 && codes[1] == 0) {
			t.Errorf("round %d: exit codes %v, want one 0 and one 75", round, codes)
		}
		for i, c := range codes {
			if c == 75 {
				if took[i] > time.Second {
					t.Errorf("round %d: the refused run took %v, want it to exit at once", round, took[i])
				}
				if round == 0 {
					t.Logf("refused run exited 75 after %v (process start included)", took[i])
				}
			}
		}
	}
}

func TestE2ETaskSeesOnlyStandardDescriptors(t *testing.T) {
	dir := t.TempDir()
	// gorun itself inherits a descriptor (3), as from a careless parent; its own lock,
	// journal and report descriptors are open too. The task must see none of them: the
	// descriptors of a child of the task are listed (the task's own shell would show
	// the one its glob opens).
	leak, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer leak.Close()
	cmd := exec.Command(gorunBin, "exec", "--lock", filepath.Join(dir, "lock"), "--journal", filepath.Join(dir, "j"), "--report", filepath.Join(dir, "r.json"))
	// The background child is listed once it is sleep: before its exec it is a copy of
	// the shell, with whatever the shell has open for itself at that moment.
	cmd.Stdin = strings.NewReader(`sleep 5 & p=$!; until [ "$(cat /proc/$p/comm)" = sleep ]; do :; done; ls /proc/$p/fd | sort -n | tr '\n' ' '; kill $p` + "\n")
	cmd.ExtraFiles = []*os.File{leak}
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "0 1 2" {
		t.Errorf("the task sees descriptors %q, want only 0 1 2", got)
	}
}

func TestE2ECronLike(t *testing.T) {
	dir := t.TempDir()
	tasks := writeFile(t, "nightly.yaml", fmt.Sprintf("version: 1\ntasks:\n  - id: hello\n    run: echo hello > %s/out; echo \"home=[$HOME]\"\n  - cmd: [ls, /]\n", dir))
	cmd := exec.Command("env", "-i", "PATH=/usr/bin:/bin", gorunBin, "exec", tasks,
		"--journal", filepath.Join(dir, "journal"), "--report", filepath.Join(dir, "report.xml"), "--metrics", filepath.Join(dir, "gorun.prom"), "-q")
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(out) != 0 {
		t.Errorf("quiet run printed %q, want nothing when every task succeeds", out)
	}
	for _, f := range []string{"out", "journal", "report.xml", "gorun.prom"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s missing: %v", f, err)
		}
	}
}

func TestE2EQuietShowsFailures(t *testing.T) {
	r := startGorun(t, strings.NewReader("echo fine\necho out-of-failing; echo err-of-failing >&2; exit 2\n"), "exec", "-q")
	if code := r.wait(t, 30*time.Second); code != 1 {
		t.Errorf("got exit %d, want 1", code)
	}
	if r.stdout.String() != "" {
		t.Errorf("quiet stdout %q, want nothing", r.stdout.String())
	}
	got := r.stderr.String()
	for _, want := range []string{"1 failed", "--- task-2 stdout ---\nout-of-failing\n", "--- task-2 stderr ---\nerr-of-failing\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("quiet summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "fine") {
		t.Errorf("quiet summary shows the output of a task that succeeded:\n%s", got)
	}
}

func TestE2EReportsAndReportCommand(t *testing.T) {
	dir := t.TempDir()
	tasks := writeFile(t, "t.yaml", "version: 1\ntasks:\n  - id: ok\n    run: echo fine\n  - id: bad\n    run: echo 'broken <pipe> & more' >&2; exit 3\n")
	jpath := filepath.Join(dir, "journal")
	args := []string{"exec", tasks, "--journal", jpath}
	for _, ext := range []string{"json", "xml", "md"} {
		args = append(args[:4], "--report", filepath.Join(dir, "report."+ext))
		r := startGorun(t, nil, args...)
		if code := r.wait(t, 30*time.Second); code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
	}
	var doc struct {
		Totals struct {
			Tasks int `json:"tasks"`
		} `json:"totals"`
		Results []jobs.Result `json:"results"`
	}
	data, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	if err := json.Unmarshal(data, &doc); err != nil || doc.Totals.Tasks != 2 || len(doc.Results) != 2 || doc.Results[1].ID != "bad" {
		t.Errorf("JSON report: %v %+v", err, doc)
	}
	data, _ = os.ReadFile(filepath.Join(dir, "report.xml"))
	var suite struct {
		Failures int `xml:"failures,attr"`
	}
	if err := xml.Unmarshal(data, &suite); err != nil || suite.Failures != 1 {
		t.Errorf("JUnit report: %v, failures %d", err, suite.Failures)
	}
	validateJUnitFile(t, filepath.Join(dir, "report.xml"))
	if data, _ = os.ReadFile(filepath.Join(dir, "report.md")); !strings.Contains(string(data), "| `bad` | failed | exit 3 |") {
		t.Errorf("Markdown report:\n%s", data)
	}
	// The journal holds three runs of the same two tasks; the report shows each once.
	r := startGorun(t, nil, "report", jpath, "--format", "junit")
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("report: exit %d; stderr:\n%s", code, r.stderr)
	}
	if err := xml.Unmarshal([]byte(r.stdout.String()), &suite); err != nil || !strings.Contains(r.stdout.String(), `tests="2"`) {
		t.Errorf("gorun report: %v\n%s", err, r.stdout)
	}
	out := filepath.Join(dir, "from-journal.xml")
	os.WriteFile(out, []byte(r.stdout.String()), 0o644)
	validateJUnitFile(t, out)
}

func validateJUnitFile(t *testing.T, path string) { testutil.ValidateJUnit(t, path) }

func TestE2EValidateAndDryRun(t *testing.T) {
	dir := t.TempDir()
	tasks := writeFile(t, "t.yaml", fmt.Sprintf("version: 1\ndefaults:\n  timeout: 30s\ntasks:\n  - id: make-file\n    run: touch %s/ran\n    retries: 2\n    dir: /tmp\n", dir))
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"validate", tasks}, "ID         TIMEOUT  RETRIES  DIR   COMMAND\nmake-file  30s      2        /tmp  touch " + dir + "/ran\n"},
		{[]string{"exec", tasks, "--dry-run"}, "(cd /tmp && exec /bin/sh -c 'touch " + dir + "/ran')  # make-file\n"},
	} {
		r := startGorun(t, nil, tt.args...)
		if code := r.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("%v: exit %d; stderr:\n%s", tt.args, code, r.stderr)
		}
		if got := r.stdout.String(); got != tt.want {
			t.Errorf("%v: got\n%s\nwant\n%s", tt.args, got, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("validate or --dry-run ran a task")
	}
	bad := writeFile(t, "bad.yaml", "version: 1\ntasks:\n  - id: a\n    run: x\n    cmd: [y]\n")
	r := startGorun(t, nil, "validate", bad)
	if code := r.wait(t, 30*time.Second); code != 2 || !strings.Contains(r.stderr.String(), bad+":5:10: task \"a\": cmd: give either") {
		t.Errorf("validate of a bad file: exit %d, stderr %q", code, r.stderr)
	}
}

// TestE2EResumeDirSpelling: a task whose dir is written relative, then absolute, is
// the same task for --resume.
func TestE2EResumeDirSpelling(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	jpath := filepath.Join(dir, "journal")
	for i, spelling := range []string{"sub", filepath.Join(dir, "sub"), "./sub/../sub/"} {
		tasks := writeFile(t, "t.yaml", fmt.Sprintf("version: 1\ntasks:\n  - id: a\n    run: echo ran >> %s/side\n    dir: %s\n", dir, spelling))
		r := startGorunIn(t, dir, nil, "exec", tasks, "--journal", jpath, "--resume")
		if code := r.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("dir %s: got exit %d, want 0; stderr:\n%s", spelling, code, r.stderr)
		}
		if i > 0 && !strings.Contains(r.stderr.String(), "1 skipped") {
			t.Errorf("dir %s: summary %q, want the task skipped as already succeeded", spelling, r.stderr)
		}
	}
	if side, _ := os.ReadFile(filepath.Join(dir, "side")); string(side) != "ran\n" {
		t.Errorf("the task ran %d times, want once", strings.Count(string(side), "ran"))
	}
}
