package report

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

// LastSuccess reads the gorun_last_success_timestamp_seconds value from an earlier
// metrics file, so that a failed run keeps the time of the last good one. It returns 0
// when there is none.
func LastSuccess(path string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "gorun_last_success_timestamp_seconds "); ok {
			if t, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return t
			}
		}
	}
	return 0
}

// WriteMetrics writes the run's metrics in the Prometheus text format, for
// node_exporter's textfile collector: tasks by status, the run's duration, when it
// ended, and when a run last ended with every task succeeded (lastSuccess, in Unix
// seconds, when this run did not).
func WriteMetrics(w io.Writer, s *Summary, ended time.Time, lastSuccess float64) error {
	var b strings.Builder
	b.WriteString("# HELP gorun_tasks Tasks of the last run, by how they ended.\n# TYPE gorun_tasks gauge\n")
	for _, st := range jobs.Statuses {
		fmt.Fprintf(&b, "gorun_tasks{status=%q} %d\n", st, s.Counts[st])
	}
	b.WriteString("# HELP gorun_run_duration_seconds Wall time of the last run.\n# TYPE gorun_run_duration_seconds gauge\n")
	fmt.Fprintf(&b, "gorun_run_duration_seconds %s\n", strconv.FormatFloat(s.Wall.Seconds(), 'f', 3, 64))
	now := float64(ended.UnixMilli()) / 1000
	b.WriteString("# HELP gorun_last_run_timestamp_seconds When the last run ended, in Unix seconds.\n# TYPE gorun_last_run_timestamp_seconds gauge\n")
	fmt.Fprintf(&b, "gorun_last_run_timestamp_seconds %s\n", strconv.FormatFloat(now, 'f', 3, 64))
	if s.Total > 0 && s.Counts[jobs.Succeeded] == s.Total {
		lastSuccess = now
	}
	b.WriteString("# HELP gorun_last_success_timestamp_seconds When a run last ended with every task succeeded, in Unix seconds; 0: never.\n# TYPE gorun_last_success_timestamp_seconds gauge\n")
	fmt.Fprintf(&b, "gorun_last_success_timestamp_seconds %s\n", strconv.FormatFloat(lastSuccess, 'f', 3, 64))
	_, err := io.WriteString(w, b.String())
	return err
}
