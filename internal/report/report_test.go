package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", name+".golden"), got, *update)
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
		{ID: "task-7", Index: 7, Command: `{"run": "x", "timeuot": "1s"}`, Status: jobs.Invalid, Error: `stdin:7:13: unknown key "timeuot"`},
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
	if got, want := s.Failed(), 4; got != want { // invalid counts: it did not succeed
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
		// values that round up to the next unit are written in it, never as 1e+03ms
		999700 * time.Microsecond: "1s", 999600 * time.Nanosecond: "1ms", 999 * time.Millisecond: "999ms",
		59996 * time.Millisecond: "1m0s", 1500 * time.Nanosecond: "1.5µs",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v): got %q, want %q", d, got, want)
		}
	}
}

func TestReportFormats(t *testing.T) {
	results := fixture()
	results[1].StderrTail = "compiling\nerror: missing <semicolon> & \x01bell \xff\n"
	s := Summarize(results)
	s.Wall = 3 * time.Second
	run := Run{ID: "0123456789abcdef", StartedAt: start, Hostname: "build-7"}
	for _, f := range []Format{JSON, JUnit, Markdown} {
		var buf bytes.Buffer
		if err := Write(&buf, f, run, s, SliceResults(results)); err != nil {
			t.Fatal(err)
		}
		golden(t, "report."+string(f), buf.Bytes())
		switch f {
		case JSON:
			var doc struct {
				Run     Run           `json:"run"`
				Totals  Totals        `json:"totals"`
				Results []jobs.Result `json:"results"`
			}
			if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
				t.Fatalf("JSON report does not parse: %v", err)
			}
			if doc.Run.ID != run.ID || doc.Totals.Tasks != 7 || doc.Totals.Counts[jobs.Failed] != 2 || doc.Totals.Counts[jobs.Invalid] != 1 || len(doc.Results) != 7 {
				t.Errorf("JSON report round trip: got %+v", doc)
			}
			// JSON holds valid UTF-8 only: compare with the results as JSON carries them.
			var want []jobs.Result
			enc, _ := json.Marshal(results)
			_ = json.Unmarshal(enc, &want)
			if !reflect.DeepEqual(doc.Results, want) {
				t.Errorf("results do not round-trip:\n got %+v\nwant %+v", doc.Results, want)
			}
		case JUnit:
			var suite struct {
				XMLName  xml.Name `xml:"testsuite"`
				Tests    int      `xml:"tests,attr"`
				Failures int      `xml:"failures,attr"`
				Skipped  int      `xml:"skipped,attr"`
				Cases    []struct {
					Name    string `xml:"name,attr"`
					Failure *struct {
						Type string `xml:"type,attr"`
						Text string `xml:",chardata"`
					} `xml:"failure"`
					Skipped *struct{} `xml:"skipped"`
				} `xml:"testcase"`
			}
			if err := xml.Unmarshal(buf.Bytes(), &suite); err != nil {
				t.Fatalf("JUnit report does not parse: %v", err)
			}
			if suite.Tests != 7 || suite.Failures != 4 || suite.Skipped != 2 || len(suite.Cases) != 7 {
				t.Errorf("got tests=%d failures=%d skipped=%d cases=%d, want 7, 4, 2, 7", suite.Tests, suite.Failures, suite.Skipped, len(suite.Cases))
			}
			if c := suite.Cases[1]; c.Failure == nil || c.Failure.Type != "failed" || !strings.Contains(c.Failure.Text, "missing <semicolon> &") {
				t.Errorf("the failed task's case: %+v", c)
			}
			validateJUnit(t, buf.Bytes())
		}
	}
}

// validateJUnit checks a report against the JUnit schema CI servers read.
func validateJUnit(t *testing.T, doc []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.xml")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.ValidateJUnit(t, path)
}

func TestMetrics(t *testing.T) {
	s := Summarize(fixture())
	s.Wall = 3 * time.Second
	var buf bytes.Buffer
	if err := WriteMetrics(&buf, s, start, 1234.5); err != nil {
		t.Fatal(err)
	}
	golden(t, "metrics.prom", buf.Bytes())
	path := filepath.Join(t.TempDir(), "gorun.prom")
	os.WriteFile(path, buf.Bytes(), 0o644)
	if got := LastSuccess(path); got != 1234.5 {
		t.Errorf("LastSuccess: got %v, want the failed run to keep 1234.5", got)
	}
	ok := Summarize(fixture()[:1])
	buf.Reset()
	_ = WriteMetrics(&buf, ok, start, 1234.5)
	if want := fmt.Sprintf("gorun_last_success_timestamp_seconds %.3f\n", float64(start.Unix())); !strings.Contains(buf.String(), want) {
		t.Errorf("a good run should set the last success to its end:\n%s", buf.String())
	}
}

