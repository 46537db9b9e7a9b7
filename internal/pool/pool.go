// Package pool runs jobs with bounded concurrency, a start-rate limit, a timeout per
// job, retries with backoff and panic recovery, starting the ready jobs in the order
// its caller gives (a priority queue). It knows nothing of what a job is.
package pool

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"golang.org/x/time/rate"
)

// Options configure a run of the pool.
type Options[T, R any] struct {
	// Workers is the number of jobs that run at once; it must be at least 1.
	Workers int
	// Limiter, when not nil, paces starts: each attempt waits for a token.
	Limiter *rate.Limiter
	// TimeoutCause is the context cause of an attempt that runs past its timeout.
	TimeoutCause error
	// Retry, when not nil, is asked after each attempt whether to run the job again,
	// and after what delay; tries is the 1-based number of attempts so far (Done.Tries).
	// A job waiting for its retry holds no worker.
	Retry func(v T, r R, tries int) (delay time.Duration, again bool)
	// Executions, when not nil, says how many executions one attempt's result stands
	// for (an attempt that ran twice, as a remote attempt may); values below 1 count
	// as 1. Done.Attempts counts executions, and the next attempt's number follows
	// them. nil: each attempt is one execution.
	Executions func(r R) int
	// Finished, when not nil, is called with each job's final Done as soon as it is
	// known, before another attempt is handed out: a policy that stops the run from
	// here (by cancelling startCtx) lets no further attempt start. It runs on the
	// dispatching goroutine and must not block.
	Finished func(d Done[T, R])
	// Less, when not nil, orders the attempts ready to start: the next one to start is
	// the least. Attempts that neither is less than start in the order they became
	// ready (a job as received, a retry when its delay has passed). nil: that order
	// alone.
	Less func(a, b Job[T]) bool
	// Ready are jobs ready from the start, as if received from in before anything
	// else: all of them are ordered by Less before the first one starts. Run queues
	// them and keeps no reference to the slice: a caller that drops it holds each
	// waiting job once, in the queue.
	Ready []Job[T]
	// Follow, when not nil, is called on the dispatching goroutine with each job's
	// final Done, after Finished, before another attempt is handed out. It returns
	// the jobs this end makes ready (the tasks that needed it), which join the ready
	// attempts as if received from in, and the Dones of jobs this end rules out
	// (never started), which are sent to out as they are. It must not block.
	Follow func(d Done[T, R]) (ready []Job[T], ruledOut []Done[T, R])
	// Gate, when not nil, admits each attempt: of the ready attempts, the next to
	// start is the least (by Less) that the gate admits, so that one waiting for its
	// gate holds up no other. While no ready attempt is admitted, the pool reads ahead
	// from in, up to maxGated attempts. The pool asks the least first; only when the
	// Gate holds it back does it ask the others, and once a pass finds none
	// admitted, it asks again only after an attempt ended, another became ready or
	// the Gate's wake time passed: a Gate must never admit more because an attempt
	// started.
	Gate Gate[T]
	// Held, when not nil, is told on the dispatching goroutine what holds the pool
	// back, each time that changes: while a worker is free and attempts are ready but
	// the Gate admits none of them, the reason the Gate gives for the next one (by
	// Less); "" once the pool is no longer held back so. It must not block.
	Held func(why string)
	// Preempt, when not nil, is asked on the dispatching goroutine, while two
	// attempts or more run, whether to stop the youngest running attempt (the last
	// started) to free what it holds, and when to ask again at the latest: the stopped
	// attempt's context is cancelled with the cause ErrPreempted, and its Done comes
	// back as any other (the Retry policy may queue it again). The oldest attempt is
	// never stopped, so that the run goes on.
	Preempt func(now time.Time) (stop bool, next time.Time)
}

// ErrPreempted is the context cause of an attempt stopped by Options.Preempt.
var ErrPreempted = errors.New("stopped to free resources")

// Gate decides when an attempt may start, for limits beyond the pool's workers (a
// semaphore, a rate per key). The pool calls it on its dispatching goroutine only,
// and pairs every Start with one Done.
type Gate[T any] interface {
	// Admit reports whether an attempt of v may start at now. When it may not, wake
	// is the time to ask again (a rate's next token), or zero to ask again when an
	// attempt ends, and why says what holds it back ("limit api"), for Done.WaitedFor.
	Admit(v T, now time.Time) (ok bool, wake time.Time, why string)
	// Start records that an attempt of v, just admitted, starts.
	Start(v T, now time.Time)
	// Done records that an attempt of v ended (or, once started, did not run).
	Done(v T)
}

