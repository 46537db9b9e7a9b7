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

	"github.com/gorun/gorun/internal/process"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Worker executes attempts from the broker with a fixed number of slots. Each free
// slot fetches exactly one attempt (no prefetch: a prefetched attempt's lease would
// run before it starts) from the runs it knows of, asks the attempt's submitter
// whether it may start, runs it with the local executor while renewing its lease,
// streams its output, reports its end, and only then acknowledges it. It decides
// nothing: no retry, no timeout, no halt.
type Worker struct {
	Conn   *Conn
	Runner *process.Runner
	Slots  int
	Grace  time.Duration // on drain: how long running attempts may go on before they are handed back
	Log    *slog.Logger  // may be nil
	Name   string        // default host/pid
}

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
	runs := &runSet{cons: map[string]jetstream.Consumer{}, changed: make(chan struct{})}
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
	var bgWG sync.WaitGroup
	bgWG.Add(2)
	go func() {
		defer bgWG.Done()
		for e := range watcher.Updates() {
			if e != nil {
				w.track(bg, runs, e)
			}
		}
	}()
	go func() {
		defer bgWG.Done()
		w.announce(bg, key)
	}()
	if w.Log != nil { // after the first announcement: a run submitted from now on counts this worker's slots
		w.Log.Info("worker ready", "worker", w.Name, "slots", max(w.Slots, 1))
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
			w.serve(ctx, taskCtx, slot, runs)
		}()
	}
	wg.Wait()
	return nil
}

// announceKey is this worker's key in the WorkersBucket.
func (w *Worker) announceKey() string {
	return strings.NewReplacer("/", "_", ".", "_", ":", "_", " ", "_").Replace(w.Name)
}

func (w *Worker) slotsValue() []byte { return []byte(strconv.Itoa(max(w.Slots, 1))) }

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
		runs.remove(e.Key())
		return
	}
	cons, err := w.Conn.JS.Consumer(ctx, TasksStream, consumerName(e.Key()))
	if err != nil {
		return // ended meanwhile
	}
	runs.add(e.Key(), cons)
}

// serve is one slot: fetch one attempt, run it, again, until ctx ends.
func (w *Worker) serve(ctx, taskCtx context.Context, slot int, runs *runSet) {
	turn := slot
	for ctx.Err() == nil {
		run, cons, n, changed := runs.pick(turn)
		turn++
		if cons == nil {
			select {
			case <-ctx.Done():
			case <-changed:
			}
			continue
		}
		wait := time.Second
		if n > 1 {
			wait = 200 * time.Millisecond // other runs wait their turn
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(wait))
		if err != nil {
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				runs.remove(run)
				continue
			}
			select { // the broker is away: try again soon
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		lease := cons.CachedInfo().Config.AckWait
		for msg := range batch.Messages() {
			w.handle(ctx, taskCtx, slot, lease, msg)
		}
		if errors.Is(batch.Error(), jetstream.ErrConsumerDeleted) || errors.Is(batch.Error(), jetstream.ErrConsumerNotFound) {
			runs.remove(run)
		}
	}
}

// handle executes one delivered attempt.
func (w *Worker) handle(drainCtx, taskCtx context.Context, slot int, lease time.Duration, msg jetstream.Msg) {
	taken := time.Now()
	var am attemptMsg
	if err := json.Unmarshal(msg.Data(), &am); err != nil || am.Subject == "" || len(am.Args) == 0 {
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
	stopSub, err := nc.Subscribe(am.Subject+".stop", func(*nats.Msg) { cancel(errStopped) })
	if err != nil {
		_ = msg.NakWithDelay(lease)
		return
	}
	defer func() { _ = stopSub.Unsubscribe() }()
	stopLease := w.keepLease(msg, lease, taken, func() { cancel(errLeaseLost) })
	defer stopLease()

	var rep startReply
	if err := w.ask(ctx, am.Subject+".start", startMsg{Exec: exec, Worker: w.Name, Delivered: delivered}, lease, &rep); err != nil {
		// The submitter did not answer: it may be gone, or away while the broker
		// restarts. The attempt comes back later.
		w.logf("attempt not started", "run", am.Run, "id", am.ID, "error", err)
		_ = msg.NakWithDelay(lease)
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
	a := w.Runner.Run(ctx, &task, slot, rep.Attempt, process.NewForwardingCapture(out), process.NewForwardingCapture(errOut))
	out.Close()
	errOut.Close()

	cause := context.Cause(ctx)
	end := endMsg{Exec: exec, Worker: w.Name, Start: a.Start, Duration: a.Duration, ExitCode: a.ExitCode,
		Signal: int(a.Signal), Stopped: a.Stopped, Leftovers: a.Leftovers}
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
		// This worker is draining (or was told to hurry): hand the attempt back.
		_ = msg.Nak()
		return
	}
	if err := w.ask(context.Background(), am.Subject+".end", end, time.Minute, nil); err != nil {
		w.logf("end not reported", "run", am.Run, "id", am.ID, "error", err)
	}
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = msg.DoubleAck(actx)
	acancel()
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
// by the server. Once no renewal was confirmed for the whole lease, counted from
// taken, it calls lost (once): by then the broker may have delivered the attempt to
// another worker. stop ends the renewals and waits for them.
func (w *Worker) keepLease(msg jetstream.Msg, lease time.Duration, taken time.Time, lost func()) (stop func()) {
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
			if _, err := w.Conn.NC.Request(msg.Reply(), []byte("+WPI"), every); err == nil {
				last = sent
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
	done   chan struct{}
}

func newStreamer(nc *nats.Conn, subject, exec string, chunk int, patience time.Duration) *streamer {
	s := &streamer{nc: nc, subject: subject, exec: exec, max: max(chunk, 1), patience: patience, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.loop()
	return s
}

// Write implements io.Writer; it never fails.
func (s *streamer) Write(p []byte) (int, error) {
	n := len(p)
	s.mu.Lock()
	defer s.mu.Unlock()
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
	s.mu.Unlock()
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
