package pipeline

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gorun/gorun/internal/jobs"
)

// Halt is a policy to stop a run early, as GNU parallel's --halt: when a number or a
// share of tasks have failed (or succeeded), start nothing new ("soon") or also stop
// the running tasks ("now"). The zero value never halts.
type Halt struct {
	When    string  // "never", "soon" or "now"
	Success bool    // count successes instead of failures
	Count   int     // halt at this many; 0 when Percent is used
	Percent float64 // halt at this share of the tasks, in percent
}

// ParseHalt reads never|soon|now[,fail=N|fail=P%|success=N|success=P%]. soon and now
// alone mean fail=1.
func ParseHalt(s string) (Halt, error) {
	when, cond, hasCond := strings.Cut(strings.TrimSpace(s), ",")
	h := Halt{When: when, Count: 1}
	switch when {
	case "never", "":
		if hasCond {
			return Halt{}, fmt.Errorf("invalid halt %q: never takes no condition", s)
		}
		return Halt{}, nil
	case "soon", "now":
	default:
		return Halt{}, fmt.Errorf("invalid halt %q: want never, soon or now[,fail=N|fail=P%%|success=N|success=P%%]", s)
	}
	if !hasCond {
		return h, nil
	}
	kind, num, ok := strings.Cut(cond, "=")
	switch {
	case !ok:
	case kind == "fail":
	case kind == "success":
		h.Success = true
	default:
		ok = false
	}
	if !ok {
		return Halt{}, fmt.Errorf("invalid halt condition %q: want fail=N, fail=P%%, success=N or success=P%%", cond)
	}
	if p, isPct := strings.CutSuffix(num, "%"); isPct {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v <= 0 || v > 100 || math.IsNaN(v) {
			return Halt{}, fmt.Errorf("invalid halt condition %q: want a percentage above 0 and at most 100", cond)
		}
		h.Count, h.Percent = 0, v
		return h, nil
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 {
		return Halt{}, fmt.Errorf("invalid halt condition %q: want a count of at least 1", cond)
	}
	h.Count = n
	return h, nil
}

// String writes h as ParseHalt reads it.
func (h Halt) String() string {
	if h.When == "" || h.When == "never" {
		return "never"
	}
	kind := "fail"
	if h.Success {
		kind = "success"
	}
	if h.Percent > 0 {
		return fmt.Sprintf("%s,%s=%g%%", h.When, kind, h.Percent)
	}
	return fmt.Sprintf("%s,%s=%d", h.When, kind, h.Count)
}

// HaltError is the cause of a run that a halt policy stopped.
type HaltError struct {
	Halt  Halt
	Count int // the tasks that met the condition
}

func (e *HaltError) Error() string {
	what := "failed"
	if e.Halt.Success {
		what = "succeeded"
	}
	return fmt.Sprintf("halted after %d %s %s (--halt %s)", e.Count, plural(e.Count, "task"), what, e.Halt)
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

// haltState counts tasks' final statuses against a Halt; the pool's dispatching
// goroutine owns it (through pool.Options.Finished).
type haltState struct {
	Halt
	total    int // tasks in the run, when known; else 0
	finished int
	failed   int
	success  int
	fired    bool
}

// add counts a task that ended (started, with status) and returns the cause to stop
// with when the policy fires, and whether running tasks are to be stopped too. It
// fires once.
func (h *haltState) add(started bool, status jobs.Status) (cause error, now bool) {
	if h.When == "" || h.When == "never" || h.fired || !started {
		return nil, false
	}
	h.finished++
	switch status {
	case jobs.Failed, jobs.TimedOut:
		h.failed++
	case jobs.Succeeded:
		h.success++
	}
	n := h.failed
	if h.Success {
		n = h.success
	}
	met := h.Count > 0 && n >= h.Count
	if h.Percent > 0 {
		of := h.total // a share of all tasks; of those seen so far for a stream
		if of == 0 {
			of = h.finished
		}
		met = float64(n)*100 >= h.Percent*float64(of)
	}
	if !met {
		return nil, false
	}
	h.fired = true
	return &HaltError{Halt: h.Halt, Count: n}, h.When == "now"
}
