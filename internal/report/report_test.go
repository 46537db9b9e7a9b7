package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got\n%s\nwant\n%s", path, got, want)
	}
}

func code(n int) *int { return &n }

var start = time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC)

func fixture() []jobs.Result {
	return []jobs.Result{
		{ID: "fetch", Index: 1, Status: jobs.Succeeded, ExitCode: code(0), Attempts: 1, StartedAt: start, Duration: jobs.Seconds(120 * time.Millisecond)},
		{ID: "build", Index: 2, Status: jobs.Failed, ExitCode: code(3), Attempts: 1, StartedAt: start, Duration: jobs.Seconds(1500 * time.Millisecond),
			StderrTail: "compiling\nerror: missing semicolon\n"},
		{ID: "slow", Index: 3, Status: jobs.TimedOut, Signal: "SIGTERM", Attempts: 1, StartedAt: start, Duration: jobs.Seconds(2 * time.Second)},
		{ID: "stubborn", Index: 4, Status: jobs.Cancelled, Signal: "SIGKILL", Attempts: 1, StartedAt: start, Duration: jobs.Seconds(700 * time.Millisecond)},
		{ID: "later", Index: 5, Status: jobs.Skipped, Error: "interrupted by SIGINT"},
		{ID: "nodir", Index: 6, Status: jobs.Failed, Attempts: 1, StartedAt: start, Error: "start task nodir: chdir /nope: no such file or directory"},
	}
}

func TestTextSummary(t *testing.T) {
	s := Summarize(fixture())
	s.Wall = 3 * time.Second
	var buf bytes.Buffer
	if err := WriteText(&buf, s); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.txt", buf.Bytes())
	if got, want := s.Failed(), 3; got != want {
		t.Errorf("Failed(): got %d, want %d", got, want)
	}
}

func TestSummaryListsInInputOrderWithinBound(t *testing.T) {
	s := &Summary{}
	n := MaxListed + 25
	for i := n; i >= 1; i-- { // results arrive in any order
		s.Add(jobs.Result{ID: "t", Index: i, Status: jobs.Failed})
	}
	if len(s.Listed) != MaxListed || s.Unlisted != 25 {
		t.Fatalf("got %d listed, %d unlisted, want %d and 25", len(s.Listed), s.Unlisted, MaxListed)
	}
	for i, r := range s.Listed {
		if r.Index != i+1 {
			t.Fatalf("listed[%d] is task %d, want %d: the first tasks in input order", i, r.Index, i+1)
		}
	}
}

func TestQuantiles(t *testing.T) {
	s := &Summary{}
	for i := 1; i <= 1000; i++ {
		s.Add(jobs.Result{Index: i, Status: jobs.Succeeded, StartedAt: start, Duration: jobs.Seconds(time.Duration(i) * time.Millisecond)})
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.95, 950 * time.Millisecond}, {1, time.Second}} {
		got := s.Quantile(tt.q)
		if diff := got - tt.want; diff < -tt.want/100 || diff > tt.want/100 {
			t.Errorf("Quantile(%v): got %v, want %v within 1%%", tt.q, got, tt.want)
		}
	}
	if (&Summary{}).Quantile(0.5) != 0 {
		t.Error("an empty summary has quantile 0")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 812 * time.Microsecond: "812µs", 12345 * time.Microsecond: "12.3ms",
		4567 * time.Millisecond: "4.57s", 123 * time.Second: "2m3s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v): got %q, want %q", d, got, want)
		}
	}
}