// Exhauster is a Gate that can tell at once that it admits no attempt at all now,
// whatever it is, and will not before an attempt ends (all of a resource is held):
// while it says so, the pool asks it about no ready attempt. why is what holds them
// back, for Done.WaitedFor.
type Exhauster interface {
	Exhausted() (yes bool, why string)
}

// maxGated bounds the attempts the pool holds ready while its Gate admits none.
const maxGated = 4096

// Job is one unit of input: its 1-based input index, the value fn receives, and its
// timeout per attempt (0: none).
type Job[T any] struct {
	Index   int
	Value   T
	Timeout time.Duration
}

// Done is how a job ended: the result of its last attempt. A job that never started
// has Started false, Attempts 0 and a zero Result. A job whose fn panicked has Panic
// set, with the stack.
type Done[T, R any] struct {
	Job      Job[T]
	Slot     int // 1-based worker slot of the last attempt; 0 when not started
	Started  bool
	Attempts int // executions of the job, counted as Options.Executions says
	Tries    int // attempts handed to fn: Attempts without the extra executions
	Result   R
	Panic    error
	// Taken is when a worker slot took the last attempt, before it waited for the
	// start-rate limit; zero when not started.
	Taken time.Time
	// Earlier are the Dones of the attempts before the last one (those retried),
	// first first; theirs is empty.
	Earlier []Done[T, R]
	// Wait is how long the job was ready but not running, over all its attempts
	// (a retry's delay not counted), and WaitedFor what held it back, each once, in
	// the order first met: "workers" (every worker busy, or taken by attempts that
	// go first), "rate" (Options.Limiter), or what the Gate said.
	Wait      time.Duration
	WaitedFor []string
	seq       uint64 // the attempt's, for the dispatcher
}

// Func runs one attempt of a job. ctx is done when the attempt's timeout passes (its
// cause is then Options.TimeoutCause) or when the run is cancelled. slot is the
// 1-based worker slot, attempt the 1-based number of its (first) execution.
type Func[T, R any] func(ctx context.Context, slot, attempt int, v T) R

// Run starts fn for each job received from in, with at most opts.Workers attempts
// running at once and starts paced by opts.Limiter, retries as opts.Retry says, and
// sends each job's Done to out once, in the order jobs end.
//
// Two contexts govern it. When startCtx is done, no further attempt starts: jobs still
// waiting, or received later, are sent to out with Started false, and a job waiting
// for a retry ends with its last attempt. runCtx is the parent of every attempt's
// context; cancelling it stops running attempts too. Cancel startCtx whenever runCtx
// is cancelled (derive it from runCtx).
//
// Run keeps receiving from in until the caller closes it, and returns once every job
// received has been sent to out. It never closes out. It runs one dispatching
// goroutine (the caller's) and opts.Workers workers, and waits for all of them.
func Run[T, R any](startCtx, runCtx context.Context, opts Options[T, R], in <-chan Job[T], fn Func[T, R], out chan<- Done[T, R]) {
	ready := opts.Ready
	opts.Ready = nil // the queue holds them from now on: the run keeps no second copy
	n := max(opts.Workers, 1)
	work := make(chan attempt[T, R])
	results := make(chan Done[T, R])
	finished := make(chan struct{})
	for slot := 1; slot <= n; slot++ {
		go func() {
			defer func() { finished <- struct{}{} }()
			for a := range work {
				results <- runAttempt(startCtx, runCtx, opts, slot, a, fn)
			}
		}()
	}
	d := dispatcher[T, R]{opts: opts, in: in, out: out, work: work, results: results, startDone: startCtx.Done()}
	d.ready.less, d.ready.preempt = opts.Less, opts.Preempt != nil
	d.ready.items = make([]attempt[T, R], 0, len(ready))
	for _, j := range ready {
		d.ready.add(attempt[T, R]{job: j, n: 1})
	}
	d.loop()
	close(work)
	for range n {
		<-finished
	}
}

