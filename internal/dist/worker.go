package dist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pipeline"
	"github.com/gorun/gorun/internal/process"
)

// Worker serves tasks from the broker with a fixed number of slots. Each free slot
// fetches exactly one task (no prefetch: a prefetched task's ack timer would run
// before it starts), runs it with the local executor while sending heartbeats, then
// publishes its result and only then acks it.
type Worker struct {
	Conn   *Conn
	Runner *process.Runner
	Slots  int
	Grace  time.Duration // on drain: how long running tasks may go on before they are stopped
	Log    *slog.Logger  // may be nil
	Name   string

	mu       sync.Mutex
	running  map[string]map[int]context.CancelFunc // run -> slot -> cancel
	canceled map[string]bool
}

// Run serves tasks until ctx is done, then drains: it fetches nothing more, lets the
// running tasks finish for up to Grace, stops those still running (they are handed
// back to the broker, to run elsewhere), and returns.
func (w *Worker) Run(ctx context.Context) error {
	w.running = map[string]map[int]context.CancelFunc{}
	w.canceled = map[string]bool{}
	if w.Name == "" {
		host, _ := os.Hostname()
		w.Name = host + "/" + strconv.Itoa(os.Getpid())
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	watcher, err := w.Conn.Runs.WatchAll(watchCtx)
	if err != nil {
		return fmt.Errorf("watch runs: %w", err)
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for e := range watcher.Updates() {
			if e != nil && string(e.Value()) == StateCancelling {
				w.cancelRun(e.Key())
			}
		}
	}()

	// Tasks run in taskCtx, which outlives ctx by Grace: draining lets them finish.
	taskCtx, stopTasks := context.WithCancel(context.Background())
	defer stopTasks()
	drained := context.AfterFunc(ctx, func() {
		time.AfterFunc(w.Grace, stopTasks)
	})
	defer drained()

	var wg sync.WaitGroup
	for slot := 1; slot <= max(w.Slots, 1); slot++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				batch, err := w.Conn.Cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				for msg := range batch.Messages() {
					w.handle(ctx, taskCtx, slot, msg)
				}
			}
		}()
	}
	wg.Wait()
	_ = watcher.Stop()
	stopWatch()
	<-watched
	return nil
}

func (w *Worker) cancelRun(run string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.canceled[run] = true
	for _, cancel := range w.running[run] {
		cancel()
	}
}

// errRunCancelled is the cause of a task stopped because its run was cancelled.
var errRunCancelled = errors.New("run cancelled by its submitter")

