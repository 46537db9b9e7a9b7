package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

// stopResend is how often the Executor repeats a stop until the end arrives.
const stopResend = 500 * time.Millisecond

// endMargin is how long, beyond the grace, the Executor waits for the end of an
// execution it stopped before it writes the execution off.
const endMargin = 500 * time.Millisecond

// Executor runs attempts of one run's tasks on the workers of a broker. Its Run has
// the method set of the pipeline's Runner: the run's scheduler hands it attempts as
// it would hand them to the local executor, and decides everything (retries,
// timeouts, halts, order) as locally.
//
// Open one per run; Run is safe for concurrent use; call Close after the last Run
// has returned.
type Executor struct {
	conn  *Conn
	run   string
	lease time.Duration
	grace time.Duration
	epoch int                 // the run's takeovers: its attempts' subjects carry it (see TakeOver)
	on    []map[string]string // the label sets of its routes, each with a queue of its own
	needs []jobs.Resources    // the requests of its routes

	hurry     chan struct{} // closed by KillAll
	hurryOnce sync.Once

	sub *nats.Subscription // gorun.att.<run>.>: every attempt's messages, dispatched by attemptOf
	ctl *Control           // the run's record

	mu       sync.Mutex
	dups     map[int]int        // task index → duplicate executions so far
	attempts map[string]*remote // attempt subject → the attempt, while its Run lasts
}

// Open prepares run on the broker: a durable consumer of its attempts whose ack wait
// is lease (the run's lease: no other run or client changes it), and the run's entry
// in the RunsBucket, from which workers learn of it. grace is the time from SIGTERM
// to SIGKILL that every attempt carries to its worker.
func Open(ctx context.Context, conn *Conn, run string, lease, grace time.Duration) (*Executor, error) {
	return OpenRun(ctx, conn, run, lease, grace, RunMeta{Total: -1})
}

// OpenRun is Open with what the run's record says of it beyond its state and lease.
// The record is kept up to date while the run lasts (see Control).
func OpenRun(ctx context.Context, conn *Conn, run string, lease, grace time.Duration, meta RunMeta) (*Executor, error) {
	e, err := openExecutor(ctx, conn, run, lease, grace, meta.On, meta.Needs)
	if err != nil {
		return nil, err
	}
	if e.ctl, err = startControl(ctx, conn, run, lease, meta, e.running); err != nil {
		_ = e.sub.Unsubscribe()
		return nil, err
	}
	return e, nil
}

// openExecutor makes the run's consumer and its subscription to its attempts.
// on and needs are the routes of the run's tasks (Routes), each with a consumer of
// its own.
func openExecutor(ctx context.Context, conn *Conn, run string, lease, grace time.Duration, on []map[string]string, needs []jobs.Resources) (*Executor, error) {
	if lease < MinLease {
		return nil, fmt.Errorf("run %s: lease %v is shorter than %v", run, lease, MinLease)
	}
	cfg := jetstream.ConsumerConfig{
		Durable: consumerName(run), AckPolicy: jetstream.AckExplicitPolicy, AckWait: lease,
		MaxDeliver: MaxDeliver, FilterSubject: taskSubject(run), MaxAckPending: 100_000, Replicas: conn.Replicas,
	}
	if _, err := conn.JS.CreateOrUpdateConsumer(ctx, TasksStream, cfg); err != nil {
		return nil, fmt.Errorf("run %s: create its consumer: %w", run, err)
	}
	if err := createLabelConsumers(ctx, conn, run, on, needs, cfg); err != nil {
		return nil, err
	}
	e := &Executor{conn: conn, run: run, lease: lease, grace: grace, hurry: make(chan struct{}), dups: map[int]int{}, attempts: map[string]*remote{},
		on: on, needs: needs}
	// One subscription for the whole run, made before any attempt is published.
	sub, err := conn.NC.Subscribe(attemptsOf(run), e.dispatch)
	if err != nil {
		return nil, fmt.Errorf("run %s: listen for its attempts: %w", run, err)
	}
	e.sub = sub
	return e, nil
}

// Control is the run's record on the broker.
func (e *Executor) Control() *Control { return e.ctl }

