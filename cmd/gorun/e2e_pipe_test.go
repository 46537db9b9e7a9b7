//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
	"github.com/gorun/gorun/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// hostile holds input items that break naive quoting.
var hostile = []string{
	"plain", "two words", "it's", `say "hi"`, "$(touch PWNED)", "`touch PWNED`",
	"; touch PWNED", "| touch PWNED", "' ; touch PWNED ; '", `" ; touch PWNED ; "`,
	"*", "-n", "line\nbreak", "\xff\xfe invalid utf-8", "${HOME}", `back\slash\`,
}

func TestE2ETemplatesNeverInject(t *testing.T) {
	input := strings.Join(hostile, "\x00") + "\x00"
	forms := map[string]func(dir string) []string{
		"argv": func(dir string) []string {
			return []string{"sh", "-c", `printf %s "$1" > "$2"`, "sh", "{}", dir + "/{#}.out"}
		},
		"shell":         func(dir string) []string { return []string{"printf %s {} > " + dir + "/{#}.out"} },
		"single-quoted": func(dir string) []string { return []string{"printf %s '{}' > " + dir + "/{#}.out"} },
		"double-quoted": func(dir string) []string { return []string{`printf %s "{}" > ` + dir + "/{#}.out"} },
	}
	for name, form := range forms {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"exec", "-0", "-j", "4", "--"}, form(dir)...)
			r := startGorunIn(t, dir, strings.NewReader(input), args...)
			if code := r.wait(t, 60*time.Second); code != 0 {
				t.Fatalf("got exit %d, want 0; stderr:\n%s", code, r.stderr)
			}
			for i, want := range hostile {
				got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%d.out", i+1)))
				if err != nil || string(got) != want {
					t.Errorf("item %d: the task got %q (%v), want exactly %q", i+1, got, err, want)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
				t.Error("an input item ran as shell code")
			}
		})
	}
}

func goldenFile(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", name+".golden"), got, *update)
}

// stableJSONL zeroes the fields of JSON results that differ from run to run.
func stableJSONL(t *testing.T, out string) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("stdout line %q is not JSON: %v", line, err)
		}
		for _, k := range []string{"started_at", "duration_s", "host"} { // host: the machine's name
			if _, ok := m[k]; !ok {
				t.Errorf("result has no %q: %s", k, line)
			}
			m[k] = "…"
		}
		delete(m, "wait_s") // present or not as the machine's timing goes
		delete(m, "waited_for")
		enc, _ := json.Marshal(m)
		b.Write(enc)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func TestE2EOutputModes(t *testing.T) {
	input := "echo out-1; echo err-1 >&2; echo out-1b\n" +
		"printf 'no newline at the end'\n" +
		"echo out-3; exit 3\n"
	for _, mode := range []string{"grouped", "line", "tag", "jsonl", "none"} {
		t.Run(mode, func(t *testing.T) {
			r := startGorun(t, strings.NewReader(input), "exec", "-j", "1", "-o", mode)
			if code := r.wait(t, 30*time.Second); code != 1 {
				t.Errorf("got exit %d, want 1", code)
			}
			got := []byte(r.stdout.String())
			if mode == "jsonl" {
				got = stableJSONL(t, r.stdout.String())
			}
			goldenFile(t, "output-"+mode, got)
			if stderr := r.stderr.String(); (mode == "grouped" || mode == "line" || mode == "tag") != strings.Contains(stderr, "err-1") {
				t.Errorf("%s: task stderr on gorun's stderr: %v; stderr:\n%s", mode, strings.Contains(stderr, "err-1"), stderr)
			}
		})
	}
}

func TestE2EKeepOrder(t *testing.T) {
	var b strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "sleep 0.0%d; echo %d\n", (i*7)%10, i)
	}
	for _, mode := range []string{"grouped", "line", "tag"} {
		r := startGorun(t, strings.NewReader(b.String()), "exec", "-j", "8", "-k", "-o", mode)
		if code := r.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("%s: got exit %d, want 0", mode, code)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout.String()), "\n")
		for i, line := range lines {
			want := fmt.Sprint(i + 1)
			if mode == "tag" {
				want = fmt.Sprintf("task-%d\t%d", i+1, i+1)
			}
			if line != want {
				t.Fatalf("%s: line %d is %q, want %q: output out of input order", mode, i+1, line, want)
			}
		}
	}
}

// TestE2EOneGiBOutput runs a task that prints 1 GiB, in every output mode, and checks
// gorun's peak memory.
func TestE2EOneGiBOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("prints 1 GiB per mode")
	}
	const size = 1 << 30
	for _, mode := range []string{"grouped", "line", "tag", "jsonl", "none"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(gorunBin, "exec", "-o", mode, "--", "sh", "-c", `yes 0123456789abcdef | head -c $1`, "sh")
			cmd.Stdin = strings.NewReader(fmt.Sprintln(size))
			cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
			var stdout countWriter
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			rss, err := testutil.RunWatchingRSS(cmd)
			if err != nil {
				t.Fatalf("%v; stderr:\n%s", err, stderr.String())
			}
			t.Logf("%s: peak RSS %.1f MiB, %d bytes on stdout", mode, float64(rss)/(1<<20), stdout.n)
			if rss > 64<<20 {
				t.Errorf("peak RSS %d MiB, want under 64 MiB", rss>>20)
			}
			// yes prints 17-byte lines; the last one is cut short, and the line modes
			// end it with a newline.
			wantOut := int64(size)
			switch mode {
			case "jsonl", "none":
				wantOut = -1
			case "line":
				wantOut = size + 1
			case "tag":
				wantOut = size + 1 + int64(len("task-1\t"))*(size/17+1)
			}
			if wantOut >= 0 && stdout.n != wantOut {
				t.Errorf("got %d bytes on stdout, want %d", stdout.n, wantOut)
			}
			if mode == "jsonl" {
				var r jobs.Result
				if err := json.Unmarshal(stdout.head, &r); err != nil || r.StdoutBytes != size || len(r.StdoutTail) != process.TailBytes {
					t.Errorf("result %v: stdout_bytes %d tail %d bytes, want %d and %d", err, r.StdoutBytes, len(r.StdoutTail), size, process.TailBytes)
				}
			}
		})
	}
}

// countWriter counts what is written and keeps the first 64 KiB.
type countWriter struct {
	n    int64
	head []byte
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if room := 64<<10 - len(c.head); room > 0 {
		c.head = append(c.head, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func TestE2EBrokenPipe(t *testing.T) {
	mark := testutil.NewMark(t)
	cmd := exec.Command(gorunBin, "exec", "-j", "2", "--", "sh -c 'echo {}; sleep 5'")
	cmd.Stdin = strings.NewReader(strings.Repeat("x\n", 200))
	cmd.Env = append(os.Environ(), testutil.MarkVar+"="+mark, "XDG_CONFIG_HOME="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "x\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	out.Close() // as `| head -1` does
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("gorun hangs after its stdout was closed")
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %v, want the run stopped soon after stdout closed", took)
	}
	if code := cmd.ProcessState.ExitCode(); code != 141 {
		t.Errorf("got exit %d, want 141; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "skipped") || strings.Contains(stderr.String(), "panic") {
		t.Errorf("stderr %q, want a summary with skipped tasks and no panic", stderr.String())
	}
	testutil.NoSurvivors(t, mark)
}

func TestE2ELongInputLine(t *testing.T) {
	line := "printf %s " + strings.Repeat("a", 10<<20) + "\n"
	r := startGorun(t, strings.NewReader("\n"+line+"echo after\n"), "exec", "-j", "1")
	if code := r.wait(t, 60*time.Second); code != 1 {
		t.Errorf("got exit %d, want 1", code)
	}
	if got := r.stderr.String(); !strings.Contains(got, `task-1 "printf %s aaaa`) || !strings.Contains(got, `…"  failed`) || !strings.Contains(got, "(input line 2)") || !strings.Contains(got, "argument list too long") {
		t.Errorf("summary %q, want task-1 failed with a clear reason naming input line 2", got)
	}
	if !strings.Contains(r.stdout.String(), "after") {
		t.Error("the task after the long line did not run")
	}
}

func TestE2EJSONLInput(t *testing.T) {
	good := writeFile(t, "tasks.jsonl", `{"id": "a", "run": "echo from-a"}`+"\n\n"+`{"cmd": ["echo", "from-argv"], "timeout": "5s"}`+"\n")
	r := startGorun(t, nil, "exec", good)
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("got exit %d, want 0; stderr:\n%s", code, r.stderr)
	}
	if out := r.stdout.String(); !strings.Contains(out, "from-a") || !strings.Contains(out, "from-argv") {
		t.Errorf("stdout %q, want both tasks' output", out)
	}
	// On a stream, a bad line is an invalid task and the rest runs
	// (TestE2EJSONLStreamInvalid); with nothing else, it is still exit 1.
	bad := `{"run": "echo x", "timeuot": "1s"}` + "\n"
	r = startGorun(t, strings.NewReader(bad), "exec", "--format", "jsonl", "-")
	if code := r.wait(t, 30*time.Second); code != 1 {
		t.Errorf("got exit %d, want 1", code)
	}
	if got := r.stderr.String(); !strings.Contains(got, "task-1  invalid  not started  -  stdin:1:19: unknown key \"timeuot\"\n") {
		t.Errorf("stderr %q, want the bad line and key named", got)
	}
}

// lineGen generates n input lines without holding them.
type lineGen struct{ n, i int }

func (g *lineGen) Read(p []byte) (int, error) {
	w := 0
	for g.i < g.n {
		s := fmt.Sprintf("item-%d\n", g.i)
		if w+len(s) > len(p) {
			break
		}
		w += copy(p[w:], s)
		g.i++
	}
	if w == 0 {
		return 0, io.EOF
	}
	return w, nil
}

// TestE2EMillionLines streams 100,000 and then 1,000,000 input lines through the real
// binary and compares its peak RSS. The tasks name a program that does not exist, so
// each one fails to start without a fork: a million real processes would take most of
// an hour, and every other part of a task's way (reader, pool, fan-in, summary, results)
// is the same.
func TestE2EMillionLines(t *testing.T) {
	if testing.Short() {
		t.Skip("streams a million lines")
	}
	rss := map[int]int64{}
	for _, n := range []int{100_000, 1_000_000} {
		cmd := exec.Command(gorunBin, "exec", "-j", "8", "-o", "none", "--", "gorun-test-no-such-program", "{}")
		cmd.Stdin = &lineGen{n: n}
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		peak, err := testutil.RunWatchingRSS(cmd)
		rss[n] = peak
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Fatalf("%d lines: exit %d (%v), want 1; stderr:\n%s", n, code, err, stderr.String())
		}
		if want := fmt.Sprintf("gorun: %d tasks", n); !strings.Contains(stderr.String(), want) {
			t.Fatalf("%d lines: summary %q, want %q", n, stderr.String(), want)
		}
		t.Logf("%d lines: peak RSS %.1f MiB in %v", n, float64(rss[n])/(1<<20), time.Since(start).Round(time.Millisecond))
	}
	if rss[1_000_000] > 50<<20 {
		t.Errorf("peak RSS %d MiB for a million lines, want under 50 MiB", rss[1_000_000]>>20)
	}
	// The target is 1.1x; 1 MiB more is allowed for the garbage collector's timing.
	if limit := rss[100_000]*11/10 + 1<<20; rss[1_000_000] > limit {
		t.Errorf("peak RSS %d KiB for 1M lines, %d KiB for 100k: memory grows with the input", rss[1_000_000]>>10, rss[100_000]>>10)
	}
}