func TestQuietSummaryShowsTails(t *testing.T) {
	s := &Summary{KeepTails: true}
	for _, r := range fixture() {
		r.StdoutTail = "out of " + r.ID + "\n"
		r.StdoutBytes = 5000
		s.Add(r)
	}
	var buf bytes.Buffer
	_ = WriteText(&buf, s)
	if !strings.Contains(buf.String(), "--- build stdout (last 13 bytes; 4987 earlier not shown) ---\nout of build\n") ||
		!strings.Contains(buf.String(), "--- build stderr ---\ncompiling\nerror: missing semicolon\n") {
		t.Errorf("quiet summary lacks the failed task's tails:\n%s", buf.String())
	}
}

func TestTextShowsDuplicateExecutions(t *testing.T) {
	var s Summary
	s.Add(jobs.Result{ID: "a", Index: 1, Status: jobs.Succeeded, Attempts: 2, Duplicates: 1})
	var b strings.Builder
	if err := WriteText(&b, &s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "duplicate executions: 1 ") {
		t.Errorf("got %q, want the duplicate executions counted", b.String())
	}
}

func TestReportsNameWhereTasksRan(t *testing.T) {
	code := 3
	r := jobs.Result{ID: "a", Index: 1, Status: jobs.Failed, ExitCode: &code, Attempts: 1, Worker: "w1", Host: "node-7",
		StartedAt: time.Unix(0, 0), StderrTail: "boom"}
	var s Summary
	s.Add(r)
	var text, junit strings.Builder
	if err := WriteText(&text, &s); err != nil {
		t.Fatal(err)
	}
	if err := WriteJUnit(&junit, Run{}, &s, func(yield func(jobs.Result) bool) { yield(r) }); err != nil {
		t.Fatal(err)
	}
	if want := "boom (on worker w1, host node-7)"; !strings.Contains(text.String(), want) {
		t.Errorf("got summary %q, want it to contain %q", text.String(), want)
	}
	if want := "ran on: worker w1, host node-7"; !strings.Contains(junit.String(), want) {
		t.Errorf("got JUnit %q, want it to contain %q", junit.String(), want)
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"worker":"w1","host":"node-7"`; !strings.Contains(string(data), want) {
		t.Errorf("got JSON %s, want it to contain %s", data, want)
	}
}

// TestSummaryCountsSkippedByReason: an interruption that ends hundreds of tasks makes
// one line per reason, not one per task; only failed tasks are listed, by their input.
func TestSummaryCountsSkippedByReason(t *testing.T) {
	s := &Summary{}
	for i := 1; i <= 2; i++ {
		s.Add(jobs.Result{ID: fmt.Sprintf("task-%d", i), Index: i, Status: jobs.Succeeded, StartedAt: start, Duration: jobs.Seconds(time.Second)})
	}
	s.Add(jobs.Result{ID: "task-3", Index: 3, Input: "bad\tfile.txt", Status: jobs.Failed, ExitCode: code(1), StartedAt: start, Duration: jobs.Seconds(time.Second)})
	for i := 4; i <= 7; i++ {
		s.Add(jobs.Result{ID: fmt.Sprintf("task-%d", i), Index: i, Status: jobs.Cancelled, Signal: "SIGTERM", StartedAt: start, Duration: jobs.Seconds(time.Second)})
	}
	for i := 8; i <= 171; i++ {
		s.Add(jobs.Result{ID: fmt.Sprintf("task-%d", i), Index: i, Status: jobs.Skipped, Error: "interrupted by SIGINT"})
	}
	s.Add(jobs.Result{ID: "deploy", Index: 172, Status: jobs.Skipped, Error: `needs "build", which failed`})
	s.Add(jobs.Result{ID: "notify", Index: 173, Status: jobs.Skipped, Error: `needs "deploy", which was skipped (needs "build", which failed)`})
	for i := range MaxReasons + 2 {
		s.Add(jobs.Result{ID: fmt.Sprintf("odd-%d", i), Index: 174 + i, Status: jobs.Skipped, Error: fmt.Sprintf("reason %d", i)})
	}
	s.Wall = 7 * time.Second
	var buf bytes.Buffer
	if err := WriteText(&buf, s); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	for _, want := range []string{
		"(1.0 tasks/s)", // 7 tasks started in 7s: the skipped ones do not count
		"cancelled: 4 stopped while running (SIGTERM)\n",
		"skipped: 164 interrupted by SIGINT, 2 a task they need did not succeed, 1 reason 0, 1 reason 1,",
		"1 reason 5, 4 other reasons\n",
		`  task-3 "bad\tfile.txt"  failed  exit 1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n"); n != 6 {
		t.Errorf("got %d lines, want 6 (counts, durations, cancelled, skipped, the header and one failed task):\n%s", n, got)
	}
}
