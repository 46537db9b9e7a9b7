package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Worker executes attempts from the broker with a fixed number of slots. Each free
// slot fetches exactly one attempt (no prefetch: a prefetched attempt's lease would
// run before it starts) from the runs it knows of, asks the attempt's submitter
// whether it may start, runs it with the local executor while renewing its lease,
// streams its output and reports its end, which the submitter acknowledges once it
// has recorded it. It decides nothing: no retry, no timeout, no halt.
type Worker struct {
	Conn   *Conn
	Runner *process.Runner
	Slots  int
	Grace  time.Duration // on drain: how long running attempts may go on before they are handed back
	Log    *slog.Logger  // may be nil
	Name   string        // default host/pid
	// Labels are what this worker is (gpu=a100): it also serves the queues of the
	// attempts whose tasks require labels it all has (see Routes).
	Labels map[string]string
	// MilliCPU, Memory and GPUs are its capacity, which it announces: a run with
	// tasks that ask for resources takes them as its capacity (summed over the live
	// workers) unless its submitter sets one. The worker serves only the queues of
	// requests its capacity holds, and starts an attempt only when its request fits
	// in what the running ones leave, handing it GPUs of its own list in
	// CUDA_VISIBLE_DEVICES (see fitGate).
	MilliCPU int64
	Memory   uint64
	GPUs     []string

	fit *fitGate
}

// handBackPatience is how long a draining worker tries to tell the submitter of an
// attempt it hands back that its execution is over. Without that word the attempt
// still runs again, only later: once the execution's lease and grace have passed.
const handBackPatience = 5 * time.Second

// Errors that end an execution's context.
var (
	errStopped   = errors.New("stopped by its submitter")
	errLeaseLost = errors.New("lease lost: the broker may have delivered the attempt elsewhere")
)

// Run serves attempts until ctx is done, then drains: it fetches nothing more, lets
// the running attempts finish for up to Grace, stops those still running (they are
// handed back to the broker, to run elsewhere), and returns.
func (w *Worker) Run(ctx context.Context) error {
	if w.Name == "" {
		host, _ := os.Hostname()
		w.Name = host + "/" + strconv.Itoa(os.Getpid())
	}
	w.fit = newFitGate(jobs.Capacity{MilliCPU: w.MilliCPU, Memory: w.Memory, GPUs: w.GPUs})
	runs := &runSet{cons: map[string]jetstream.Consumer{}, changed: make(chan struct{})}
	stops := &stopBoard{subject: stopSubject(nuid.Next()), execs: map[string]map[string]func(){}}
	stopSub, err := w.Conn.NC.Subscribe(stops.subject, func(m *nats.Msg) { stops.stop(string(m.Data)) })
	if err != nil {
		return fmt.Errorf("worker %s: listen for stops: %w", w.Name, err)
	}
	defer func() { _ = stopSub.Unsubscribe() }()
	key := w.announceKey()
	if _, err := w.Conn.Workers.Put(ctx, key, w.slotsValue()); err != nil {
		return fmt.Errorf("worker %s: announce it: %w", w.Name, err)
	}
	bg, stopBg := context.WithCancel(context.Background())
	defer stopBg()
	watcher, err := w.Conn.Runs.WatchAll(bg)
	if err != nil {
		return fmt.Errorf("worker %s: watch runs: %w", w.Name, err)
	}
	keep := newKeeper(w.Conn, w.logf)
	var bgWG sync.WaitGroup
	bgWG.Add(3)
	go func() {
		defer bgWG.Done()
		for e := range watcher.Updates() {
			if e != nil {
				w.track(bg, runs, e)
				if keep.observe(e) { // cancelled: from elsewhere, or as an orphan
					stops.stopRun(e.Key())
				}
			}
		}
	}()
	go func() {
		defer bgWG.Done()
		w.announce(bg, key)
	}()
	go func() {
		defer bgWG.Done()
		keep.keep(bg)
	}()
	if w.Log != nil { // after the first announcement: a run submitted from now on counts this worker's slots
		args := []any{"worker", w.Name, "slots", max(w.Slots, 1)}
		if len(w.Labels) > 0 {
			args = append(args, "labels", jobs.FormatLabels(w.Labels))
		}
		w.Log.Info("worker ready", args...)
	}
	defer func() {
		_ = watcher.Stop()
		stopBg()
		bgWG.Wait()
	}()

	// Attempts run in taskCtx, which outlives ctx by Grace: draining lets them finish.
	taskCtx, stopTasks := context.WithCancel(context.Background())
	defer stopTasks()
	drained := context.AfterFunc(ctx, func() { time.AfterFunc(w.Grace, stopTasks) })
	defer drained()

	var wg sync.WaitGroup
	for slot := 1; slot <= max(w.Slots, 1); slot++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.serve(ctx, taskCtx, slot, runs, stops)
		}()
	}
	wg.Wait()
	return nil
}

