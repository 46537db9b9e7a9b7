package jobs

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// RetryClass is a set of ways an attempt can fail, as `retry_on` and `no_retry_on`
// name them: exit codes, a timeout, death by a signal. The zero value holds none.
type RetryClass struct {
	Codes   []int // exit codes, 0 to 255
	Timeout bool  // the attempt timed out
	Signal  bool  // the attempt's process was killed by a signal (not gorun's timeout)
}

// String writes c as the task file writes it: "75, 1, timeout, signal".
func (c *RetryClass) String() string {
	var parts []string
	for _, code := range c.Codes {
		parts = append(parts, strconv.Itoa(code))
	}
	if c.Timeout {
		parts = append(parts, "timeout")
	}
	if c.Signal {
		parts = append(parts, "signal")
	}
	return strings.Join(parts, ", ")
}

// End is how a failed attempt ended, as retry classification sees it.
type End struct {
	Status   Status // Failed or TimedOut
	ExitCode int    // -1 when the process did not exit by itself
	Signal   string // the signal that killed it ("SIGKILL"), or ""
}

// String says how the attempt ended: "exit code 3", "timed out", "killed by SIGKILL",
// "could not start".
func (e End) String() string {
	switch {
	case e.Status == TimedOut:
		return "timed out"
	case e.Signal != "":
		return "killed by " + e.Signal
	case e.ExitCode >= 0:
		return "exit code " + strconv.Itoa(e.ExitCode)
	}
	return "could not start"
}

// has reports whether c holds the end e.
func (c *RetryClass) has(e End) bool {
	switch {
	case e.Status == TimedOut:
		return c.Timeout
	case e.Signal != "":
		return c.Signal
	case e.ExitCode >= 0:
		return slices.Contains(c.Codes, e.ExitCode)
	}
	return false
}

// RetryNote records the decision on one failed attempt: whether it was retried,
// and why. Its JSON field names are part of gorun's interface.
type RetryNote struct {
	Attempt  int    `json:"attempt"`
	Status   Status `json:"status"`
	ExitCode *int   `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	Retried  bool   `json:"retried"`
	Reason   string `json:"reason"`
}

// Retry decides whether t is run again after its attempt n (1-based, counting
// every execution so far) ended as e: not when e is in NoRetryOn, nor when RetryOn is
// given and e is not in it, nor when the retries are used up. It returns the decision
// and the reason, for the report.
func (t *Task) Retry(e End, n int) (again bool, reason string) {
	switch {
	case t.NoRetryOn != nil && t.NoRetryOn.has(e):
		return false, fmt.Sprintf("%s is in no_retry_on (%s)", e, t.NoRetryOn)
	case t.RetryOn != nil && !t.RetryOn.has(e):
		return false, fmt.Sprintf("%s is not in retry_on (%s)", e, t.RetryOn)
	case n > t.Retries:
		return false, fmt.Sprintf("%s; no retries left (retries: %d)", e, t.Retries)
	}
	why := "a failure"
	if t.RetryOn != nil {
		why = "in retry_on"
	}
	return true, fmt.Sprintf("%s, %s: retry %d of %d", e, why, n, t.Retries)
}

// Add adds one item of a retry_on or no_retry_on list to c: an exit code (0 to
// 255), "timeout" or "signal".
func (c *RetryClass) Add(item string) error {
	switch item = strings.TrimSpace(item); item {
	case "timeout":
		c.Timeout = true
		return nil
	case "signal":
		c.Signal = true
		return nil
	}
	code, err := strconv.Atoi(item)
	if err != nil || code < 0 || code > 255 {
		return fmt.Errorf("want an exit code (0 to 255), timeout or signal, got %q", item)
	}
	if !slices.Contains(c.Codes, code) {
		c.Codes = append(c.Codes, code)
	}
	return nil
}