func (w *Worker) handle(drainCtx, taskCtx context.Context, slot int, msg jetstream.Msg) {
	var tm taskMsg
	if err := json.Unmarshal(msg.Data(), &tm); err != nil {
		_ = msg.Term() // not a task: never deliver it again
		return
	}
	delivered := 1
	if md, err := msg.Metadata(); err == nil {
		delivered = int(md.NumDelivered)
	}
	task := tm.task()
	base := jobs.Result{ID: tm.ID, Index: tm.Index, Command: tm.Command}
	if w.runCancelled(tm.Run) {
		r := base
		r.Status, r.Error = jobs.Skipped, errRunCancelled.Error()
		w.finish(tm.Run, msg, resultMsg{Result: r, Worker: w.Name})
		return
	}

	ctx, cancel := context.WithCancelCause(taskCtx)
	defer cancel(nil)
	w.track(tm.Run, slot, func() { cancel(errRunCancelled) })
	defer w.untrack(tm.Run, slot)
	stopBeat := w.heartbeat(msg)
	defer stopBeat()

	if w.Log != nil {
		w.Log.Info("task started", "run", tm.Run, "id", tm.ID, "index", tm.Index, "slot", slot, "delivery", delivered)
	}
	var (
		a              jobs.Attempt
		st             jobs.Status
		stdout, stderr *process.Capture
		attempts       int
	)
	for attempt := 1; ; attempt++ {
		attempts = attempt
		stdout, stderr = process.NewCapture(true), process.NewCapture(true)
		actx := ctx
		var stop context.CancelFunc = func() {}
		if task.Timeout > 0 {
			actx, stop = context.WithTimeoutCause(ctx, task.Timeout, jobs.ErrTimeout)
		}
		a = w.Runner.Run(actx, &task, slot, delivered-1+attempt, stdout, stderr)
		st = jobs.StatusOf(actx, a)
		stop()
		if (st != jobs.Failed && st != jobs.TimedOut) || attempt > task.Retries || ctx.Err() != nil {
			break
		}
		delay := time.Duration(rand.Float64() * float64(pipeline.Backoff(task.RetryDelay, attempt)))
		stdout.Close()
		stderr.Close()
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
	defer stdout.Close()
	defer stderr.Close()
	if st == jobs.Cancelled && !errors.Is(context.Cause(ctx), errRunCancelled) && drainCtx.Err() != nil {
		// This worker is draining: hand the task back, to run elsewhere.
		_ = msg.Nak()
		return
	}
	r := base
	r.Status, r.Attempts, r.Slot = st, delivered-1+attempts, slot
	r.StartedAt, r.Duration, r.Leftovers = a.Start, jobs.Seconds(a.Duration), a.Leftovers
	if a.ExitCode >= 0 {
		code := a.ExitCode
		r.ExitCode = &code
	}
	if a.Signal != 0 {
		r.Signal = process.SignalName(a.Signal)
	}
	if a.Err != nil {
		r.Error = a.Err.Error()
	}
	r.StdoutTail, r.StdoutBytes = stdout.Tail(), stdout.Len()
	r.StderrTail, r.StderrBytes = stderr.Tail(), stderr.Len()
	w.finish(tm.Run, msg, resultMsg{Result: r, Worker: w.Name, Stdout: head(stdout), Stderr: head(stderr)})
}

// head returns up to OutputCap of a capture's output.
func head(c *process.Capture) string {
	var b limited
	_, _ = c.WriteTo(&b)
	return string(b.buf)
}

type limited struct{ buf []byte }

func (l *limited) Write(p []byte) (int, error) {
	if room := OutputCap - len(l.buf); room > 0 {
		l.buf = append(l.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

var _ io.Writer = (*limited)(nil)

// finish publishes the result, waits for the broker to store it, and only then acks
// the task: a lost or late ack can then do no harm, as results decide completion.
func (w *Worker) finish(run string, msg jetstream.Msg, res resultMsg) {
	data, err := json.Marshal(res)
	if err != nil {
		return
	}
	out := nats.NewMsg(resultSubject(run, res.Index))
	out.Data = data
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := fmt.Sprintf("%s/%d/%d", run, res.Index, res.Attempts)
	if _, err := w.Conn.JS.PublishMsg(ctx, out, jetstream.WithMsgID(id)); err != nil {
		if w.Log != nil {
			w.Log.Warn("result not published; the task will be delivered again", "run", run, "index", res.Index, "error", err)
		}
		return
	}
	_ = msg.DoubleAck(ctx)
	if w.Log != nil {
		w.Log.Info("task finished", "run", run, "id", res.ID, "status", res.Status, "attempts", res.Attempts)
	}
}

// heartbeat tells the broker every third of the ack wait that the task is still being
// worked on, so that a long task is not delivered again.
func (w *Worker) heartbeat(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(max(w.Conn.AckWait/3, 50*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (w *Worker) runCancelled(run string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.canceled[run] {
		return true
	}
	e, err := w.Conn.Runs.Get(context.Background(), run)
	return err == nil && string(e.Value()) == StateCancelling
}

func (w *Worker) track(run string, slot int, cancel context.CancelFunc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running[run] == nil {
		w.running[run] = map[int]context.CancelFunc{}
	}
	w.running[run][slot] = cancel
	if w.canceled[run] {
		cancel()
	}
}

func (w *Worker) untrack(run string, slot int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.running[run], slot)
	if len(w.running[run]) == 0 {
		delete(w.running, run)
	}
}