// announceKey is this worker's key in the WorkersBucket.
func (w *Worker) announceKey() string {
	return strings.NewReplacer("/", "_", ".", "_", ":", "_", " ", "_").Replace(w.Name)
}

func (w *Worker) slotsValue() []byte {
	data, _ := json.Marshal(WorkerInfo{Slots: max(w.Slots, 1), MilliCPU: w.MilliCPU, Memory: w.Memory, GPUs: len(w.GPUs), Labels: w.Labels})
	return data
}

// announce keeps this worker and its slots in the WorkersBucket, announced every
// third of their time to live, until ctx ends; then it removes them.
func (w *Worker) announce(ctx context.Context, key string) {
	tick := time.NewTicker(workerTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = w.Conn.Workers.Delete(dctx, key)
			cancel()
			return
		case <-tick.C:
		}
		_, _ = w.Conn.Workers.Put(ctx, key, w.slotsValue())
	}
}

// track follows the RunsBucket: a running run's consumer is served, others not.
func (w *Worker) track(ctx context.Context, runs *runSet, e jetstream.KeyValueEntry) {
	var info runInfo
	if e.Operation() != jetstream.KeyValuePut || json.Unmarshal(e.Value(), &info) != nil || info.State != StateRunning {
		runs.removeRun(e.Key())
		return
	}
	if runs.has(e.Key()) { // a heartbeat of its submitter
		return
	}
	// The queues of routes first: the run's own queue is what marks the run known.
	for n, on := range info.On {
		if jobs.Missing(on, w.Labels) != "" || !w.fit.holds(needAt(info.Needs, n)) {
			continue
		}
		if cons, err := w.Conn.JS.Consumer(ctx, TasksStream, labelConsumer(e.Key(), n)); err == nil {
			runs.add(e.Key()+labelSep+strconv.Itoa(n), cons)
		}
	}
	cons, err := w.Conn.JS.Consumer(ctx, TasksStream, consumerName(e.Key()))
	if err != nil {
		return // ended meanwhile
	}
	runs.add(e.Key(), cons)
}

// labelSep joins a run and the position of a label set in the keys of a runSet.
const labelSep = "#on"