// attempt is a job on its way to a worker: its number, and the last attempt's Done
// when it is a retry.
type attempt[T, R any] struct {
	job   Job[T]
	n     int // the number of its first execution
	tries int // attempts before this one
	last  *Done[T, R]
	due   time.Time
	seq   uint64        // when it became ready, for readyQueue; unique
	stop  chan struct{} // closed to preempt it (Options.Preempt); nil without
	ready time.Time     // when it became ready
	wait  time.Duration // ready but not running before: the earlier attempts'; then, once handed out, in all
	why   []string      // what held it back so far
}

// runAttempt runs one attempt in slot, unless starting has ended.
func runAttempt[T, R any](startCtx, runCtx context.Context, opts Options[T, R], slot int, a attempt[T, R], fn Func[T, R]) Done[T, R] {
	asked := time.Now()
	if !mayStart(startCtx, runCtx, opts.Limiter) {
		return notStarted(a)
	}
	if waited := time.Since(asked); opts.Limiter != nil && waited > time.Millisecond {
		a.wait += waited
		if !slices.Contains(a.why, "rate") {
			a.why = append(slices.Clip(a.why), "rate")
		}
	}
	d := call(runCtx, opts.TimeoutCause, slot, a, fn)
	d.Taken = asked
	if a.last != nil {
		prev := *a.last
		prev.Earlier = nil
		d.Earlier = append(slices.Clip(a.last.Earlier), prev)
	}
	if opts.Executions != nil && d.Panic == nil {
		d.Attempts += max(opts.Executions(d.Result), 1) - 1
	}
	return d
}

// notStarted is the Done of an attempt that did not start: the last attempt's, for a
// retry, else a job that never ran.
func notStarted[T, R any](a attempt[T, R]) Done[T, R] {
	if a.last != nil {
		d := *a.last
		d.seq = a.seq
		return d
	}
	return Done[T, R]{Job: a.job, seq: a.seq}
}

// mayStart waits for a rate token and reports whether an attempt may start now.
// runCtx is checked too: a parent context is done a moment before its children.
func mayStart(startCtx, runCtx context.Context, lim *rate.Limiter) bool {
	if startCtx.Err() != nil || runCtx.Err() != nil {
		return false
	}
	if lim != nil && lim.Wait(startCtx) != nil {
		return false
	}
	// The token may have come as startCtx ended; ending wins.
	return startCtx.Err() == nil && runCtx.Err() == nil
}

func call[T, R any](runCtx context.Context, cause error, slot int, a attempt[T, R], fn Func[T, R]) (d Done[T, R]) {
	d = Done[T, R]{Job: a.job, Slot: slot, Started: true, Attempts: a.n, Tries: a.tries + 1, seq: a.seq, Wait: a.wait, WaitedFor: a.why}
	ctx := runCtx
	if a.stop != nil {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(runCtx)
		defer cancel(nil)
		ended := make(chan struct{})
		defer close(ended)
		go func() { // preempted, or the attempt ends first; call waits for neither
			select {
			case <-a.stop:
				cancel(ErrPreempted)
			case <-ended:
			}
		}()
	}
	if a.job.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(runCtx, a.job.Timeout, cause)
		defer cancel()
	}
	defer func() {
		if v := recover(); v != nil {
			d.Panic = fmt.Errorf("panic: %v\n%s", v, debug.Stack())
		}
	}()
	d.Result = fn(ctx, slot, a.n, a.job.Value)
	return d
}

// dispatcher owns the pool's state: the attempts ready to start, the retries waiting
// for their time, and the Dones not yet taken by out. Only its loop touches them.
type dispatcher[T, R any] struct {
	opts      Options[T, R]
	in        <-chan Job[T]
	out       chan<- Done[T, R]
	work      chan<- attempt[T, R]
	results   <-chan Done[T, R]
	startDone <-chan struct{} // nil once starting has ended

	ready    readyQueue[T, R] // to hand to workers, next first
	waiting  retryHeap[T, R]  // retries, earliest first
	running  int              // attempts handed to workers and not yet back
	live     []liveAttempt    // with Options.Preempt: the attempts running, oldest first
	done     []Done[T, R]     // to send to out from done[head] on, first first
	head     int              // done[head] is the next to send
	stopping bool             // starting has ended
	// blocked: a pass over the ready attempts found none the Gate admits, and since
	// then no attempt ended, none became ready and wake (when not zero) has not
	// passed: a pass now would find none either (an attempt that starts never makes
	// the Gate admit more), so none is made.
	blocked   bool
	wake      time.Time // with blocked: when the Gate may admit one it held back
	exhausted string    // why the Gate was last exhausted (Exhauster), for attempts it was not asked about
	scratch   []int     // pick's frontier, kept for its room
	held      string    // what Options.Held was last told
}

