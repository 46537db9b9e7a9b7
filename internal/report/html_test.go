package report

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

// hostile is a run whose every text field tries to break out of the page.
func hostile() []jobs.Result {
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	return []jobs.Result{
		{ID: "<script>alert(1)</script>", Index: 1, Status: jobs.Succeeded, ExitCode: code(0), Attempts: 1, Slot: 1,
			StartedAt: at(0), Duration: jobs.Seconds(time.Second), Command: `echo "</script><script>alert(2)</script>"`,
			StdoutTail: "</script>\n<!--\n", Host: "h"},
		{ID: `"><img src=x onerror=alert(3)>`, Index: 2, Status: jobs.Failed, ExitCode: code(1), Attempts: 2, Slot: 2,
			StartedAt: at(1500), Duration: jobs.Seconds(500 * time.Millisecond), Command: "printf '\xff\xfe'",
			StderrTail: "bad \xff\xfe bytes\u2028and a line separator\n", Host: "h",
			Earlier: []jobs.Try{{Status: jobs.Failed, ExitCode: code(1), Slot: 1, StartedAt: at(1000), Duration: jobs.Seconds(200 * time.Millisecond),
				StderrLast: "<b>first</b>"}}},
		{ID: "later", Index: 3, Status: jobs.Skipped, Error: "needs <x> & y"},
	}
}

