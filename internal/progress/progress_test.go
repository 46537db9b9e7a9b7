package progress

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/gorun/gorun/internal/jobs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBarCountsAndErases(t *testing.T) {
	var term syncBuf
	b := Start(&term, 4, nil)
	b.Add(jobs.Result{Status: jobs.Succeeded})
	b.Add(jobs.Result{Status: jobs.Failed})
	b.Add(jobs.Result{Status: jobs.TimedOut})
	time.Sleep(2 * Interval)
	out := b.Wrap(&term)
	_, _ = out.Write([]byte("task output\n"))
	time.Sleep(2 * Interval)
	b.Stop()
	got := term.String()
	if !strings.Contains(got, "1 ok, 2 failed") || !strings.Contains(got, "(3/4") {
		t.Errorf("bar %q, want 1 ok, 2 failed, 3 of 4", got)
	}
	i := strings.Index(got, "task output")
	if i < 4 || got[i-4:i] != "\r\x1b[K" {
		t.Errorf("task output not written on an erased line: %q", got)
	}
	// Drawn again after the output, then erased at Stop: the last line ends blank.
	last := got[strings.LastIndex(got, "\n")+1:]
	if j := strings.LastIndex(last, "\r"); last[j+1:] != "\x1b[K" {
		t.Errorf("the bar is not erased at Stop: %q", last)
	}
}

func TestUnknownTotal(t *testing.T) {
	var term syncBuf
	b := Start(&term, -1, nil)
	for range 5 {
		b.Add(jobs.Result{Status: jobs.Succeeded})
	}
	time.Sleep(2 * Interval)
	b.Stop()
	if got := term.String(); !strings.Contains(got, "5 ok, 0 failed") || !strings.Contains(got, "tasks/") {
		t.Errorf("bar %q, want a count and a rate", got)
	}
}

// TestLineFitsTheTerminal: whatever the width, the bar holds fewer characters than the
// terminal has columns, so the terminal never wraps it; what does not fit is left out,
// least useful first.
func TestLineFitsTheTerminal(t *testing.T) {
	for _, cols := range []int{1, 10, 20, 30, 40, 50, 60, 80, 120, 300} {
		for _, total := range []int{-1, 0, 12, 123456789} {
			for _, held := range []string{"", "concurrency 4 of 8 after back-off"} {
				line := Line(total, 7, 5, 2, 3*time.Second, held, cols)
				if n := len([]rune(line)); n >= cols {
					t.Errorf("cols %d, total %d, held %q: %d characters, want fewer than %d: %q", cols, total, held, n, cols, line)
				}
			}
		}
	}
	if got, want := Line(12, 6, 5, 1, 3*time.Second, "", 120), "[===============>              ] (6/12) 5 ok, 1 failed, 2.0 tasks/s, 3s left"; got != want {
		t.Errorf("wide: got %q, want %q", got, want)
	}
	if got, want := Line(12, 6, 5, 1, 3*time.Second, "", 50), "(6/12) 5 ok, 1 failed, 2.0 tasks/s, 3s left"; got != want {
		t.Errorf("50 columns: got %q, want %q", got, want)
	}
	if got, want := Line(12, 6, 5, 1, 3*time.Second, "", 30), "(6/12) 5 ok, 1 failed"; got != want {
		t.Errorf("30 columns: got %q, want %q", got, want)
	}
	// What holds the run back goes after the counts, and before the rate and the time
	// left, which give way to it first.
	held := "waiting: memfree"
	if got, want := Line(12, 6, 5, 1, 3*time.Second, held, 120), "[===============>              ] (6/12) 5 ok, 1 failed, waiting: memfree, 2.0 tasks/s, 3s left"; got != want {
		t.Errorf("wide, held: got %q, want %q", got, want)
	}
	if got, want := Line(12, 6, 5, 1, 3*time.Second, held, 50), "(6/12) 5 ok, 1 failed, waiting: memfree"; got != want {
		t.Errorf("50 columns, held: got %q, want %q", got, want)
	}
	if got, want := Line(12, 6, 5, 1, 3*time.Second, held, 30), "(6/12) 5 ok, 1 failed"; got != want {
		t.Errorf("30 columns, held: got %q, want %q", got, want)
	}
}

// TestBarFollowsResize: the width is read at each redraw.
func TestBarFollowsResize(t *testing.T) {
	var term syncBuf
	var cols atomic.Int64
	cols.Store(120)
	b := start(&term, 12, func() int { return int(cols.Load()) }, nil)
	b.Add(jobs.Result{Status: jobs.Succeeded})
	time.Sleep(2 * Interval)
	cols.Store(40)
	mark := len(term.String())
	time.Sleep(3 * Interval)
	b.Stop()
	wide, narrow := term.String()[:mark], term.String()[mark:]
	if !strings.Contains(wide, "[") {
		t.Errorf("at 120 columns: no bar drawn: %q", wide)
	}
	frames := strings.Split(narrow, "\r")
	if len(frames) < 3 {
		t.Fatalf("no redraw after the resize: %q", narrow)
	}
	for _, f := range frames[2:] { // the first may have been drawn as the width changed
		if f = strings.TrimSuffix(f, "\x1b[K"); len([]rune(f)) >= 40 {
			t.Errorf("after a resize to 40 columns: a frame of %d characters: %q", len([]rune(f)), f)
		}
	}
}

// TestBarSaysWhatHoldsTheRunBack: the bar shows what holds the run back while it
// does, and no longer once it stops.
func TestBarSaysWhatHoldsTheRunBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var term syncBuf
		var held atomic.Value
		held.Store("waiting: limit api")
		b := start(&term, 12, func() int { return 120 }, func() string { return held.Load().(string) })
		time.Sleep(2*Interval + Interval/2) // between redraws
		if got := term.String(); !strings.Contains(got, "(0/12) 0 ok, 0 failed, waiting: limit api") {
			t.Errorf("while held back: got %q, want the reason after the counts", got)
		}
		held.Store("")
		mark := len(term.String())
		time.Sleep(2 * Interval)
		b.Stop()
		later := term.String()[mark:]
		if !strings.Contains(later, "(0/12) 0 ok, 0 failed") || strings.Contains(later, "waiting") {
			t.Errorf("once no longer held back: got %q, want the counts and no reason", later)
		}
	})
}