// maxDone bounds the Dones held for out while in is drained after starting ended.
const maxDone = 64

func (d *dispatcher[T, R]) loop() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	in := d.in
	for in != nil || d.ready.Len() > 0 || len(d.waiting) > 0 || d.running > 0 || d.pending() > 0 {
		var (
			work   chan<- attempt[T, R]
			next   attempt[T, R]
			out    chan<- Done[T, R]
			first  Done[T, R]
			recv   <-chan Job[T]
			timerC <-chan time.Time
		)
		again := d.preempt()
		pick, wake, why := d.pick()
		if d.opts.Held != nil && why != d.held {
			d.held = why
			d.opts.Held(why)
		}
		if !again.IsZero() && (wake.IsZero() || again.Before(wake)) {
			wake = again
		}
		if pick >= 0 {
			work, next = d.work, d.ready.items[pick]
			if waited := time.Since(next.ready); waited > 0 {
				next.wait += waited
				if len(next.why) == 0 && waited > time.Millisecond {
					next.why = []string{"workers"}
					if d.exhausted != "" { // the Gate was not asked about it, all of a resource held
						next.why = []string{d.exhausted}
					}
				}
			}
		}
		if d.pending() > 0 {
			out, first = d.out, d.done[d.head]
		}
		// While the Gate holds back every ready attempt and a worker is free, read
		// ahead: a later job may be admitted.
		gated := pick < 0 && d.opts.Gate != nil && d.running < max(d.opts.Workers, 1) && d.ready.Len() < maxGated
		if (d.ready.Len() == 0 || gated) && d.pending() < maxDone {
			recv = in
		}
		if len(d.waiting) > 0 && (wake.IsZero() || d.waiting[0].due.Before(wake)) {
			wake = d.waiting[0].due
		}
		if !wake.IsZero() {
			// Since Go 1.23 a Reset timer never delivers a stale tick.
			timer.Reset(time.Until(wake))
			timerC = timer.C
		} else {
			timer.Stop()
		}
		select {
		case j, ok := <-recv:
			d.blocked = false
			switch {
			case !ok:
				in = nil
			case d.stopping:
				d.final(Done[T, R]{Job: j})
			default:
				d.ready.add(attempt[T, R]{job: j, n: 1})
			}
		case work <- next:
			d.ready.remove(pick)
			d.running++
			if next.stop != nil {
				d.live = append(d.live, liveAttempt{seq: next.seq, stop: next.stop})
			}
			if d.opts.Gate != nil {
				d.opts.Gate.Start(next.job.Value, time.Now())
			}
		case r := <-d.results:
			d.blocked = false
			d.running--
			d.live = slices.DeleteFunc(d.live, func(l liveAttempt) bool { return l.seq == r.seq })
			if d.opts.Gate != nil {
				d.opts.Gate.Done(r.Job.Value)
			}
			d.finish(r)
		case out <- first:
			d.sent()
		case <-timerC:
			d.blocked = false
			for len(d.waiting) > 0 && !time.Now().Before(d.waiting[0].due) {
				d.ready.add(heap.Pop(&d.waiting).(attempt[T, R]))
			}
		case <-d.startDone:
			d.blocked = false
			d.stop()
		}
	}
	if d.held != "" {
		d.opts.Held("")
	}
}

// liveAttempt is a running attempt that Options.Preempt may stop.
type liveAttempt struct {
	seq     uint64
	stop    chan struct{}
	stopped bool
}

// preempt stops the youngest running attempt not yet stopped, when Options.Preempt
// says so and at least two run, and returns when to ask again (zero: no need).
func (d *dispatcher[T, R]) preempt() (next time.Time) {
	if d.opts.Preempt == nil || len(d.live) < 2 {
		return time.Time{}
	}
	stop, next := d.opts.Preempt(time.Now())
	if !stop {
		return next
	}
	for i := len(d.live) - 1; i > 0; i-- {
		if !d.live[i].stopped {
			d.live[i].stopped = true
			close(d.live[i].stop)
			break
		}
	}
	return next
}

