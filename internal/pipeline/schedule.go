package pipeline

import (
	"context"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pool"
)

// schedule decides which of the tasks of a source known whole (a task file, a JSON
// Lines file) may start, and in what order: the pool asks it, on its dispatching
// goroutine, as each task ends. A task is ready once every task it needs has
// succeeded; among the ready tasks, the higher priority starts first, then, on a
// graph of needs, the task with the most expected work after it (critical path
// first), then the one that became ready first (input order).
//
// The pool's goroutine owns a schedule once start has returned.
type schedule struct {
	g          *jobs.Graph
	remaining  []time.Duration // by position: jobs.Remaining; nil without needs
	inputOrder bool
	opts       *Options
}

// newSchedule builds the schedule of tasks, whose needs are by position (nil: no task
// needs another). Tasks that opts.Done says already succeeded count as succeeded and
// are returned as skipped results; every task gets its journal key (opts.Key).
func newSchedule(tasks []jobs.Task, needs [][]int, opts *Options) (*schedule, []jobs.Result) {
	s := &schedule{g: jobs.NewGraph(tasks, needs), inputOrder: opts.InputOrder, opts: opts}
	if needs != nil && !opts.InputOrder {
		s.remaining = jobs.Remaining(tasks, needs)
	}
	var resumed []jobs.Result
	for pos := range s.g.Len() {
		t := s.g.Task(pos)
		if opts.Key == nil {
			break
		}
		t.Key = opts.Key(t)
		if opts.Done == nil {
			continue
		}
		if reason, done := opts.Done(t.Key); done {
			resumed = append(resumed, jobs.SkippedResult(t, reason))
			s.g.Finish(pos, jobs.Succeeded) // a success skips nothing
		}
	}
	return s, resumed
}

// start returns the tasks ready at the start, taken: those whose needs are met. The
// slice is allocated at its final size: with no needs every task is ready, and a
// slice grown by appending would hold up to twice them while it grows.
func (s *schedule) start() []pool.Job[jobs.Task] {
	n := 0
	for pos := range s.g.Len() {
		if !s.g.Final(pos) && s.g.Ready(pos) {
			n++
		}
	}
	ready := make([]pool.Job[jobs.Task], 0, n)
	for pos := range s.g.Len() {
		if !s.g.Final(pos) && s.g.Ready(pos) {
			ready = append(ready, s.take(pos))
		}
	}
	return ready
}

func (s *schedule) take(pos int) pool.Job[jobs.Task] {
	s.g.Take(pos)
	t := s.g.Task(pos)
	return pool.Job[jobs.Task]{Index: t.Index, Value: *t, Timeout: s.opts.poolTimeout(t)}
}

// before orders the ready tasks for the pool: higher priority first, then the most
// work remaining after the task.
func (s *schedule) before(a, b pool.Job[jobs.Task]) bool {
	if s.inputOrder {
		return false
	}
	if a.Value.Priority != b.Value.Priority {
		return a.Value.Priority > b.Value.Priority
	}
	if s.remaining != nil {
		return s.remaining[a.Index-1] > s.remaining[b.Index-1]
	}
	return false
}

// byPriority orders the ready tasks of a stream: higher priority first.
func byPriority(a, b pool.Job[jobs.Task]) bool { return a.Value.Priority > b.Value.Priority }

// follow records the end of a task, and returns the tasks it makes ready and those
// it rules out (skipped, with the reason: a need that did not succeed). Once starting
// has ended (startCtx), it returns every task not yet handed out as ready, for the
// pool to end as not started with the run's cause, whatever they waited for.
func (s *schedule) follow(startCtx context.Context, d pool.Done[jobs.Task, outcome]) (ready []pool.Job[jobs.Task], ruledOut []pool.Done[jobs.Task, outcome]) {
	if startCtx.Err() != nil {
		for pos := range s.g.Len() {
			if !s.g.Taken(pos) && !s.g.Final(pos) {
				ready = append(ready, s.take(pos))
			}
		}
	}
	status := jobs.Skipped
	switch {
	case d.Started && d.Panic != nil:
		status = jobs.Failed
	case d.Started:
		status = d.Result.status
	}
	next, skips := s.g.Finish(d.Job.Index-1, status)
	for _, pos := range next {
		ready = append(ready, s.take(pos))
	}
	for _, sk := range skips {
		t := s.g.Task(sk.Pos)
		ruledOut = append(ruledOut, pool.Done[jobs.Task, outcome]{Job: pool.Job[jobs.Task]{Index: t.Index, Value: *t}, Result: outcome{skip: sk.Reason}})
	}
	return ready, ruledOut
}

// feedKnown sends the results of the tasks that do not run (they already succeeded)
// to known, and closes it.
func feedKnown(resumed []jobs.Result, known chan<- jobs.Result) error {
	defer close(known)
	for _, r := range resumed {
		known <- r
	}
	return nil
}
