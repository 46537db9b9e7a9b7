package jobs

import "golang.org/x/time/rate"

// Limit is a pool that tasks share, beyond the run's workers: at most Concurrency of
// its tasks run at once, and they start at most Rate a second, Burst at once. A task
// joins the pools it names (Task.Limits), and the pools that hold every task (Every).
// With a Key, a Limit is a family of pools, one per value of the key.
type Limit struct {
	Name        string
	Concurrency int        // tasks of the pool running at once; 0: no bound
	Rate        rate.Limit // starts a second; 0 or rate.Inf: no bound
	Burst       int        // starts at once before Rate applies; below 1 counts as 1
	// Key, when not nil, gives a task's pool in the family: tasks with the same value
	// share one pool; a pool is made when its first task is ready and forgotten once
	// idle. KeySource is the key as written.
	Key       func(t *Task) string
	KeySource string
	// Labels are the task labels the key reads ({host}: Task.Labels["host"]): a task
	// in the pool without one of them is refused before it runs.
	Labels []string
	Every  bool // every task is in the pool, whether it names it or not
}

// Rated reports whether l paces starts.
func (l *Limit) Rated() bool { return l.Rate > 0 && l.Rate != rate.Inf }