// removeRun stops serving run: its own queue and those of its label sets.
func (s *runSet) removeRun(run string) {
	s.mu.Lock()
	var keys []string
	for _, k := range s.order {
		if k == run || strings.HasPrefix(k, run+labelSep) {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	for _, k := range keys {
		s.remove(k)
	}
}

// serve is one slot: fetch one attempt, run it, again, until ctx ends.
//
// The slot asks for its next attempt as soon as its process is over: when it serves
// that attempt's run only, the pull rides in the end (the submitter's ack of the
// delivery asks the broker for the slot's next attempt: see endMsg.Next); otherwise
// it goes out with the end. Either way the slot then waits only for the attempt the
// submitter publishes once it has the end, not for one more round trip.
func (w *Worker) serve(ctx, taskCtx context.Context, slot int, runs *runSet, stops *stopBoard) {
	p := &puller{nc: w.Conn.NC}
	defer p.close()
	turn := slot
	// ask sends the pull of the run whose turn it is; with no run, it sends nothing
	// and returns a channel closed when the runs change.
	ask := func() (<-chan struct{}, error) {
		if held := w.fit.holding(); held != nil { // a held attempt starts first
			return held, nil
		}
		run, cons, n, changed := runs.pick(turn)
		turn++
		if cons == nil {
			return changed, nil
		}
		wait := time.Second
		if n > 1 {
			wait = 200 * time.Millisecond // other runs wait their turn
		}
		return nil, p.send(run, cons, wait)
	}
	// next: the slot is free again. With run the only one served, it returns its
	// consumer and the pull's wait, for the pull to ride in the end; otherwise it
	// sends the pull now and returns nil. While an attempt is held, it sends none.
	next := func(run string) (jetstream.Consumer, time.Duration) {
		if ctx.Err() != nil || w.fit.holding() != nil {
			return nil, 0
		}
		if r, cons, n, _ := runs.pick(turn); n == 1 && r == run {
			turn++
			return cons, time.Second
		}
		if _, err := ask(); err != nil {
			p.drop()
		}
		return nil, 0
	}
	for ctx.Err() == nil {
		var err error
		var msg *nats.Msg
		switch {
		case p.ready: // the answer to an end that carried the pull
			msg, err, p.ready = p.readyMsg, p.readyErr, false
		case !p.out:
			var none <-chan struct{}
			if none, err = ask(); none != nil {
				select {
				case <-ctx.Done():
				case <-none:
				}
				continue
			}
			fallthrough
		default:
			if err == nil {
				msg, err = p.await()
			}
		}
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted):
			runs.remove(p.run)
		case err != nil:
			p.drop()
			select { // the broker is away: try again soon
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		case msg != nil && ctx.Err() != nil: // draining: hand it back
			_ = msg.Nak()
		case msg != nil:
			w.handle(ctx, taskCtx, slot, p.cons.CachedInfo().Config.AckWait, msg, stops, p, next)
		}
	}
}

// puller is one slot's pulls, on an inbox of its own. At most one pull is out at a
// time, and its answer is awaited (or the inbox given up), so no attempt is ever
// delivered to a busy slot. (jetstream's Fetch does the same with a new inbox,
// subscribed and unsubscribed, for each pull.) Not safe for concurrent use.
type puller struct {
	nc    *nats.Conn
	inbox *nats.Subscription // made anew after a pull went unanswered

	out      bool               // a pull is out: await its answer
	run      string             // the run of the last pull
	cons     jetstream.Consumer // its consumer
	deadline time.Time          // when the last pull's answer is surely lost

	ready    bool      // the last pull, carried by an end, was answered:
	readyMsg *nats.Msg // its attempt (nil: none came)
	readyErr error     // or what came instead
}

// errNoResponders: nobody listens on the subject of a request sent through a puller.
var errNoResponders = errors.New("no responders")

// send asks cons, a queue of run (a runSet key), for one attempt, answered within wait.
func (p *puller) send(run string, cons jetstream.Consumer, wait time.Duration) error {
	if p.inbox == nil {
		inbox, err := p.nc.SubscribeSync(p.nc.NewInbox())
		if err != nil {
			return err
		}
		p.inbox = inbox
	}
	req := fmt.Appendf(nil, `{"batch":1,"expires":%d}`, wait.Nanoseconds())
	subject := "$JS.API.CONSUMER.MSG.NEXT." + TasksStream + "." + cons.CachedInfo().Name
	return p.request(subject, req, run, cons, wait+time.Second)
}

// request sends data to subject with the slot's inbox as its reply subject: the
// answer, due within patience, is a pull's (an attempt or a status).
func (p *puller) request(subject string, data []byte, run string, cons jetstream.Consumer, patience time.Duration) error {
	if p.inbox == nil {
		inbox, err := p.nc.SubscribeSync(p.nc.NewInbox())
		if err != nil {
			return err
		}
		p.inbox = inbox
	}
	if err := p.nc.PublishRequest(subject, p.inbox.Subject, data); err != nil {
		return err
	}
	p.out, p.run, p.cons, p.deadline = true, run, cons, time.Now().Add(patience)
	return nil
}

// report sends an end that carries the slot's next pull (endMsg.Next) to subject,
// again (on a new inbox) until it is answered, for up to a minute: the answer, an
// attempt or none, is then the slot's next (ready). A submitter missing for
// submitterAway ends it.
func (p *puller) report(subject string, end *endMsg, run string, cons jetstream.Consumer) error {
	data, err := json.Marshal(end)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	var away awayClock
	for {
		err := p.request(subject, data, run, cons, end.Next+2*time.Second)
		if err == nil {
			var m *nats.Msg
			if m, err = p.await(); err == nil || !errors.Is(err, errNoResponders) && !errors.Is(err, nats.ErrTimeout) {
				p.ready, p.readyMsg, p.readyErr = true, m, err
				return nil
			}
		}
		p.drop() // a late answer must not come to this slot
		switch {
		case errors.Is(err, errNoResponders) && away.gone():
			return fmt.Errorf("%s: nobody waits for it", subject)
		case !time.Now().Before(deadline):
			return fmt.Errorf("%s: %w", subject, err)
		case !errors.Is(err, nats.ErrTimeout):
			time.Sleep(100 * time.Millisecond) // disconnected, or nobody listens: try again soon
		}
	}
}

// await returns the answer to the pull out: the attempt, or nil when none came.
func (p *puller) await() (*nats.Msg, error) {
	p.out = false
	for {
		m, err := p.inbox.NextMsg(time.Until(p.deadline))
		if err != nil {
			return nil, err
		}
		if len(m.Data) > 0 || m.Header.Get("Status") == "" {
			return m, nil
		}
		switch status, descr := m.Header.Get("Status"), strings.ToLower(m.Header.Get("Description")); {
		case status == "408" || status == "404": // the pull expired: no attempt
			return nil, nil
		case status == "100": // a heartbeat
		case status == "409" && strings.Contains(descr, "consumer deleted"):
			return nil, jetstream.ErrConsumerDeleted
		case status == "503":
			return nil, errNoResponders
		default:
			return nil, fmt.Errorf("pull from run %s: %s %s", p.run, status, m.Header.Get("Description"))
		}
	}
}

// drop gives the inbox up: an answer may still come, not to this slot, which may be
// busy by then.
func (p *puller) drop() {
	if p.inbox != nil {
		_ = p.inbox.Unsubscribe()
		p.inbox = nil
	}
	p.out = false
}

// close ends the pulls: an attempt that answers a pull still out is handed back.
func (p *puller) close() {
	if p.ready && p.readyMsg != nil {
		_ = p.readyMsg.Nak()
	}
	p.ready = false
	if p.out {
		if m, err := p.await(); err == nil && m != nil {
			_ = m.Nak()
		}
	}
	p.drop()
}

// handle executes one delivered attempt. Once its process is over and its end is to
// be reported, the slot is free: it calls next, and sends the end on p with the pull
// that next returns, if any.
func (w *Worker) handle(drainCtx, taskCtx context.Context, slot int, lease time.Duration, msg *nats.Msg, stops *stopBoard,
	p *puller, next func(run string) (jetstream.Consumer, time.Duration)) {
	taken := time.Now()
	var am attemptMsg
	if err := json.Unmarshal(msg.Data, &am); err != nil || am.Subject == "" || len(am.Args) == 0 {
		_ = msg.Term() // not an attempt: never deliver it again
		return
	}
	delivered := 1
	if md, err := msg.Metadata(); err == nil {
		delivered = int(md.NumDelivered)
	}
	nc := w.Conn.NC
	exec := nuid.Next()
	ctx, cancel := context.WithCancelCause(taskCtx)
	defer cancel(nil)
	stops.add(am.Subject, exec, func() { cancel(errStopped) }) // before it asks to start: no stop is missed
	defer stops.remove(am.Subject, exec)
	// Each confirmed renewal is also a beat to the submitter: while it hears them, it
	// lets no other execution of the attempt start.
	beat := func() { _ = nc.Publish(am.Subject+".beat", []byte(exec)) }
	stopLease := w.keepLease(msg, lease, taken, beat, func() { cancel(errLeaseLost) })
	defer stopLease()

	// What it asks for must be free on this worker: until it is, the attempt is held
	// (its lease kept, not started).
	if !w.fit.holds(am.Resources) { // never delivered here by a run that routes requests
		w.logf("attempt not started", "run", am.Run, "id", am.ID, "error", "asks for "+am.Resources.String()+": more than this worker has")
		_ = msg.NakWithDelay(lease)
		return
	}
	gpus, held, heldFor, ok := w.fit.acquire(ctx, drainCtx.Done(), am.Resources)
	if !ok { // draining, stopped or its lease lost while held: hand it back, never started
		_ = msg.Nak()
		return
	}
	release := sync.OnceFunc(func() { w.fit.release(am.Resources, gpus) })
	defer release()
	if held > 0 {
		w.logf("attempt held", "run", am.Run, "id", am.ID, "asks", am.Resources.String(), "for", heldFor, "held", held)
	}

	var rep startReply
	if err := w.ask(ctx, am.Subject+".start", startMsg{Exec: exec, Worker: w.Name, Delivered: delivered, Stop: stops.subject}, lease, &rep); err != nil {
		// The submitter did not answer: it may be gone, or away while the broker
		// restarts. The attempt comes back later.
		w.logf("attempt not started", "run", am.Run, "id", am.ID, "error", err)
		_ = msg.NakWithDelay(lease)
		return
	}
	if rep.Busy { // another execution runs: ask again when it will have ended or died
		w.logf("attempt not started", "run", am.Run, "id", am.ID, "error", "another execution runs")
		_ = msg.NakWithDelay(min(max(rep.Wait, 100*time.Millisecond), lease))
		return
	}
	if !rep.Run { // over, or stopped before it started
		_ = msg.Ack()
		return
	}
	w.logf("attempt started", "run", am.Run, "id", am.ID, "attempt", rep.Attempt, "slot", slot, "delivery", delivered)

	chunk := int(min(int64(maxChunk), nc.MaxPayload()-chunkHeadroom))
	out := newStreamer(nc, am.Subject+".out", exec, chunk, lease)
	errOut := newStreamer(nc, am.Subject+".err", exec, chunk, lease)
	task := am.task()
	if len(gpus) > 0 {
		task.Env = jobs.WithGPUs(task.Env, gpus)
	}
	a := w.Runner.Run(ctx, &task, slot, rep.Attempt, process.NewForwardingCapture(out), process.NewForwardingCapture(errOut))
	out.Close()
	errOut.Close()
	release() // before the end: the slot's next attempt may take them

	cause := context.Cause(ctx)
	end := endMsg{Exec: exec, Worker: w.Name, Host: a.Host, Start: a.Start, Duration: a.Duration, ExitCode: a.ExitCode,
		Signal: int(a.Signal), Stopped: a.Stopped, Leftovers: a.Leftovers, Held: heldFor}
	if a.Err != nil {
		end.Err = a.Err.Error()
	}
	switch {
	case errors.Is(cause, errLeaseLost):
		// The broker may run it elsewhere already: say so, and leave the message.
		end.LeaseLost = true
		w.logf("lease lost: attempt stopped", "run", am.Run, "id", am.ID, "attempt", rep.Attempt)
		_ = w.ask(context.Background(), am.Subject+".end", end, lease, nil)
		return
	case drainCtx.Err() != nil && !errors.Is(cause, errStopped) && (a.Stopped || a.Signal == syscall.SIGKILL):
		// This worker is draining (or was told to hurry): hand the attempt back. An
		// end that does not count tells the submitter first that this execution is
		// over, so that the next may start at once instead of after the lease and
		// the grace (the time it would take a silent execution to stop by itself).
		end.LeaseLost = true
		_ = w.ask(context.Background(), am.Subject+".end", end, handBackPatience, nil)
		_ = msg.Nak()
		return
	}
	// The submitter acknowledges the delivery once it has recorded the end, and the
	// broker answers that ack (with the slot's next attempt when the pull rides in
	// the end): the end's answer. No ack of the worker's own.
	end.Ack = msg.Reply
	var err error
	if cons, wait := next(am.Run); cons != nil {
		end.Next = wait
		err = p.report(am.Subject+".end", &end, am.Run, cons)
	} else {
		err = w.ask(context.Background(), am.Subject+".end", end, time.Minute, nil)
	}
	if err != nil {
		// Not recorded: acknowledge it all the same. A redelivery would find the
		// attempt over (its start refused) or its submitter gone: it would never run
		// again, only take a slot.
		w.logf("end not reported", "run", am.Run, "id", am.ID, "error", err)
		_ = msg.Ack()
		return
	}
	w.logf("attempt finished", "run", am.Run, "id", am.ID, "attempt", rep.Attempt, "exit_code", a.ExitCode)
}

// ask sends v as a request to subject and decodes the reply into reply (when not
// nil), asking again until it is answered or patience has passed. No responder for
// submitterAway means the submitter no longer waits for this attempt: that ends it.
func (w *Worker) ask(ctx context.Context, subject string, v any, patience time.Duration, reply any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(patience)
	var away awayClock
	for {
		timeout := min(2*time.Second, max(time.Until(deadline), 10*time.Millisecond))
		m, err := w.Conn.NC.Request(subject, data, timeout)
		if err == nil {
			if reply != nil {
				return json.Unmarshal(m.Data, reply)
			}
			return nil
		}
		if errors.Is(err, nats.ErrNoResponders) && away.gone() {
			return fmt.Errorf("%s: nobody waits for it", subject)
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		if !errors.Is(err, nats.ErrTimeout) {
			select { // disconnected: try again soon
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// keepLease renews the attempt's lease every quarter of it, each renewal confirmed
// by the server, and calls renewed after each confirmed one. Once no renewal was
// confirmed for the whole lease, counted from taken, it calls lost (once): by then
// the broker may have delivered the attempt to another worker. stop ends the
// renewals and waits for them.
func (w *Worker) keepLease(msg *nats.Msg, lease time.Duration, taken time.Time, renewed, lost func()) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		every := max(lease/4, 10*time.Millisecond)
		tick := time.NewTicker(every)
		defer tick.Stop()
		last := taken
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			sent := time.Now()
			if _, err := w.Conn.NC.Request(msg.Reply, []byte("+WPI"), every); err == nil {
				last = sent
				renewed()
			} else if time.Since(last) >= lease {
				lost()
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (w *Worker) logf(msg string, args ...any) {
	if w.Log != nil {
		w.Log.Info(msg, append([]any{"worker", w.Name}, args...)...)
	}
}

// stopBoard is where a worker's stops arrive, one subscription for all its
// executions, and whom they stop. Safe for concurrent use.
type stopBoard struct {
	subject string // the worker's stop subject

	mu    sync.Mutex
	execs map[string]map[string]func() // attempt subject → execution → its cancel
}

func (b *stopBoard) add(attempt, exec string, cancel func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.execs[attempt] == nil {
		b.execs[attempt] = map[string]func(){}
	}
	b.execs[attempt][exec] = cancel
}

func (b *stopBoard) remove(attempt, exec string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.execs[attempt], exec)
	if len(b.execs[attempt]) == 0 {
		delete(b.execs, attempt)
	}
}

// stop stops this worker's executions of the attempt.
func (b *stopBoard) stop(attempt string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, cancel := range b.execs[attempt] {
		cancel()
	}
}

// runSet is the runs a worker serves, each with its consumer. Safe for concurrent use.
type runSet struct {
	mu      sync.Mutex
	order   []string
	cons    map[string]jetstream.Consumer
	changed chan struct{} // closed and replaced at each change
}

func (s *runSet) add(run string, c jetstream.Consumer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cons[run]; !ok {
		s.order = append(s.order, run)
	}
	s.cons[run] = c
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *runSet) has(run string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.cons[run]
	return ok
}

func (s *runSet) remove(run string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cons[run]; !ok {
		return
	}
	delete(s.cons, run)
	for i, r := range s.order {
		if r == run {
			s.order = append(s.order[:i:i], s.order[i+1:]...)
			break
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// pick returns the run whose turn it is, its consumer and the number of runs; with
// none, a nil consumer and a channel closed at the next change.
func (s *runSet) pick(turn int) (run string, c jetstream.Consumer, n int, changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) == 0 {
		return "", nil, 0, s.changed
	}
	run = s.order[turn%len(s.order)]
	return run, s.cons[run], len(s.order), s.changed
}

// streamer sends one output stream of an execution to its submitter in chunks, one
// request at a time, each answered before the next goes: Write blocks while a full
// chunk waits, which holds the task's pipe and so the task (back-pressure). Memory
// is two chunks. A chunk unanswered for patience (the submitter is gone) ends the
// stream: later output is dropped.
type streamer struct {
	nc       *nats.Conn
	subject  string
	exec     string
	max      int
	patience time.Duration

	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte // filled by Write
	spare  []byte // the chunk in flight, or free
	closed bool
	dead   bool
	looped bool          // loop started
	done   chan struct{} // closed when loop returned, or at Close when it never started
}

// newStreamer returns the stream's streamer. Its sending goroutine starts with the
// first output: most tasks of a large run print little or nothing.
func newStreamer(nc *nats.Conn, subject, exec string, chunk int, patience time.Duration) *streamer {
	s := &streamer{nc: nc, subject: subject, exec: exec, max: max(chunk, 1), patience: patience, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Write implements io.Writer; it never fails.
func (s *streamer) Write(p []byte) (int, error) {
	n := len(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.looped && n > 0 {
		s.looped = true
		go s.loop()
	}
	for len(p) > 0 {
		for !s.dead && len(s.buf) >= s.max {
			s.cond.Wait()
		}
		if s.dead {
			break
		}
		k := min(s.max-len(s.buf), len(p))
		s.buf = append(s.buf, p[:k]...)
		p = p[k:]
		s.cond.Broadcast()
	}
	return n, nil
}

// Close sends what is left and returns once every chunk was answered (or the stream
// died).
func (s *streamer) Close() {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	looped := s.looped
	if !looped { // nothing was written: there is nothing to send, nor will be
		s.looped, s.dead = true, true
	}
	s.mu.Unlock()
	if !looped {
		close(s.done)
	}
	<-s.done
}

func (s *streamer) loop() {
	defer close(s.done)
	for seq := 0; ; seq++ {
		s.mu.Lock()
		for len(s.buf) == 0 && !s.closed {
			s.cond.Wait()
		}
		if len(s.buf) == 0 {
			s.mu.Unlock()
			return
		}
		chunk := s.buf
		s.buf = s.spare[:0]
		s.cond.Broadcast()
		s.mu.Unlock()
		ok := s.send(seq, chunk)
		s.mu.Lock()
		s.spare = chunk
		if !ok {
			s.dead = true
			s.buf = nil
			s.cond.Broadcast()
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

func (s *streamer) send(seq int, chunk []byte) bool {
	m := nats.NewMsg(s.subject)
	m.Header.Set(hdrExec, s.exec)
	m.Header.Set(hdrSeq, strconv.Itoa(seq))
	m.Data = chunk
	deadline := time.Now().Add(s.patience)
	var away awayClock
	for {
		_, err := s.nc.RequestMsg(m, min(2*time.Second, max(time.Until(deadline), 10*time.Millisecond)))
		switch {
		case err == nil:
			return true
		case errors.Is(err, nats.ErrNoResponders) && away.gone() || !time.Now().Before(deadline):
			return false
		case !errors.Is(err, nats.ErrTimeout):
			time.Sleep(50 * time.Millisecond) // disconnected: try again soon
		}
	}
}
