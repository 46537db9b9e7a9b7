package jobs

import (
	"strings"
	"testing"
)

func TestRetryClassification(t *testing.T) {
	class := func(items ...string) *RetryClass {
		c := &RetryClass{}
		for _, it := range items {
			if err := c.Add(it); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	exit := func(code int) End { return End{Status: Failed, ExitCode: code} }
	timeout := End{Status: TimedOut, ExitCode: -1, Signal: "SIGTERM"}
	killed := End{Status: Failed, ExitCode: -1, Signal: "SIGKILL"}
	noStart := End{Status: Failed, ExitCode: -1}
	tests := []struct {
		name      string
		task      Task
		end       End
		attempt   int
		again     bool
		reasonHas string
	}{
		{"any failure by default", Task{Retries: 2}, exit(1), 1, true, "exit code 1, a failure: retry 1 of 2"},
		{"a timeout by default", Task{Retries: 2}, timeout, 2, true, "timed out, a failure: retry 2 of 2"},
		{"no retries left", Task{Retries: 2}, exit(1), 3, false, "exit code 1; no retries left (retries: 2)"},
		{"in retry_on", Task{Retries: 1, RetryOn: class("75", "timeout")}, exit(75), 1, true, "exit code 75, in retry_on: retry 1 of 1"},
		{"not in retry_on", Task{Retries: 1, RetryOn: class("75", "timeout")}, exit(3), 1, false, "exit code 3 is not in retry_on (75, timeout)"},
		{"timeout in retry_on", Task{Retries: 1, RetryOn: class("75", "timeout")}, timeout, 1, true, "timed out, in retry_on"},
		{"signal not in retry_on", Task{Retries: 1, RetryOn: class("timeout")}, killed, 1, false, "killed by SIGKILL is not in retry_on (timeout)"},
		{"signal in retry_on", Task{Retries: 1, RetryOn: class("signal")}, killed, 1, true, "killed by SIGKILL, in retry_on"},
		{"a timeout is not a signal", Task{Retries: 1, RetryOn: class("signal")}, timeout, 1, false, "timed out is not in retry_on (signal)"},
		{"could not start", Task{Retries: 1, RetryOn: class("1")}, noStart, 1, false, "could not start is not in retry_on"},
		{"in no_retry_on", Task{Retries: 3, NoRetryOn: class("2")}, exit(2), 1, false, "exit code 2 is in no_retry_on (2)"},
		{"not in no_retry_on", Task{Retries: 3, NoRetryOn: class("2")}, exit(1), 1, true, "exit code 1, a failure"},
		{"no_retry_on wins", Task{Retries: 3, RetryOn: class("2"), NoRetryOn: class("2")}, exit(2), 1, false, "in no_retry_on"},
		{"an empty retry_on retries nothing", Task{Retries: 3, RetryOn: class()}, exit(1), 1, false, "is not in retry_on ()"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			again, reason := tt.task.Retry(tt.end, tt.attempt)
			if again != tt.again || !strings.Contains(reason, tt.reasonHas) {
				t.Errorf("got %v, %q; want %v, a reason with %q", again, reason, tt.again, tt.reasonHas)
			}
		})
	}
}

func TestRetryClassAdd(t *testing.T) {
	c := &RetryClass{}
	for _, ok := range []string{"0", " 255", "timeout", "signal", "75", "75"} {
		if err := c.Add(ok); err != nil {
			t.Errorf("Add(%q): %v", ok, err)
		}
	}
	if got := c.String(); got != "0, 255, 75, timeout, signal" {
		t.Errorf("got %q", got)
	}
	for _, bad := range []string{"256", "-1", "", "Timeout", "sigkill", "1.5"} {
		if err := c.Add(bad); err == nil {
			t.Errorf("Add(%q): no error", bad)
		}
	}
}