func writeHTML(t *testing.T, results []jobs.Result) (string, *htmlData) {
	t.Helper()
	s := Summarize(results)
	s.Wall = 2 * time.Second
	var buf bytes.Buffer
	if err := WriteHTML(&buf, Run{ID: "r1", StartedAt: start, Hostname: "h", Command: "gorun exec '<t>.yaml'"}, s, SliceResults(results)); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	m := regexp.MustCompile(`(?s)<script type="application/json" id="data">(.*?)</script>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no data element in the page")
	}
	var d htmlData
	if err := json.Unmarshal([]byte(m[1]), &d); err != nil {
		t.Fatalf("the embedded data is not JSON: %v", err)
	}
	return page, &d
}

func TestHTMLKeepsTaskFieldsOutOfTheMarkup(t *testing.T) {
	page, d := writeHTML(t, hostile())
	for _, bad := range []string{"<script>alert", "</script><script>", "<img", "<b>first", "<!--\n", "<x>", "<t>.yaml"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q as markup", bad)
		}
	}
	if !strings.Contains(page, "<title>gorun: 3 tasks, 1 not ok (r1)</title>") {
		t.Errorf("title missing or wrong")
	}
	if n := strings.Count(page, "<script"); n != 2 {
		t.Errorf("%d script elements, want 2: the data and the page's own script", n)
	}
	if !strings.Contains(page, `\u003cscript\u003ealert(1)`) {
		t.Error("the hostile id is not in the data as escaped JSON")
	}
	if !utf8Valid(page) {
		t.Error("the page is not valid UTF-8")
	}
	// The data round-trips: ids as given, invalid bytes as U+FFFD.
	if got := d.Tasks[0][0]; got != "<script>alert(1)</script>" {
		t.Errorf("task 1 id: got %q", got)
	}
	if got := d.Tasks[1][11].(string); !strings.Contains(got, "bad \uFFFD bytes") {
		t.Errorf("invalid UTF-8 in stderr: got %q, want U+FFFD in its place", got)
	}
}

func TestHTMLTitleIsText(t *testing.T) {
	var buf bytes.Buffer
	run := Run{ID: `</title><script>alert(3)</script>&"'`, StartedAt: start}
	if err := WriteHTML(&buf, run, Summarize(hostile()), SliceResults(hostile())); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	want := "gorun: 3 tasks, 1 not ok (&lt;/title&gt;&lt;script&gt;alert(3)&lt;/script&gt;&amp;&#34;&#39;)"
	if got := strings.Count(page, want); got != 2 {
		t.Errorf("escaped title found %d times, want 2 (title and heading)", got)
	}
	if strings.Contains(page, "alert(3)</script>") {
		t.Error("the run id is in the page as markup")
	}
}

// TestHTMLPageHolesAreClosed holds what WriteHTML relies on when it fills the page
// without html/template: the page has exactly its four holes and no other template
// syntax, and neither the style nor the script can end its element early (nor open
// an HTML comment, which changes how a script element ends).
func TestHTMLPageHolesAreClosed(t *testing.T) {
	holes := regexp.MustCompile(`\{\{[^}]*\}\}`).FindAllString(htmlPage, -1)
	slices.Sort(holes)
	holes = slices.Compact(holes)
	if want := []string{"{{.Data}}", "{{.Script}}", "{{.Style}}", "{{.Title}}"}; !slices.Equal(holes, want) {
		t.Errorf("holes in the page: got %q, want %q", holes, want)
	}
	for _, f := range []struct{ name, text, end string }{
		{"report.css", htmlStyle, "</style"},
		{"report.js", htmlScript, "</script"},
		{"report.js", htmlScript, "<!--"},
	} {
		if strings.Contains(strings.ToLower(f.text), f.end) {
			t.Errorf("%s contains %q: it would end its element early", f.name, f.end)
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }

func TestHTMLDrawsEveryAttemptInItsSlot(t *testing.T) {
	_, d := writeHTML(t, hostile())
	if len(d.Bars) != 3 { // task 1 once, task 2 twice, task 3 never started
		t.Fatalf("%d bars, want 3: %v", len(d.Bars), d.Bars)
	}
	if want := [][2]string{{"h", "slot 1"}, {"h", "slot 2"}}; !slices.Equal(d.Lanes, want) {
		t.Errorf("lanes %v, want %v", d.Lanes, want)
	}
	// Task 2's first attempt ran in slot 1 from 1000ms, its second in slot 2.
	var got []string
	for _, b := range d.Bars {
		if b[4].(float64) == 1 {
			got = append(got, jsonOf(b[:6]))
		}
	}
	want := []string{`[0,1000,1200,1,1,1]`, `[1,1500,2000,1,1,2]`}
	if !slices.Equal(got, want) {
		t.Errorf("task 2's bars: got %v, want %v", got, want)
	}
	if d.Run.SpanMs != 2000 {
		t.Errorf("span %vms, want 2000", d.Run.SpanMs)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRemoteAttemptsArePackedIntoTheirWorkersLanes(t *testing.T) {
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	r := func(i int, worker string, from, to int) jobs.Result {
		return jobs.Result{ID: "t", Index: i, Status: jobs.Succeeded, ExitCode: code(0), Attempts: 1, Slot: i, Worker: worker, Host: "m-" + worker,
			StartedAt: at(from), Duration: jobs.Seconds(time.Duration(to-from) * time.Millisecond)}
	}
	// w1 runs two at once, then a third after the first ended; w2 runs one.
	_, d := writeHTML(t, []jobs.Result{r(1, "w1", 0, 100), r(2, "w1", 10, 300), r(3, "w1", 150, 200), r(4, "w2", 0, 50)})
	want := [][2]string{{"w1 @ m-w1", "slot 1"}, {"w1 @ m-w1", "slot 2"}, {"w2 @ m-w2", "slot 1"}}
	if !slices.Equal(d.Lanes, want) {
		t.Fatalf("lanes %v, want %v", d.Lanes, want)
	}
	lane := map[float64]float64{}
	for _, b := range d.Bars {
		lane[b[4].(float64)] = b[0].(float64)
	}
	if lane[0] != 0 || lane[1] != 1 || lane[2] != 0 || lane[3] != 2 {
		t.Errorf("lanes by task row: %v, want 0, 1, 0, 2", lane)
	}
}

func TestCriticalPathFollowsTheNeedThatEndedLast(t *testing.T) {
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	r := func(i int, id string, from, to int, needs ...string) jobs.Result {
		return jobs.Result{ID: id, Index: i, Status: jobs.Succeeded, ExitCode: code(0), Attempts: 1, Slot: 1, Needs: needs,
			StartedAt: at(from), Duration: jobs.Seconds(time.Duration(to-from) * time.Millisecond)}
	}
	_, d := writeHTML(t, []jobs.Result{
		r(1, "a", 0, 100), r(2, "b", 0, 300), r(3, "c", 100, 200, "a"),
		r(4, "d", 300, 400, "b", "c"), r(5, "e", 400, 450, "d"), r(6, "alone", 0, 900),
	})
	if want := []int{1, 3, 4}; !slices.Equal(d.Critical, want) {
		t.Errorf("critical path %v, want b → d → e (%v)", d.Critical, want)
	}
	_, d = writeHTML(t, []jobs.Result{r(1, "a", 0, 100), r(2, "b", 0, 300)})
	if len(d.Critical) != 0 {
		t.Errorf("critical path %v without needs, want none", d.Critical)
	}
	// A need of a matrix task is a need of each of its combinations.
	_, d = writeHTML(t, []jobs.Result{
		r(1, "m[x=1]", 0, 100), r(2, "m[x=2]", 0, 300), r(3, "m[x=3]", 0, 200),
		r(4, "after", 300, 400, "m"), r(5, "last", 400, 450, "after"),
	})
	if want := []int{1, 3, 4}; !slices.Equal(d.Critical, want) {
		t.Errorf("critical path %v, want m[x=2] → after → last (%v)", d.Critical, want)
	}
}

func TestTailsAreCutToTheBudget(t *testing.T) {
	if got := tailCap([]int{10, 20, 30}, 100); got <= 30 {
		t.Errorf("tails within the budget were cut to %d", got)
	}
	// 10 + 20 + c + c <= 70: c = 20.
	if got := tailCap([]int{10, 20, 100, 1000}, 70); got != 20 {
		t.Errorf("cap %d, want 20", got)
	}
	s, cut := cutTail("héllo wörld", 5)
	if s != "wörld"[1:] && s != "rld" || cut == 0 {
		t.Errorf("cutTail: got %q, %d", s, cut)
	}
	if !utf8Valid(s) {
		t.Errorf("cutTail split a rune: %q", s)
	}
}

func TestHTMLOfTenThousandTasksStaysSmall(t *testing.T) {
	var results []jobs.Result
	for i := 1; i <= 10000; i++ {
		results = append(results, jobs.Result{ID: "task-" + strings.Repeat("x", 8), Index: i, Status: jobs.Failed, ExitCode: code(1), Attempts: 1,
			Slot: i%16 + 1, StartedAt: start.Add(time.Duration(i) * time.Millisecond), Duration: jobs.Seconds(40 * time.Millisecond),
			Command: "sh -c 'exit 1' # " + strings.Repeat("c", 60), StdoutTail: strings.Repeat("o", 4096), StderrTail: strings.Repeat("e", 4096)})
	}
	s := Summarize(results)
	var buf bytes.Buffer
	if err := WriteHTML(&buf, Run{StartedAt: start}, s, SliceResults(results)); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > 5e6 {
		t.Errorf("the report of 10,000 tasks with 8 KiB of output each is %d bytes, want under 5 MB", buf.Len())
	}
}

// BenchmarkWriteHTML writes the report of 10,000 tasks with 8 KiB of output each.
func BenchmarkWriteHTML(b *testing.B) {
	var results []jobs.Result
	for i := 1; i <= 10000; i++ {
		results = append(results, jobs.Result{ID: "task-" + strconv.Itoa(i), Index: i, Status: jobs.Succeeded, ExitCode: code(0), Attempts: 1,
			Slot: i%16 + 1, StartedAt: start.Add(time.Duration(i) * time.Millisecond), Duration: jobs.Seconds(40 * time.Millisecond),
			Command: "./process --shard " + strconv.Itoa(i), StdoutTail: strings.Repeat("o", 4096), StderrTail: strings.Repeat("e", 4096)})
	}
	s := Summarize(results)
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := WriteHTML(&buf, Run{StartedAt: start}, s, SliceResults(results)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes")
}

func TestHTMLFormatByNameAndExtension(t *testing.T) {
	for _, name := range []string{"html", "htm"} {
		if f, err := ParseFormat(name); err != nil || f != HTML {
			t.Errorf("ParseFormat(%q): %q, %v; want html", name, f, err)
		}
	}
	for _, path := range []string{"run.html", "out/run.htm"} {
		if f := FormatOf(path); f != HTML {
			t.Errorf("FormatOf(%q): %q, want html", path, f)
		}
	}
	if _, err := ParseFormat("pdf"); err == nil || !strings.Contains(err.Error(), "html") {
		t.Errorf("ParseFormat(pdf): %v, want an error that lists html", err)
	}
}
