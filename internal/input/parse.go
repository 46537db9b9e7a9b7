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

// ParseSize reads a size in bytes: a number with a unit, binary (KiB, MiB, GiB, TiB)
// or decimal (K or KB, M or MB, G or GB, T or TB), or B or no unit for bytes: "4GiB",
// "512M", "1.5GB".
func ParseSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	n, err := strconv.ParseFloat(num, 64)
	mult := map[string]float64{"": 1, "B": 1,
		"K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit]
	if err != nil || mult == 0 || n < 0 || math.IsInf(n*mult, 0) || n*mult >= 1<<63 {
		return 0, fmt.Errorf("invalid size %q: want a number with a unit, like 512MiB, 4GiB or 2G", s)
	}
	return uint64(n * mult), nil
}