// pick returns the position in d.ready.items of the attempt to start next, or -1:
// without a Gate, the least; with one, the least it admits. wake is when the Gate
// may admit one it holds back now (zero: not before an attempt ends). An attempt is
// picked only while a worker may be free. held is why the Gate holds back the least
// attempt when it admits none ("" when it admits one, or no worker is free).
func (d *dispatcher[T, R]) pick() (pick int, wake time.Time, held string) {
	if d.ready.Len() == 0 || d.running >= max(d.opts.Workers, 1) {
		return -1, time.Time{}, ""
	}
	if d.opts.Gate == nil {
		return 0, time.Time{}, ""
	}
	now := time.Now()
	if d.blocked && (d.wake.IsZero() || now.Before(d.wake)) {
		return -1, d.wake, d.held // held back as the last pass found
	}
	// The least of all, when the Gate admits it, is the least it admits: the common
	// case costs one Admit, not a pass over the queue.
	ok, _, first := d.opts.Gate.Admit(d.ready.items[0].job.Value, now)
	if ok {
		return 0, time.Time{}, ""
	}
	// A Gate that admits nothing at all until an attempt ends spares the pass.
	if ex, ok := d.opts.Gate.(Exhauster); ok {
		if yes, why := ex.Exhausted(); yes {
			if a := &d.ready.items[0]; why != "" && !slices.Contains(a.why, why) {
				a.why = append(a.why, why)
			}
			d.blocked, d.wake, d.exhausted = true, time.Time{}, why
			if first == "" {
				first = why
			}
			return -1, time.Time{}, first
		}
	}
	// Least first over the heap: no attempt is less than its parent, so taking the
	// least of the frontier (the children of the attempts held back so far) visits
	// the attempts in order, and the first admitted is the least admitted. Only the
	// attempts held back are passed: one large job at the head behind which the
	// others fit costs a few Admits, not a pass over the queue.
	pick = -1
	f := frontier[T, R]{q: &d.ready, idx: append(d.scratch[:0], 0)}
	for len(f.idx) > 0 {
		i := f.pop()
		a := &d.ready.items[i]
		ok, at, why := d.opts.Gate.Admit(a.job.Value, now)
		if ok {
			pick = i
			break
		}
		if !at.IsZero() && (wake.IsZero() || at.Before(wake)) {
			wake = at
		}
		if why != "" && !slices.Contains(a.why, why) {
			a.why = append(a.why, why)
		}
		for c := 2*i + 1; c <= 2*i+2 && c < d.ready.Len(); c++ {
			f.push(c)
		}
	}
	d.scratch = f.idx[:0]
	d.blocked, d.wake = pick < 0, wake
	if pick >= 0 {
		return pick, wake, ""
	}
	return pick, wake, first
}

// frontier is a min-heap of positions in a readyQueue, by its order.
type frontier[T, R any] struct {
	q   *readyQueue[T, R]
	idx []int
}

func (f *frontier[T, R]) less(a, b int) bool { return f.q.Less(f.idx[a], f.idx[b]) }

func (f *frontier[T, R]) push(i int) {
	f.idx = append(f.idx, i)
	for c := len(f.idx) - 1; c > 0; {
		p := (c - 1) / 2
		if !f.less(c, p) {
			break
		}
		f.idx[c], f.idx[p] = f.idx[p], f.idx[c]
		c = p
	}
}

func (f *frontier[T, R]) pop() int {
	top := f.idx[0]
	last := len(f.idx) - 1
	f.idx[0] = f.idx[last]
	f.idx = f.idx[:last]
	for p := 0; ; {
		m, l, r := p, 2*p+1, 2*p+2
		if l < last && f.less(l, m) {
			m = l
		}
		if r < last && f.less(r, m) {
			m = r
		}
		if m == p {
			break
		}
		f.idx[p], f.idx[m] = f.idx[m], f.idx[p]
		p = m
	}
	return top
}

// finish takes an attempt back from a worker: the job is retried or done.
func (d *dispatcher[T, R]) finish(r Done[T, R]) {
	if !r.Started || r.Panic != nil || d.stopping || d.opts.Retry == nil {
		d.final(r)
		return
	}
	delay, again := d.opts.Retry(r.Job.Value, r.Result, r.Tries)
	if !again {
		d.final(r)
		return
	}
	last := r
	heap.Push(&d.waiting, attempt[T, R]{job: r.Job, n: r.Attempts + 1, tries: r.Tries, last: &last, due: time.Now().Add(delay),
		wait: r.Wait, why: slices.Clip(r.WaitedFor)})
}

