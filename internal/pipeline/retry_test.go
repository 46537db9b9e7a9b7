package pipeline

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
)

// TestRetryClassification: retry_on and no_retry_on decide which failures are
// retried, and each decision is in the task's result, with its reason.
func TestRetryClassification(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, results := runFileResults(t, `tasks:
  - {id: tempfail, run: exit-75, retries: 2, retry_on: [75]}
  - {id: other, run: exit-3, retries: 2, retry_on: [75]}
  - {id: excluded, run: exit-2, retries: 2, no_retry_on: [2]}
  - {id: default, run: exit-1, retries: 1}
  - {id: none, run: exit-1}
`, Options{Workers: 2})
		want := map[string][]string{
			"tempfail": {"1 retried: exit code 75, in retry_on: retry 1 of 2", "2 retried: exit code 75, in retry_on: retry 2 of 2", "3 not retried: exit code 75; no retries left (retries: 2)"},
			"other":    {"1 not retried: exit code 3 is not in retry_on (75)"},
			"excluded": {"1 not retried: exit code 2 is in no_retry_on (2)"},
			"default":  {"1 retried: exit code 1, a failure: retry 1 of 1", "2 not retried: exit code 1; no retries left (retries: 1)"},
			"none":     nil,
		}
		for id, w := range want {
			r := results[id]
			var got []string
			for _, n := range r.RetryLog {
				verb := "not retried"
				if n.Retried {
					verb = "retried"
				}
				got = append(got, fmt.Sprintf("%d %s: %s", n.Attempt, verb, n.Reason))
				if n.ExitCode == nil || *n.ExitCode != *r.ExitCode {
					t.Errorf("%s: attempt %d: exit code %v, want %d", id, n.Attempt, n.ExitCode, *r.ExitCode)
				}
			}
			if strings.Join(got, "\n") != strings.Join(w, "\n") {
				t.Errorf("%s: got retry log\n%s\nwant\n%s", id, strings.Join(got, "\n"), strings.Join(w, "\n"))
			}
			if r.Attempts != max(len(w), 1) {
				t.Errorf("%s: got %d attempts, want %d", id, r.Attempts, max(len(w), 1))
			}
		}
	})
}
