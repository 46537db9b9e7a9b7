package input

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// ParseDuration reads a duration as Go writes it ("1.5s", "2m", "1h30m"); "0" is zero.
// Negative durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a number with a unit, like 500ms, 30s or 5m", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return d, nil
}

// ParseRate reads a start rate: "2/s", "100/m", "0.5/s", "3/h", "1/250ms", or a bare
// number meaning per second. "0", "inf" and "unlimited" mean no limit (rate.Inf).
func ParseRate(s string) (rate.Limit, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "0", "inf", "unlimited", "none":
		return rate.Inf, nil
	}
	num, unit, hasUnit := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) || n < 0 {
		return 0, fmt.Errorf("invalid rate %q: want N/s, N/m, N/h or N (per second), like 2/s", s)
	}
	if n == 0 {
		return rate.Inf, nil
	}
	per := time.Second
	if hasUnit {
		switch u := strings.TrimSpace(unit); u {
		case "s", "sec", "second":
		case "m", "min", "minute":
			per = time.Minute
		case "h", "hour":
			per = time.Hour
		default:
			d, err := time.ParseDuration(u)
			if err != nil || d <= 0 {
				return 0, fmt.Errorf("invalid rate %q: unknown unit %q (want s, m, h or a duration like 250ms)", s, u)
			}
			per = d
		}
	}
	return rate.Limit(n / per.Seconds()), nil
}

// FormatRate writes a rate as ParseRate reads it.
func FormatRate(r rate.Limit) string {
	if r == rate.Inf {
		return "unlimited"
	}
	return strconv.FormatFloat(float64(r), 'g', -1, 64) + "/s"
}