// running lists the attempts that run on a worker, for the run's record.
func (e *Executor) running() []RunningTask {
	e.mu.Lock()
	rs := make([]*remote, 0, len(e.attempts))
	for _, r := range e.attempts {
		rs = append(rs, r)
	}
	e.mu.Unlock()
	var out []RunningTask
	for _, r := range rs {
		r.mu.Lock()
		if r.running {
			out = append(out, RunningTask{ID: r.id, Attempt: r.base + r.execs - 1, Worker: r.ownerW, Since: r.since})
		}
		r.mu.Unlock()
	}
	return out
}

// Close ends the run on the broker: its record's state becomes done (unless it was
// cancelled), with its end; its consumer and any attempt still queued are removed.
// A run taken over by gorun attach is left as it is.
func (e *Executor) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := e.ctl.close(ctx)
	_ = e.sub.Unsubscribe()
	if e.ctl.TakenOver() { // the run goes on: its consumer and queue are another's
		return err
	}
	if derr := e.conn.JS.DeleteConsumer(ctx, TasksStream, consumerName(e.run)); derr != nil && !errors.Is(derr, jetstream.ErrConsumerNotFound) {
		err = errors.Join(err, derr)
	}
	err = errors.Join(err, e.conn.Tasks.Purge(ctx, jetstream.WithPurgeSubject(taskSubject(e.run))))
	for n := range e.on {
		if derr := e.conn.JS.DeleteConsumer(ctx, TasksStream, labelConsumer(e.run, n)); derr != nil && !errors.Is(derr, jetstream.ErrConsumerNotFound) {
			err = errors.Join(err, derr)
		}
		err = errors.Join(err, e.conn.Tasks.Purge(ctx, jetstream.WithPurgeSubject(labelSubject(e.run, n))))
	}
	if err != nil {
		return fmt.Errorf("run %s: end it on the broker: %w", e.run, err)
	}
	return nil
}

// KillAll stops waiting for the ends of stopped attempts: every Run that was told to
// stop returns at once. It is the answer to a second interrupt; the workers stop the
// executions by themselves (the stops already went out, and their leases lapse).
func (e *Executor) KillAll() { e.hurryOnce.Do(func() { close(e.hurry) }) }

// Run publishes one attempt of t and relays what the worker that takes it reports:
// its output into stdout and stderr as it comes, then its end. slot is the run's slot
// of the attempt (the template's {%}), attempt the number of its first execution.
//
// The task's timeout (t.Timeout) counts from the moment a worker starts the attempt,
// not from its publication: an attempt may wait in the queue for a free worker (see
// pipeline.Options.RunnerTimesOut). When it passes, the attempt is stopped as below
// and returns TimedOut.
//
// When ctx ends (a halt, an interrupt), an attempt no worker has started
// is withdrawn and returns at once, Stopped; a running one is told to stop (SIGTERM,
// the grace, SIGKILL on its worker), again until its end arrives or the grace and
// half a second have passed. An attempt delivered again (its worker died or lost its
// lease) counts each execution in Attempt.Executions; the end of a superseded
// execution never counts, and is counted in Attempt.Duplicates.
func (e *Executor) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	a := jobs.Attempt{Start: time.Now(), ExitCode: -1}
	if ctx.Err() != nil {
		a.Stopped = true
		return a
	}
	msg := toMsg(e.run, t, slot, attempt, e.grace)
	if e.epoch > 0 { // the attempts of the run's earlier submitters are not this one's
		msg.Subject += ".e" + strconv.Itoa(e.epoch)
	}
	st := &remote{id: t.ID, base: attempt, fence: e.lease + e.grace + time.Second, stdout: stdout, stderr: stderr, endCh: make(chan endMsg, 1),
		started: make(chan struct{}), starts: map[string]startReply{}, ends: map[string]bool{}}
	st.nc = e.conn.NC
	e.mu.Lock()
	e.attempts[msg.Subject] = st // before it is published: a start for it always finds it
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.attempts, msg.Subject)
		e.mu.Unlock()
	}()
	subject := taskSubject(e.run)
	if n := routeOf(e.on, e.needs, t); n >= 0 { // only the workers with its labels and room for it take it
		subject = labelSubject(e.run, n)
	}
	seq, err := e.publish(ctx, subject, &msg)
	if err != nil {
		st.finish()
		if ctx.Err() != nil {
			a.Stopped = true
			return a
		}
		a.Err = fmt.Errorf("task %s: %w", t.ID, err)
		return a
	}

	var (
		stopped  <-chan struct{} = ctx.Done()
		started  <-chan struct{}
		deadline <-chan time.Time
		timedOut bool
		resend   <-chan time.Time
		giveUp   <-chan time.Time
		hurry    <-chan struct{}
	)
	if t.Timeout > 0 {
		started = st.started // the task's timeout counts from its start on a worker
	}
	stopping := false
	for {
		stopNow := false
		select {
		case end := <-st.endCh:
			a := e.ended(t.Index, st, &end)
			a.TimedOut = timedOut && a.Stopped
			return a
		case <-started:
			started, deadline = nil, time.After(t.Timeout)
		case <-deadline:
			deadline, timedOut, stopNow = nil, true, true
		case <-stopped:
			stopped, stopNow = nil, true
		case <-resend:
			e.sendStop(msg.Subject, st)
		case <-giveUp:
			a := e.abandoned(t.Index, st, fmt.Errorf("task %s: no end from worker %s within the grace after it was told to stop", t.ID, st.worker()))
			a.TimedOut = timedOut
			return a
		case <-hurry:
			a := e.abandoned(t.Index, st, nil)
			a.TimedOut = timedOut
			return a
		}
		if !stopNow || stopping {
			continue
		}
		stopping, stopped, deadline = true, nil, nil
		if !st.stop() { // no execution runs: withdraw the attempt
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = e.conn.Tasks.DeleteMsg(ctx, seq)
			cancel()
			return e.abandoned(t.Index, st, nil)
		}
		e.sendStop(msg.Subject, st)
		tick := time.NewTicker(stopResend)
		defer tick.Stop()
		resend, giveUp, hurry = tick.C, time.After(e.grace+endMargin), e.hurry
	}
}

