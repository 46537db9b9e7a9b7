//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// runOnTerminal runs gorun with stdout and stderr on a pseudo-terminal, as a person
// at a terminal does, and returns all it wrote.
func runOnTerminal(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	cmd := exec.Command(gorunBin, args...)
	cmd.Env = append(append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "TERM=xterm"), env...)
	cmd.Stdout, cmd.Stderr = tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(&out, ptmx)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, syscall.EIO) { // EIO: the other side closed
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("gorun still running after 60s")
	}
	_ = cmd.Wait()
	return out.String(), cmd.ProcessState.ExitCode()
}

func progressTasks(t *testing.T) string {
	var b strings.Builder
	b.WriteString("version: 1\ntasks:\n")
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&b, "  - id: t%d\n    run: sleep 0.2; echo line-%d\n", i, i)
	}
	return writeFile(t, "t.yaml", b.String())
}

func TestE2EProgressOnTerminal(t *testing.T) {
	out, code := runOnTerminal(t, nil, "exec", progressTasks(t), "-j", "3")
	if code != 0 {
		t.Fatalf("exit %d; output:\n%q", code, out)
	}
	if !strings.Contains(out, "ok, 0 failed") || !strings.Contains(out, "/12") {
		t.Fatalf("no progress bar drawn on the terminal:\n%q", out)
	}
	summary := strings.Index(out, "gorun: 12 tasks")
	if summary < 0 {
		t.Fatalf("no summary:\n%q", out)
	}
	if last := strings.LastIndex(out, "ok, 0 failed"); last > summary {
		t.Errorf("the bar is drawn after the summary began:\n%q", out)
	}
	// Between the last bar and the summary the bar is erased: the summary's line holds
	// nothing of it.
	lineStart := strings.LastIndex(out[:summary], "\n") + 1
	if seg := out[lineStart:summary]; strings.Contains(seg, "ok,") && !strings.HasSuffix(strings.TrimRight(seg, " "), "\r") {
		t.Errorf("the summary shares its line with the bar: %q", seg)
	}
	// Task output never shares a line with the bar: what follows the last carriage
	// return on a line of task output is that output alone.
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "line-") {
			continue
		}
		line = strings.TrimSuffix(line, "\r") // the terminal's own CR LF
		if i := strings.LastIndex(line, "\r"); i >= 0 {
			line = strings.TrimPrefix(line[i+1:], "\x1b[K") // the bar erased
		}
		if !strings.HasPrefix(line, "line-") {
			t.Errorf("task output mixed with the bar: %q", line)
		}
	}
	if !strings.Contains(out, "\x1b[32m12 succeeded\x1b[0m") {
		t.Errorf("statuses not coloured on a terminal:\n%q", out)
	}
}

func TestE2ENoColorAndNoBar(t *testing.T) {
	out, code := runOnTerminal(t, []string{"NO_COLOR=1"}, "exec", progressTasks(t), "-j", "6", "--progress", "never")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(out, "\x1b") || strings.Contains(out, "ok, 0 failed") {
		t.Errorf("NO_COLOR and --progress never: want no escape sequence and no bar:\n%q", out)
	}
}

func TestE2ENoProgressWhenPiped(t *testing.T) {
	r := startGorun(t, nil, "exec", progressTasks(t), "-j", "6")
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if got := r.stderr.String(); strings.ContainsAny(got, "\r\x1b") {
		t.Errorf("stderr is a pipe: want no bar and no escape sequence, got %q", got)
	}
}

func TestE2EVerboseLogs(t *testing.T) {
	r := startGorun(t, strings.NewReader("true\nexit 3\n"), "exec", "-v", "--log-format", "json", "-j", "1", "--retries", "1", "--retry-delay", "1ms")
	if code := r.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit %d", code)
	}
	var events []string
	for _, line := range strings.Split(r.stderr.String(), "\n") {
		if strings.HasPrefix(line, "{") {
			events = append(events, line)
		}
	}
	want := []string{`"msg":"run started"`, `"msg":"task started"`, `"msg":"task finished"`, `"msg":"task retried"`, `"msg":"run finished"`}
	all := strings.Join(events, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("no %s event in the logs:\n%s", w, all)
		}
	}
	r = startGorun(t, strings.NewReader("true\n"), "exec")
	r.wait(t, 30*time.Second)
	if strings.Contains(r.stderr.String(), "task started") {
		t.Error("events logged without -v")
	}
}

// TestE2EProgressFitsANarrowTerminal: in a terminal of 120 columns resized to 50 while
// the run goes on, every redraw of the bar fits in the terminal's width of the moment,
// so the terminal never wraps it and no stale copy is left.
func TestE2EProgressFitsANarrowTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gorunBin, "exec", progressTasks(t), "-j", "1")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "TERM=xterm")
	cmd.Stdout, cmd.Stderr = tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var out syncBuffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&out, ptmx); close(done) }()
	waitFor(t, 30*time.Second, "the bar at 120 columns", func() bool { return strings.Contains(out.String(), "] (") })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 50}); err != nil {
		t.Fatal(err)
	}
	mark := len(out.String())
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("gorun still running after 60s")
	}
	_ = cmd.Wait()
	narrow := out.String()[mark:]
	var frames []string
	for _, line := range strings.Split(narrow, "\n") {
		frames = append(frames, strings.Split(line, "\r")...)
	}
	drawn := 0
	for i, f := range frames {
		f = strings.TrimPrefix(strings.TrimSuffix(f, "\x1b[K"), "\x1b[K")
		if i < 2 || !strings.Contains(f, "ok,") || strings.HasPrefix(f, "gorun:") {
			continue // the frame in flight at the resize; lines that are not the bar
		}
		drawn++
		if n := len([]rune(f)); n >= 50 {
			t.Errorf("a frame of %d characters in a terminal of 50 columns: %q", n, f)
		}
	}
	if drawn == 0 {
		t.Errorf("no bar drawn after the resize to 50 columns:\n%q", narrow)
	}
}

// TestE2EProgressSaysWhatHoldsBack: while a pool of one holds the second task back
// with a worker free, the bar says so; once nothing waits any more, it says nothing.
func TestE2EProgressSaysWhatHoldsBack(t *testing.T) {
	file := writeFile(t, "t.yaml", "version: 1\nlimits: {api: {concurrency: 1}}\ntasks:\n"+
		"  - {id: a, run: sleep 1, limits: [api]}\n  - {id: b, run: sleep 1, limits: [api]}\n")
	out, code := runOnTerminal(t, nil, "exec", file, "-j", "2")
	if code != 0 {
		t.Fatalf("exit %d; output:\n%q", code, out)
	}
	held := strings.Index(out, "(0/2) 0 ok, 0 failed, waiting: limit api")
	if held < 0 {
		t.Fatalf("the bar never said what held the run back:\n%q", out)
	}
	// b starts once a ends, after a second: from then on nothing waits, and the bar
	// (drawn every 150ms, a reason kept 300ms) says so before b ends.
	if !regexp.MustCompile(`\(1/2\) 1 ok, 0 failed, [0-9.]+ tasks/s`).MatchString(out[held:]) {
		t.Errorf("the bar still says the run waits once b started:\n%q", out)
	}
}
