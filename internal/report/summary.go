// Package report sums up results and renders the summary. Summarize and Summary.Add are
// pure; renderers write to an io.Writer.
package report

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

// MaxListed bounds how many failed tasks a Summary keeps to list one by one; the rest
// are counted. Memory stays bounded however many tasks a run has.
const MaxListed = 50

// MaxReasons bounds the distinct reasons a Summary counts for each of the statuses it
// counts by reason (skipped, cancelled); further reasons count as OtherReasons.
const MaxReasons = 8

// OtherReasons is the reason under which a Summary counts reasons beyond MaxReasons.
const OtherReasons = "other reasons"

// Summary accumulates what a report says of a run: counts per status, the spread of
// task durations, the first MaxListed tasks that failed, timed out or were invalid,
// and the tasks that were skipped or cancelled, counted by reason: those are not
// listed, since one cause (an interruption, a failed need) ends many at once. Its
// memory does not grow with the number of tasks. The zero value is an empty summary;
// a Summary is not safe for concurrent use.
type Summary struct {
	Total    int
	Counts   map[jobs.Status]int
	Wall     time.Duration // the run's wall time, set by the caller
	Listed   []jobs.Result // failed, timed-out and invalid tasks, in input order, at most MaxListed
	Unlisted int           // failed, timed-out and invalid tasks beyond MaxListed
	// Reasons counts the skipped and the cancelled tasks by why they did not run to
	// their end (see Reason), at most MaxReasons reasons per status.
	Reasons map[jobs.Status]map[string]int
	// KeepTails keeps the output tails of listed tasks, for a summary that shows them
	// (quiet mode); else only the last stderr line is shown.
	KeepTails bool
	// Duplicates counts executions of remote tasks whose end did not count (their
	// worker had lost its lease and another execution superseded them).
	Duplicates int
	hist       histogram // durations of tasks that started
}

// Summarize sums up results.
func Summarize(results []jobs.Result) *Summary {
	s := &Summary{}
	for i := range results {
		s.Add(results[i])
	}
	return s
}

// Add counts one result.
func (s *Summary) Add(r jobs.Result) {
	if s.Counts == nil {
		s.Counts = make(map[jobs.Status]int, len(jobs.Statuses))
	}
	s.Total++
	s.Counts[r.Status]++
	s.Duplicates += r.Duplicates
	if !r.StartedAt.IsZero() {
		s.hist.add(time.Duration(r.Duration))
	}
	switch r.Status {
	case jobs.Succeeded:
		return
	case jobs.Skipped, jobs.Cancelled:
		s.addReason(r.Status, Reason(&r))
		return
	}
	if len(s.Listed) == MaxListed {
		last := s.Listed[MaxListed-1]
		if last.Index < r.Index {
			s.Unlisted++
			return
		}
		s.Listed = s.Listed[:MaxListed-1]
		s.Unlisted++
	}
	if !s.KeepTails {
		r.StdoutTail = "" // a listed task shows its last stderr line only
	}
	i, _ := slices.BinarySearchFunc(s.Listed, r.Index, func(a jobs.Result, idx int) int { return a.Index - idx })
	s.Listed = slices.Insert(s.Listed, i, r)
}

func (s *Summary) addReason(st jobs.Status, why string) {
	if s.Reasons == nil {
		s.Reasons = make(map[jobs.Status]map[string]int, 2)
	}
	m := s.Reasons[st]
	if m == nil {
		m = make(map[string]int)
		s.Reasons[st] = m
	}
	if _, ok := m[why]; !ok && len(m) >= MaxReasons {
		why = OtherReasons
	}
	m[why]++
}

// Reason says why a skipped or cancelled task did not run to its end, in words shared
// by every task that one cause ended: the tasks that needed a task that did not
// succeed count as one reason, whichever task that was.
func Reason(r *jobs.Result) string {
	why := firstLine(r.Error)
	switch {
	case r.Status == jobs.Cancelled && r.Signal != "":
		return "stopped while running (" + r.Signal + ")"
	case r.Status == jobs.Cancelled:
		return "stopped while running"
	case strings.HasPrefix(why, "needs "):
		return "a task they need did not succeed"
	case why == "":
		return "not started"
	}
	return why
}

// Failed returns the number of tasks that failed, timed out or were invalid: those
// whose status is not OK.
func (s *Summary) Failed() int {
	return s.Counts[jobs.Failed] + s.Counts[jobs.TimedOut] + s.Counts[jobs.Invalid]
}

// Started returns the number of tasks whose durations were counted.
func (s *Summary) Started() int { return s.hist.n }

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of the durations of started tasks,
// within 1% of the true value, and 0 when none started.
func (s *Summary) Quantile(q float64) time.Duration { return s.hist.quantile(q) }

// Max returns the longest task duration.
func (s *Summary) Max() time.Duration { return s.hist.max }

// histogram counts durations in buckets 1% apart: bounded memory, 1% error.
type histogram struct {
	n      int
	max    time.Duration
	counts map[int]int
}

const growth = 1.01

func bucketOf(d time.Duration) int {
	if d < time.Microsecond {
		return -1
	}
	return int(math.Log(float64(d)/float64(time.Microsecond)) / math.Log(growth))
}

func (h *histogram) add(d time.Duration) {
	if h.counts == nil {
		h.counts = make(map[int]int)
	}
	h.n++
	h.max = max(h.max, d)
	h.counts[bucketOf(d)]++
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	keys := make([]int, 0, len(h.counts))
	for k := range h.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rank := int(math.Ceil(q * float64(h.n)))
	seen := 0
	for _, k := range keys {
		seen += h.counts[k]
		if seen >= max(rank, 1) {
			if k < 0 {
				return 0
			}
			mid := float64(time.Microsecond) * math.Pow(growth, float64(k)+0.5)
			return min(time.Duration(mid), h.max)
		}
	}
	return h.max
}