// stop ends starting: what waits to start ends now, as not started or with its last
// attempt.
func (d *dispatcher[T, R]) stop() {
	d.stopping = true
	d.startDone = nil
	ready, waiting := d.ready.items, d.waiting
	d.ready.items, d.waiting = nil, nil
	for _, a := range ready {
		d.final(notStarted(a))
	}
	for _, a := range waiting {
		d.final(notStarted(a))
	}
}

// final queues a job's final Done for out, after telling Options.Finished, and
// takes in what Options.Follow says it makes ready or rules out.
// pending is the number of Dones waiting for out.
func (d *dispatcher[T, R]) pending() int { return len(d.done) - d.head }

// sent drops the Done at head, once out took it. The array is reused from its start
// once all were sent (d.done[1:] would walk its start forward, and appends would
// allocate a new array again and again), and compacted when half of it is sent.
func (d *dispatcher[T, R]) sent() {
	d.done[d.head] = Done[T, R]{}
	d.head++
	switch {
	case d.head == len(d.done):
		d.done, d.head = d.done[:0], 0
	case d.head > len(d.done)/2 && d.head >= maxDone:
		n := copy(d.done, d.done[d.head:])
		clear(d.done[n:])
		d.done, d.head = d.done[:n], 0
	}
}

func (d *dispatcher[T, R]) final(r Done[T, R]) {
	if d.opts.Finished != nil {
		d.opts.Finished(r)
	}
	d.done = append(d.done, r)
	if d.opts.Follow == nil {
		return
	}
	ready, ruledOut := d.opts.Follow(r)
	d.done = append(d.done, ruledOut...)
	for _, j := range ready {
		if d.stopping {
			d.final(Done[T, R]{Job: j})
			continue
		}
		d.ready.add(attempt[T, R]{job: j, n: 1})
	}
}

// readyQueue holds the attempts ready to start, the next (the least by less, else
// the first to become ready) at items[0]. It is a heap (container/heap).
type readyQueue[T, R any] struct {
	items   []attempt[T, R]
	less    func(a, b Job[T]) bool
	seq     uint64
	preempt bool // attempts get a stop channel
}

// add makes a ready; with preempt, it can be stopped once running.
func (q *readyQueue[T, R]) add(a attempt[T, R]) {
	q.seq++
	a.seq = q.seq
	a.ready = time.Now()
	a.stop = nil
	if q.preempt {
		a.stop = make(chan struct{})
	}
	q.items = append(q.items, a) // not heap.Push: an attempt boxed in an any is an allocation per task
	heap.Fix(q, len(q.items)-1)
}

// remove takes the attempt at i out of the queue (not heap.Remove, for the same reason).
func (q *readyQueue[T, R]) remove(i int) {
	last := len(q.items) - 1
	if i != last {
		q.Swap(i, last)
	}
	q.items[last] = attempt[T, R]{} // nothing kept alive from the slice's spare room
	q.items = q.items[:last]
	if i < last {
		heap.Fix(q, i)
	}
}

func (q *readyQueue[T, R]) Len() int { return len(q.items) }
func (q *readyQueue[T, R]) Less(i, j int) bool {
	a, b := &q.items[i], &q.items[j]
	if q.less != nil {
		if q.less(a.job, b.job) {
			return true
		}
		if q.less(b.job, a.job) {
			return false
		}
	}
	return a.seq < b.seq
}
func (q *readyQueue[T, R]) Swap(i, j int) { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *readyQueue[T, R]) Push(x any)    { q.items = append(q.items, x.(attempt[T, R])) } // heap.Interface; add is used
func (q *readyQueue[T, R]) Pop() any { // heap.Interface; remove is used
	old := q.items
	x := old[len(old)-1]
	q.items = old[:len(old)-1]
	return x
}

// retryHeap orders waiting retries by due time.
type retryHeap[T, R any] []attempt[T, R]

func (h retryHeap[T, R]) Len() int           { return len(h) }
func (h retryHeap[T, R]) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h retryHeap[T, R]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap[T, R]) Push(x any)        { *h = append(*h, x.(attempt[T, R])) }
func (h *retryHeap[T, R]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
