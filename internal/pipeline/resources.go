package pipeline

import (
	"log/slog"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pool"
)

// resourceGate is the pool's gate (pool.Gate) for the run's capacity
// (Options.Capacity): an attempt starts only when the resources its task asks for
// fit in what the running attempts leave, so the running attempts never hold more
// than the capacity. A task that asks for nothing is never held back.
//
// The policy, among the ready tasks, is the pool's: the first in line (priority,
// then the order they became ready) that fits starts, so a task too large for what
// is free now does not hold up smaller ones behind it (they fill the gap). To keep
// that from starving it, the first task in line that does not fit is the waiter: it
// lets at most `overtakes` attempts (the run's workers) that hold something start
// before it; from then on it holds a reservation, and another attempt starts only
// when it fits in what is free beyond the waiter's whole request. Resources
// therefore free up for the waiter as running attempts end, and nothing started
// meanwhile takes them; it starts no later than when enough of what runs now has
// ended.
//
// The pool's dispatching goroutine owns a resourceGate.
type resourceGate struct {
	capacity  jobs.Capacity
	used      jobs.Resources                      // what the running attempts hold
	less      func(a, b pool.Job[jobs.Task]) bool // the pool's order of the ready tasks; nil: input order
	overtakes int
	waiter    *waiter
	log       *slog.Logger // may be nil
	// shapes are the distinct requests of the run's tasks, those known: when none of
	// them fits what is free, no ready task can start before an attempt ends.
	shapes map[jobs.Resources]bool
}

// waiter is the first task in line that did not fit.
type waiter struct {
	job    pool.Job[jobs.Task]
	passed int // attempts that started before it since it began to wait
}

func newResourceGate(c jobs.Capacity, less func(a, b pool.Job[jobs.Task]) bool, overtakes int, log *slog.Logger) *resourceGate {
	return &resourceGate{capacity: c, less: less, overtakes: max(overtakes, 1), log: log, shapes: map[jobs.Resources]bool{}}
}

// know records the requests of tasks that will be asked about (a task file's, at
// the start), so that Exhausted knows them before they are first asked about.
func (g *resourceGate) know(r jobs.Resources) { g.shapes[r] = true }

// Exhausted implements pool.Exhauster: no request of the run's tasks fits in what is
// free (beyond the waiter's reservation, while the waiter itself does not fit).
func (g *resourceGate) Exhausted() (bool, string) {
	var held jobs.Resources
	if w := g.waiter; w != nil && w.passed >= g.overtakes {
		if g.short(w.job.Value.Resources, jobs.Resources{}) == "" {
			return false, "" // the waiter may start
		}
		held = w.job.Value.Resources
	}
	why := ""
	for r := range g.shapes {
		res := g.short(r, held)
		if res == "" {
			return false, ""
		}
		if why == "" || res < why[len("resources "):] { // the same reason whatever the map's order
			why = "resources " + res
		}
	}
	return len(g.shapes) > 0, why
}

// short returns the first resource of r that free, less held back, cannot give:
// "cpu", "memory", "gpu"; "" when r fits. A resource r does not ask for always fits.
func (g *resourceGate) short(r, held jobs.Resources) string {
	switch {
	case r.MilliCPU > 0 && g.used.MilliCPU+held.MilliCPU+r.MilliCPU > g.capacity.MilliCPU:
		return "cpu"
	case r.Memory > 0 && g.used.Memory+held.Memory+r.Memory > g.capacity.Memory:
		return "memory"
	case r.GPU > 0 && g.used.GPU+held.GPU+r.GPU > len(g.capacity.GPUs):
		return "gpu"
	}
	return ""
}

// Admit implements pool.Gate.
func (g *resourceGate) Admit(t jobs.Task, _ time.Time) (bool, time.Time, string) {
	r := t.Resources
	g.shapes[r] = true
	if r.IsZero() {
		return true, time.Time{}, ""
	}
	w := g.waiter
	if w != nil && w.job.Index == t.Index {
		w.job.Value = t // the same task: its latest attempt
	}
	var held jobs.Resources // what the waiter's reservation keeps from t
	if w != nil && w.job.Index != t.Index && w.passed >= g.overtakes {
		held = w.job.Value.Resources
	}
	res := g.short(r, jobs.Resources{})
	if res == "" {
		res = g.short(r, held)
		if res == "" {
			return true, time.Time{}, ""
		}
		return false, time.Time{}, "resources " + res // reserved for the waiter
	}
	if j := (pool.Job[jobs.Task]{Index: t.Index, Value: t}); w == nil || g.first(j, w.job) {
		if w == nil || w.job.Index != t.Index {
			g.waiter = &waiter{job: j}
			if g.log != nil {
				g.log.Info("task waits for resources", "id", t.ID, "index", t.Index, "short_of", res, "asks", r.String(),
					"free", g.free().String())
			}
		}
	}
	return false, time.Time{}, "resources " + res // asked again when an attempt ends
}

// first reports whether a comes before b in line: by the pool's order, then input
// order.
func (g *resourceGate) first(a, b pool.Job[jobs.Task]) bool {
	if g.less != nil {
		if g.less(a, b) {
			return true
		}
		if g.less(b, a) {
			return false
		}
	}
	return a.Index < b.Index
}

// Start implements pool.Gate.
func (g *resourceGate) Start(t jobs.Task, _ time.Time) {
	r := t.Resources
	g.used.MilliCPU += r.MilliCPU
	g.used.Memory += r.Memory
	g.used.GPU += r.GPU
	switch w := g.waiter; {
	case w == nil || r.IsZero():
	case w.job.Index == t.Index:
		g.waiter = nil
	default:
		w.passed++
	}
}

// Done implements pool.Gate.
func (g *resourceGate) Done(t jobs.Task) {
	r := t.Resources
	g.used.MilliCPU -= r.MilliCPU
	g.used.Memory -= r.Memory
	g.used.GPU -= r.GPU
}

// free is what the running attempts leave of the capacity.
func (g *resourceGate) free() jobs.Resources {
	return jobs.Resources{MilliCPU: g.capacity.MilliCPU - g.used.MilliCPU, Memory: g.capacity.Memory - g.used.Memory,
		GPU: len(g.capacity.GPUs) - g.used.GPU}
}
