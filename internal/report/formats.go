package report

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorun/gorun/internal/jobs"
)

// Run describes a run as a whole, for the report formats.
type Run struct {
	ID        string    `json:"id,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	Hostname  string    `json:"hostname,omitempty"`
	// Containment says how task processes were held together: "cgroup", "subreaper"
	// or "process-group" (see the README's "How tasks run").
	Containment string `json:"containment,omitempty"`
	// Command is the command line that started the run; Input its task file ("stdin"
	// for standard input); Journal, for a report rendered from a journal, that journal.
	Command string `json:"command,omitempty"`
	Input   string `json:"input,omitempty"`
	Journal string `json:"journal,omitempty"`
}

// Results yields results one at a time, so that a report of a million tasks is written
// without holding them all. It calls yield for each result, in input order, until
// yield returns false.
type Results func(yield func(jobs.Result) bool)

// SliceResults yields the results of a slice.
func SliceResults(rs []jobs.Result) Results {
	return func(yield func(jobs.Result) bool) {
		for _, r := range rs {
			if !yield(r) {
				return
			}
		}
	}
}

// Totals are the run-wide numbers of a JSON report.
type Totals struct {
	Tasks      int                 `json:"tasks"`
	Counts     map[jobs.Status]int `json:"counts"`
	Wall       jobs.Seconds        `json:"wall_s"`
	TasksPerS  float64             `json:"tasks_per_s"`
	P50        jobs.Seconds        `json:"p50_s"`
	P95        jobs.Seconds        `json:"p95_s"`
	Max        jobs.Seconds        `json:"max_s"`
	ExitStatus int                 `json:"-"`
}

// TotalsOf returns the totals of a summary.
func TotalsOf(s *Summary) Totals {
	t := Totals{
		Tasks: s.Total, Counts: map[jobs.Status]int{}, Wall: jobs.Seconds(s.Wall),
		P50: jobs.Seconds(s.Quantile(0.5)), P95: jobs.Seconds(s.Quantile(0.95)), Max: jobs.Seconds(s.Max()),
	}
	for _, st := range jobs.Statuses {
		t.Counts[st] = s.Counts[st]
	}
	if s.Wall > 0 {
		t.TasksPerS = float64(s.Total) / s.Wall.Seconds()
	}
	return t
}

// WriteJSON writes the run, its totals and every result as one JSON document:
// {"run": {...}, "totals": {...}, "results": [...]}. Results are streamed.
func WriteJSON(w io.Writer, run Run, s *Summary, results Results) error {
	head, err := json.Marshal(struct {
		Run    Run    `json:"run"`
		Totals Totals `json:"totals"`
	}{run, TotalsOf(s)})
	if err != nil {
		return err
	}
	ew := &errWriter{w: w}
	ew.write(head[:len(head)-1]) // leave the object open for the results
	ew.write([]byte(`,"results":[`))
	first := true
	results(func(r jobs.Result) bool {
		line, err := json.Marshal(r)
		if err != nil {
			ew.err = err
			return false
		}
		if !first {
			ew.write([]byte(","))
		}
		first = false
		ew.write([]byte("\n"))
		ew.write(line)
		return ew.err == nil
	})
	ew.write([]byte("\n]}\n"))
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) write(p []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(p)
	}
}

// WriteJUnit writes a JUnit XML report, as CI servers read it: one testsuite, a
// testcase per task; a failed or timed-out task has a failure element with its exit
// status and output tails, a skipped or cancelled one a skipped element. It follows
// the Apache Ant JUnit schema.
func WriteJUnit(w io.Writer, run Run, s *Summary, results Results) error {
	host := run.Hostname
	if host == "" {
		host = "localhost"
	}
	start := run.StartedAt
	if start.IsZero() {
		start = time.Now()
	}
	ew := &errWriter{w: w}
	ew.write([]byte(xml.Header))
	fmt.Fprintf(ew, `<testsuite name="gorun" timestamp="%s" hostname="%s" tests="%d" failures="%d" errors="0" skipped="%d" time="%.3f">`+"\n",
		start.UTC().Format("2006-01-02T15:04:05"), xmlAttr(host), s.Total, s.Failed(),
		s.Counts[jobs.Skipped]+s.Counts[jobs.Cancelled], s.Wall.Seconds())
	ew.write([]byte("  <properties>\n"))
	if run.ID != "" {
		fmt.Fprintf(ew, "    <property name=\"run_id\" value=\"%s\"/>\n", xmlAttr(run.ID))
	}
	ew.write([]byte("  </properties>\n"))
	results(func(r jobs.Result) bool {
		fmt.Fprintf(ew, `  <testcase name="%s" classname="gorun" time="%.3f"`, xmlAttr(r.Label()), time.Duration(r.Duration).Seconds())
		switch r.Status {
		case jobs.Succeeded:
			ew.write([]byte("/>\n"))
		case jobs.Skipped, jobs.Cancelled:
			msg := string(r.Status)
			if r.Error != "" {
				msg += ": " + r.Error
			}
			fmt.Fprintf(ew, ">\n    <skipped message=\"%s\"/>\n  </testcase>\n", xmlAttr(msg))
		default:
			fmt.Fprintf(ew, ">\n    <failure message=\"%s\" type=\"%s\">%s</failure>\n  </testcase>\n",
				xmlAttr(fmt.Sprintf("%s (%s)", r.Status, how(&r))), r.Status, xmlText(failureText(&r)))
		}
		return ew.err == nil
	})
	ew.write([]byte("  <system-out></system-out>\n  <system-err></system-err>\n</testsuite>\n"))
	return ew.err
}

func (e *errWriter) Write(p []byte) (int, error) {
	e.write(p)
	return len(p), e.err
}

func failureText(r *jobs.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) after %s, attempt %d\n", r.Status, how(r), FormatDuration(time.Duration(r.Duration)), r.Attempts)
	if r.Command != "" {
		b.WriteString("command: " + r.Command + "\n")
	}
	if r.Worker != "" || r.Host != "" {
		// The Ant schema has no hostname per testcase: the failure text names it.
		b.WriteString("ran on: " + ranOn(r) + "\n")
	}
	if r.Error != "" {
		b.WriteString("error: " + r.Error + "\n")
	}
	if r.StdoutTail != "" {
		b.WriteString("--- stdout (tail) ---\n" + r.StdoutTail + "\n")
	}
	if r.StderrTail != "" {
		b.WriteString("--- stderr (tail) ---\n" + r.StderrTail + "\n")
	}
	return b.String()
}

// xmlText escapes s for XML character data, dropping what XML 1.0 cannot hold
// (control characters, invalid UTF-8).
func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(xmlClean(s)))
	return b.String()
}

func xmlAttr(s string) string { return xmlText(s) }

func xmlClean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError:
			return '\uFFFD'
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20 || (r >= 0xD800 && r <= 0xDFFF) || r == 0xFFFE || r == 0xFFFF:
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// WriteMarkdown writes a Markdown report for CI step summaries: the counts, then a
// table of the tasks that did not succeed (or of all tasks when every one did).
func WriteMarkdown(w io.Writer, run Run, s *Summary, results Results) error {
	ew := &errWriter{w: w}
	icon := "✅"
	if s.Failed() > 0 {
		icon = "❌"
	} else if s.Counts[jobs.Cancelled]+s.Counts[jobs.Skipped] > 0 {
		icon = "⚠️"
	}
	fmt.Fprintf(ew, "## %s gorun: %d %s in %s\n\n", icon, s.Total, plural(s.Total, "task"), FormatDuration(s.Wall))
	ew.write([]byte("| status | tasks |\n|---|---:|\n"))
	for _, st := range jobs.Statuses {
		fmt.Fprintf(ew, "| %s | %d |\n", st, s.Counts[st])
	}
	if s.Started() > 0 {
		fmt.Fprintf(ew, "\nDurations: p50 %s, p95 %s, max %s.\n",
			FormatDuration(s.Quantile(0.5)), FormatDuration(s.Quantile(0.95)), FormatDuration(s.Max()))
	}
	all := s.Counts[jobs.Succeeded] == s.Total
	if all {
		ew.write([]byte("\n### Tasks\n\n"))
	} else {
		ew.write([]byte("\n### Tasks that did not succeed\n\n"))
	}
	ew.write([]byte("| task | status | exit | duration | last stderr line or reason |\n|---|---|---|---:|---|\n"))
	results(func(r jobs.Result) bool {
		if all || r.Status != jobs.Succeeded {
			took := "-"
			if !r.StartedAt.IsZero() {
				took = FormatDuration(time.Duration(r.Duration))
			}
			fmt.Fprintf(ew, "| %s | %s | %s | %s | %s |\n", mdCell(r.Label()), r.Status, how(&r), took, mdCell(lastLine(&r)))
		}
		return ew.err == nil
	})
	return ew.err
}

func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\n", " ")
	if s == "" {
		return " "
	}
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}
