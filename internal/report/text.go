package report

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

// WriteText writes the summary a person reads at the end of a run: the counts per
// status, wall time and throughput (of the tasks that started), the duration spread,
// the skipped and cancelled tasks counted by reason, and a line for each task that
// failed, timed out or was invalid, with its exit status and last stderr line.
func WriteText(w io.Writer, s *Summary) error { return WriteTextColor(w, s, false) }

// statusColor is the ANSI colour of each status on a terminal. Every code has the
// same length, so that columns stay aligned.
var statusColor = map[jobs.Status]string{
	jobs.Succeeded: "\x1b[32m", jobs.Failed: "\x1b[31m", jobs.TimedOut: "\x1b[35m",
	jobs.Cancelled: "\x1b[33m", jobs.Skipped: "\x1b[90m", jobs.Invalid: "\x1b[31m",
}

const colorReset = "\x1b[0m"

// paint colours text for status when color is on.
func paint(color bool, st jobs.Status, text string) string {
	if !color {
		return text
	}
	return statusColor[st] + text + colorReset
}

// WriteTextColor is WriteText with the statuses coloured when color is set (for a
// terminal; not with NO_COLOR).
func WriteTextColor(w io.Writer, s *Summary, color bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "gorun: %d %s in %s (%s tasks/s):", s.Total, plural(s.Total, "task"), FormatDuration(s.Wall), rate(s.Started(), s.Wall))
	sep := " "
	for _, st := range jobs.Statuses {
		if st == jobs.Invalid && s.Counts[st] == 0 {
			continue // only a JSON Lines stream has invalid tasks: no noise for the rest
		}
		text := fmt.Sprintf("%d %s", s.Counts[st], strings.ReplaceAll(string(st), "_", " "))
		if s.Counts[st] > 0 {
			text = paint(color, st, text)
		}
		fmt.Fprintf(&b, "%s%s", sep, text)
		sep = ", "
	}
	b.WriteByte('\n')
	if s.Duplicates > 0 {
		fmt.Fprintf(&b, "duplicate executions: %d (a worker lost its lease and the task ran again elsewhere; each result counted once)\n", s.Duplicates)
	}
	if s.Started() > 0 {
		fmt.Fprintf(&b, "durations: p50 %s, p95 %s, max %s\n",
			FormatDuration(s.Quantile(0.5)), FormatDuration(s.Quantile(0.95)), FormatDuration(s.Max()))
	}
	for _, st := range []jobs.Status{jobs.Cancelled, jobs.Skipped} {
		if line := reasonsLine(s.Reasons[st]); line != "" {
			fmt.Fprintf(&b, "%s: %s\n", st, line)
		}
	}
	if len(s.Listed) > 0 {
		b.WriteString("not succeeded:\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for i := range s.Listed {
			r := &s.Listed[i]
			took := "-"
			if !r.StartedAt.IsZero() {
				took = FormatDuration(time.Duration(r.Duration))
			}
			last := strings.TrimSpace(lastLine(r) + where(r))
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.Label(), paint(color, r.Status, string(r.Status)), how(r), took, last)
		}
		_ = tw.Flush()
		if s.KeepTails {
			writeTails(&b, s.Listed)
		}
		if s.Unlisted > 0 {
			fmt.Fprintf(&b, "  … and %d more\n", s.Unlisted)
		}
	}
	_, err := io.WriteString(w, trimLines(b.String()))
	return err
}

// reasonsLine writes counts by reason, most first, then by reason: "46 interrupted
// by SIGINT, 2 a task they need did not succeed", OtherReasons last; "" for none.
func reasonsLine(reasons map[string]int) string {
	keys := slices.Collect(maps.Keys(reasons))
	slices.SortFunc(keys, func(a, b string) int {
		if a == OtherReasons || b == OtherReasons { // last, whatever its count
			return cmp.Compare(b2i(a == OtherReasons), b2i(b == OtherReasons))
		}
		if c := cmp.Compare(reasons[b], reasons[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", reasons[k], k)
	}
	return strings.Join(parts, ", ")
}

// where names the worker and host a remote task ran on last, as " (on worker W,
// host H)"; "" for a local run, whose host is the report's.
func where(r *jobs.Result) string {
	if r.Worker == "" {
		return ""
	}
	return " (on " + ranOn(r) + ")"
}

// ranOn names the worker and the host of the task's last attempt: "worker W, host
// H", or what of it is known.
func ranOn(r *jobs.Result) string {
	switch {
	case r.Worker != "" && r.Host != "":
		return "worker " + r.Worker + ", host " + r.Host
	case r.Worker != "":
		return "worker " + r.Worker
	}
	return "host " + r.Host
}

// how says how a task ended: its exit code or signal, or that it never started.
func how(r *jobs.Result) string {
	switch {
	case r.Signal != "":
		return r.Signal
	case r.ExitCode != nil:
		return fmt.Sprintf("exit %d", *r.ExitCode)
	case r.Status == jobs.Skipped || r.Status == jobs.Invalid:
		return "not started"
	}
	return "did not start"
}

// lastLine is the last non-empty line of the task's stderr, or its error.
func lastLine(r *jobs.Result) string {
	if r.Error != "" && (r.StartedAt.IsZero() || r.StderrTail == "") {
		return firstLine(r.Error)
	}
	lines := strings.Split(strings.TrimRight(r.StderrTail, "\r\n\t "), "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	const most = 120
	if len(line) > most {
		line = line[:most] + "…"
	}
	return line
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func rate(n int, wall time.Duration) string {
	if wall <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(n)/wall.Seconds())
}

// FormatDuration writes d with three significant digits: 812µs, 12.3ms, 4.56s, 2m3s.
// A value that rounds up to the next unit is written in it: 999.7ms is 1s.
func FormatDuration(d time.Duration) string {
	d = roundSignificant(d, 3)
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return fmt.Sprintf("%.3gs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	case d > 0:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	}
	return "0s"
}

// roundSignificant rounds d to digits significant digits, so that the unit chosen
// for it is the unit of the rounded value.
func roundSignificant(d time.Duration, digits int) time.Duration {
	if d <= 0 {
		return d
	}
	unit := time.Duration(1)
	for limit := time.Duration(1); limit <= d/time.Duration(math.Pow10(digits-1)); limit *= 10 {
		unit = limit
	}
	return d.Round(unit)
}

// trimLines drops the blanks tabwriter leaves at the end of lines.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// writeTails writes the output tails of tasks that did not succeed, as chronic shows
// the output of a failed cron job.
func writeTails(b *strings.Builder, listed []jobs.Result) {
	for i := range listed {
		r := &listed[i]
		if r.Status == jobs.Skipped || (r.StdoutTail == "" && r.StderrTail == "") {
			continue
		}
		for _, s := range []struct {
			name, tail string
			n          int64
		}{{"stdout", r.StdoutTail, r.StdoutBytes}, {"stderr", r.StderrTail, r.StderrBytes}} {
			if s.tail == "" {
				continue
			}
			fmt.Fprintf(b, "--- %s %s", r.ID, s.name)
			if dropped := s.n - int64(len(s.tail)); dropped > 0 {
				fmt.Fprintf(b, " (last %d bytes; %d earlier not shown)", len(s.tail), dropped)
			}
			b.WriteString(" ---\n")
			b.WriteString(s.tail)
			if !strings.HasSuffix(s.tail, "\n") {
				b.WriteByte('\n')
			}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
