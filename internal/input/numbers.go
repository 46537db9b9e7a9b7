package input

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Timeout is a per-task timeout as GNU parallel's --timeout takes it: a fixed
// duration, or a percentage of the median duration of the tasks finished so far.
// The zero value is no timeout.
type Timeout struct {
	Fixed   time.Duration // a fixed timeout; 0 with Percent 0: none
	Percent float64       // > 0: this percentage of the median duration (200: twice it)
}

// ParseTimeout reads a timeout: a Go duration ("30s", "1m30s"), a bare number of
// seconds ("30", "0.5"), "0" for none, or a percentage of the median duration of the
// tasks finished so far ("200%"). A negative value is an error.
func ParseTimeout(s string) (Timeout, error) {
	s = strings.TrimSpace(s)
	if num, ok := strings.CutSuffix(s, "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || math.IsNaN(p) || math.IsInf(p, 0) || p <= 0 {
			return Timeout{}, fmt.Errorf("invalid timeout %q: a percentage of the median duration must be a number above 0, like 200%%", s)
		}
		return Timeout{Percent: p}, nil
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(n) && !math.IsInf(n, 0) {
		if n < 0 {
			return Timeout{}, fmt.Errorf("invalid duration %q: must not be negative", s)
		}
		if n*float64(time.Second) > math.MaxInt64 {
			return Timeout{}, fmt.Errorf("invalid duration %q: too long", s)
		}
		return Timeout{Fixed: time.Duration(n * float64(time.Second))}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Timeout{}, fmt.Errorf("invalid duration %q: want seconds (30), a duration (500ms, 5m) or a percentage of the median duration (200%%)", s)
	}
	if d < 0 {
		return Timeout{}, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return Timeout{Fixed: d}, nil
}

// String writes t as ParseTimeout reads it.
func (t Timeout) String() string {
	switch {
	case t == Timeout{}:
		return "0"
	case t.Percent > 0:
		return strconv.FormatFloat(t.Percent, 'f', -1, 64) + "%"
	}
	return t.Fixed.String()
}

// ParseWorkers reads a number of workers as GNU parallel's -j takes it, for a machine
// with cpus CPUs: "8" (8), "+2" (cpus+2), "-1" (cpus-1), "200%" (twice cpus, rounded
// down). The result is at least 1 for a relative value, and an absolute one below 1
// is an error.
func ParseWorkers(s string, cpus int) (int, error) {
	s = strings.TrimSpace(s)
	bad := func() (int, error) {
		return 0, fmt.Errorf("invalid number %q: want N, +N or -N (relative to the %d CPUs) or N%% of them", s, cpus)
	}
	if num, ok := strings.CutSuffix(s, "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || math.IsNaN(p) || math.IsInf(p, 0) || p <= 0 || p > 1e6 {
			return bad()
		}
		return max(1, int(float64(cpus)*p/100)), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 1<<24 || n < -1<<24 {
		return bad()
	}
	switch {
	case strings.HasPrefix(s, "+"), strings.HasPrefix(s, "-"):
		return max(1, cpus+n), nil
	case n < 1:
		return 0, fmt.Errorf("must be at least 1, got %d", n)
	}
	return n, nil
}