// publish puts the attempt on the work queue, trying again while the broker cannot
// take it (a restart) until ctx ends. Its message id makes a second publish of the
// same attempt a no-op.
func (e *Executor) publish(ctx context.Context, subject string, m *attemptMsg) (uint64, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	id := strings.TrimPrefix(m.Subject, "gorun.att.") // the run, index, attempt (and epoch)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		nm := nats.NewMsg(subject)
		nm.Data = data
		ack, err := e.conn.JS.PublishMsg(ctx, nm, jetstream.WithMsgID(id))
		if err == nil {
			return ack.Sequence, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			return 0, fmt.Errorf("publish attempt %d: %w", m.Attempt, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// sendStop tells every worker that started an execution of the attempt to stop it.
func (e *Executor) sendStop(subject string, r *remote) {
	for _, to := range r.stopSubjects() {
		_ = e.conn.NC.Publish(to, []byte(subject))
	}
}

// dispatch hands a message of the run's subscription to its attempt. It never blocks:
// it runs for every attempt of the run, and one attempt's slow output must not hold
// up another's start, output or end. A message for an attempt whose Run returned
// (a redelivery after a lost ack, a late end or chunk) is answered as the attempt
// would have answered it once over: a start is refused, the rest dropped.
func (e *Executor) dispatch(m *nats.Msg) {
	i := strings.LastIndexByte(m.Subject, '.')
	if i < 0 || m.Subject[i+1:] == "stop" {
		return // our own stops
	}
	kind := m.Subject[i+1:]
	if epochOf(m.Subject[:i]) > e.epoch {
		return // a later submitter's, since gorun attach took the run over: never answered here
	}
	e.mu.Lock()
	r := e.attempts[m.Subject[:i]]
	e.mu.Unlock()
	switch {
	case r != nil:
		r.handle(kind, m)
	case kind == "start":
		data, _ := json.Marshal(startReply{Run: false})
		_ = m.Respond(data)
	case kind == "end":
		var end endMsg
		_ = json.Unmarshal(m.Data, &end)
		answerEnd(e.conn.NC, m, &end)
	default:
		_ = m.Respond(nil)
	}
}

// addDups adds n duplicate executions to the task's count and returns the total.
func (e *Executor) addDups(index, n int) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dups[index] += n
	return e.dups[index]
}

// ended is the attempt as its counting execution reported it.
func (e *Executor) ended(index int, st *remote, end *endMsg) jobs.Attempt {
	execs, dups := st.finish()
	a := jobs.Attempt{Start: end.Start, Duration: end.Duration, ExitCode: end.ExitCode, Signal: syscall.Signal(end.Signal),
		Stopped: end.Stopped, Leftovers: end.Leftovers, Executions: execs, Duplicates: e.addDups(index, dups),
		Worker: end.Worker, Host: end.Host, HeldFor: end.Held}
	if end.Err != "" {
		a.Err = errors.New(end.Err)
	}
	return a
}

// abandoned is an attempt stopped without an end that counts.
func (e *Executor) abandoned(index int, st *remote, err error) jobs.Attempt {
	execs, dups := st.finish()
	return jobs.Attempt{Start: time.Now(), ExitCode: -1, Stopped: true, Err: err, Executions: execs, Duplicates: e.addDups(index, dups)}
}

// remote is the state of one attempt as the Executor sees it. Its handle runs on the
// run's subscription's goroutine and never blocks; the chunks of output go to the
// attempt's own goroutine (writeChunks), which writes them to the captures in order.
// The fields are guarded by mu.
type remote struct {
	id             string        // the task's
	base           int           // the number of the attempt's first execution
	fence          time.Duration // how long after its last beat an execution may still run
	stdout, stderr *process.Capture
	endCh          chan endMsg   // the counting end; room for one
	started        chan struct{} // closed when the first execution starts; nil: not watched

	mu       sync.Mutex
	starts   map[string]startReply // every execution that asked to start, and the answer
	stopTo   []string              // where the stops of the executions started go, each once
	ends     map[string]bool       // executions whose end came
	execs    int                   // executions started
	owner    string                // the execution whose output and end count: the latest started
	ownerW   string                // its worker
	running  bool                  // the owner started and has not ended
	beat     time.Time             // when the owner last said it renewed its lease
	since    time.Time             // when the owner started
	stopping bool                  // ctx ended: no execution may start
	over     bool                  // the attempt returned: nothing more is written
	next     [2]int                // the owner's next chunk of stdout, stderr
	dups     int                   // executions whose end came and did not count
	chunks   chan chunk            // to writeChunks; nil until the first chunk, closed when over
	queued   int                   // chunks in chunks or being written

	wmu sync.Mutex // held while a chunk is written: finish waits for it

	nc *nats.Conn // where ends are answered; set before the attempt is registered
}

// chunk is a chunk of output as handle took it: whether it counts (it is the owner's
// next) is decided on arrival, in the order of the attempt's messages.
type chunk struct {
	m      *nats.Msg
	stream int  // 0: stdout, 1: stderr
	counts bool // write it
}

// chunkQueue is how many chunks of one attempt may wait for writeChunks. A worker
// sends the next chunk of a stream only once the last was answered, so it fills only
// when many executions of the attempt send at once; a chunk that finds it full is
// dropped unanswered, and its worker sends it again.
const chunkQueue = 8

func (r *remote) handle(kind string, m *nats.Msg) {
	switch kind {
	case "start":
		var s startMsg
		if json.Unmarshal(m.Data, &s) != nil {
			return
		}
		r.mu.Lock()
		rep, seen := r.starts[s.Exec] // a start asked again gets the same answer
		switch {
		case seen || r.stopping || r.over:
		case r.running && r.fence > 0 && time.Since(r.beat) < r.fence:
			// The owner still renews its lease (or may still run, its lease lost but
			// its grace not over): a second execution now would run beside it.
			wait := r.fence - time.Since(r.beat)
			r.mu.Unlock()
			data, _ := json.Marshal(startReply{Busy: true, Wait: wait})
			_ = m.Respond(data)
			return
		default:
			if r.execs == 0 && r.started != nil {
				close(r.started)
			}
			r.execs++
			r.owner, r.ownerW, r.running, r.next, r.beat = s.Exec, s.Worker, true, [2]int{}, time.Now()
			r.since = r.beat
			rep = startReply{Run: true, Attempt: r.base + r.execs - 1}
			to := s.Stop
			if to == "" { // a worker that listens on the attempt's own subject
				to = m.Subject[:len(m.Subject)-len("start")] + "stop"
			}
			if !slices.Contains(r.stopTo, to) {
				r.stopTo = append(r.stopTo, to)
			}
		}
		r.starts[s.Exec] = rep
		r.mu.Unlock()
		data, _ := json.Marshal(rep)
		_ = m.Respond(data)
	case "beat":
		r.mu.Lock()
		if string(m.Data) == r.owner {
			r.beat = time.Now()
		}
		r.mu.Unlock()
	case "out", "err":
		r.mu.Lock()
		if r.over {
			r.mu.Unlock()
			_ = m.Respond(nil)
			return
		}
		if r.chunks == nil {
			r.chunks = make(chan chunk, chunkQueue)
			go r.writeChunks(r.chunks)
		}
		if len(r.chunks) < cap(r.chunks) { // only handle sends: it cannot fill meanwhile
			c := chunk{m: m}
			if kind == "err" {
				c.stream = 1
			}
			seq, err := strconv.Atoi(m.Header.Get(hdrSeq))
			if c.counts = err == nil && m.Header.Get(hdrExec) == r.owner && seq == r.next[c.stream]; c.counts {
				r.next[c.stream]++
			}
			r.queued++
			r.chunks <- c
		}
		r.mu.Unlock()
	case "end":
		var end endMsg
		if json.Unmarshal(m.Data, &end) != nil {
			return
		}
		r.mu.Lock()
		if !r.ends[end.Exec] {
			r.ends[end.Exec] = true
			switch {
			case end.Exec == r.owner && end.LeaseLost:
				r.running = false // the broker delivers it again
			case end.Exec == r.owner && !r.over:
				r.running = false
				r.over = true
				r.endCh <- end
			case r.starts[end.Exec].Run:
				r.dups++ // superseded by a later execution
			}
		}
		r.mu.Unlock()
		answerEnd(r.nc, m, &end)
	}
}

// answerEnd answers an end once it is recorded. An end that carries its delivery's
// ack subject (every end but a lost lease's) is answered by acknowledging that
// delivery with the end's reply subject as the ack's: the broker's confirmation of
// the ack is the worker's answer, so the worker sends no ack of its own, and an end
// it hears answered is both recorded and acknowledged. An end with Next makes the ack
// an ack-and-next: the broker's answer is then the worker slot's next attempt, or the
// pull's expiry. An end asked again (its answer was lost) is acknowledged again: acks
// are idempotent.
func answerEnd(nc *nats.Conn, m *nats.Msg, end *endMsg) {
	if end.Ack == "" || end.LeaseLost || nc == nil || m.Reply == "" {
		_ = m.Respond(nil)
		return
	}
	var ack []byte // an empty ack is a plain one
	if end.Next > 0 {
		ack = fmt.Appendf(nil, `+NXT {"batch":1,"expires":%d}`, end.Next.Nanoseconds())
	}
	_ = nc.PublishRequest(end.Ack, m.Reply, ack)
}

// writeChunks writes the chunks that count, in their order, and answers every chunk
// once written (or dropped), after those before it: the worker sends the stream's
// next chunk only then (back-pressure), and an execution's end, sent once all its
// chunks were answered, finds its output written.
func (r *remote) writeChunks(chunks <-chan chunk) {
	for c := range chunks {
		r.wmu.Lock()
		r.mu.Lock()
		write := c.counts && !r.over
		r.mu.Unlock()
		if write && c.stream == 0 {
			_, _ = r.stdout.Write(c.m.Data)
		} else if write {
			_, _ = r.stderr.Write(c.m.Data)
		}
		r.wmu.Unlock()
		r.mu.Lock()
		r.queued--
		r.mu.Unlock()
		_ = c.m.Respond(nil)
	}
}

// stop refuses every later start and reports whether an execution is running.
func (r *remote) stop() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopping = true
	return r.running
}

// finish ends the attempt: nothing more is written to its captures. It returns the
// executions started and the duplicate ends.
func (r *remote) finish() (execs, dups int) {
	r.mu.Lock()
	r.over = true
	if r.chunks != nil {
		close(r.chunks)
		r.chunks = nil
	}
	execs, dups = r.execs, r.dups
	r.mu.Unlock()
	r.wmu.Lock() // a chunk being written is the last
	defer r.wmu.Unlock()
	return execs, dups
}

func (r *remote) stopSubjects() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.stopTo)
}

func (r *remote) worker() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ownerW
}
