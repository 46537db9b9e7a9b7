package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
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
	b := Start(&term, 4)
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
	if i < 1 || got[i-1] != '\r' {
		t.Errorf("task output not written on an erased line: %q", got)
	}
	// Drawn again after the output, then erased at Stop: the last line ends blank.
	last := got[strings.LastIndex(got, "\n")+1:]
	if j := strings.LastIndex(last, "\r"); strings.TrimSpace(last[j+1:]) != "" {
		t.Errorf("the bar is not erased at Stop: %q", last)
	}
}

func TestUnknownTotal(t *testing.T) {
	var term syncBuf
	b := Start(&term, -1)
	for range 5 {
		b.Add(jobs.Result{Status: jobs.Succeeded})
	}
	time.Sleep(2 * Interval)
	b.Stop()
	if got := term.String(); !strings.Contains(got, "5 ok, 0 failed") || !strings.Contains(got, "tasks/") {
		t.Errorf("bar %q, want a count and a rate", got)
	}
}
