package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

// ResultsStream keeps what each run did, so that `gorun attach` can replay it once
// its submitter is gone. Per run, under gorun.res.<run>:
//
//   - .plan: what the run is (its submitter's opaque description: the input and the
//     settings), in chunks of at most maxChunk, in order;
//   - .out: each chunk of output of an attempt's counting execution, as the submitter
//     wrote it (hdrStream: 0 stdout, 1 stderr);
//   - .attempt: each finished attempt (an AttemptRecord, naming its output chunks by
//     their sequence in the stream);
//   - .result: each finished task, as its journal line.
//
// The stream keeps its messages MaxRetain; a run's are purged with its record.
const ResultsStream = "GORUN_RESULTS"

const hdrStream = "Gorun-Stream"

func resultsConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: ResultsStream, Subjects: []string{"gorun.res.>"}, Storage: jetstream.FileStorage,
		MaxAge: MaxRetain, Replicas: replicas}
}

func checkResults(cfg jetstream.StreamConfig) error {
	for _, s := range cfg.Subjects {
		if s == "gorun.res.>" {
			return nil
		}
	}
	return fmt.Errorf("subjects %v lack gorun.res.>: %w", cfg.Subjects, ErrIncompatible)
}

func historySubject(run, kind string) string { return "gorun.res." + run + "." + kind }

// purgeHistory removes what the ResultsStream holds of run.
func (c *Conn) purgeHistory(ctx context.Context, run string) error {
	if c.Results == nil {
		return nil
	}
	return c.Results.Purge(ctx, jetstream.WithPurgeSubject("gorun.res."+run+".>"))
}

// AttemptRecord is a finished attempt as the ResultsStream keeps it.
type AttemptRecord struct {
	Index      int           `json:"index"`
	Attempt    int           `json:"attempt"` // the number of its first execution
	Start      time.Time     `json:"start"`
	Duration   time.Duration `json:"duration"`
	ExitCode   int           `json:"exit_code"`
	Signal     int           `json:"signal,omitempty"`
	Err        string        `json:"error,omitempty"`
	Stopped    bool          `json:"stopped,omitempty"`
	TimedOut   bool          `json:"timed_out,omitempty"`
	Leftovers  int           `json:"leftovers,omitempty"`
	Executions int           `json:"executions"`
	Duplicates int           `json:"duplicates,omitempty"`
	Worker     string        `json:"worker,omitempty"`
	Host       string        `json:"host,omitempty"`
	Out        []OutRef      `json:"out,omitempty"` // its output, in order
}

// OutRef is a chunk of an attempt's output: its sequence in the ResultsStream.
type OutRef struct {
	Seq    uint64 `json:"seq"`
	Stream int    `json:"stream"` // 0: stdout, 1: stderr
}

func recordOf(index, attempt int, a *jobs.Attempt, out []OutRef) AttemptRecord {
	r := AttemptRecord{Index: index, Attempt: attempt, Start: a.Start, Duration: a.Duration, ExitCode: a.ExitCode, Signal: int(a.Signal),
		Stopped: a.Stopped, TimedOut: a.TimedOut, Leftovers: a.Leftovers, Executions: a.Executions, Duplicates: a.Duplicates,
		Worker: a.Worker, Host: a.Host, Out: out}
	if a.Err != nil {
		r.Err = a.Err.Error()
	}
	return r
}

// JobAttempt is the attempt as the scheduler had it.
func (r *AttemptRecord) JobAttempt() jobs.Attempt {
	a := jobs.Attempt{Start: r.Start, Duration: r.Duration, ExitCode: r.ExitCode, Signal: syscall.Signal(r.Signal), Stopped: r.Stopped,
		TimedOut: r.TimedOut, Leftovers: r.Leftovers, Executions: r.Executions, Duplicates: r.Duplicates, Worker: r.Worker, Host: r.Host}
	if r.Err != "" {
		a.Err = errors.New(r.Err)
	}
	return a
}

// AttemptKey names an attempt of a run: its task's index and its first execution.
type AttemptKey struct{ Index, Attempt int }

// History is what the ResultsStream holds of a run: its plan, its finished attempts
// and its finished tasks' journal lines, in the order they were written. Outputs
// stay on the broker until replayed (see RunLog.Output).
type History struct {
	Plan     []byte
	Attempts map[AttemptKey]AttemptRecord
	Results  [][]byte
}

// ReadHistory reads what the ResultsStream holds of run, through an ordered consumer
// that skips the outputs.
func (c *Conn) ReadHistory(ctx context.Context, run string) (*History, error) {
	h := &History{Attempts: map[AttemptKey]AttemptRecord{}}
	cons, err := c.JS.OrderedConsumer(ctx, ResultsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{historySubject(run, "plan"), historySubject(run, "attempt"), historySubject(run, "result")},
	})
	if err != nil {
		return nil, fmt.Errorf("run %s: read its history: %w", run, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("run %s: read its history: %w", run, err)
	}
	for pending := info.NumPending; pending > 0; {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("run %s: read its history: %w", run, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("run %s: read its history: %w", run, err)
		}
		pending = md.NumPending
		switch m.Subject() {
		case historySubject(run, "plan"):
			h.Plan = append(h.Plan, m.Data()...)
		case historySubject(run, "attempt"):
			var r AttemptRecord
			if err := json.Unmarshal(m.Data(), &r); err != nil {
				return nil, fmt.Errorf("run %s: bad attempt record %d: %w", run, md.Sequence.Stream, err)
			}
			h.Attempts[AttemptKey{r.Index, r.Attempt}] = r
		case historySubject(run, "result"):
			h.Results = append(h.Results, m.Data())
		}
	}
	return h, nil
}

// RunLog writes a run's history into the ResultsStream. Safe for concurrent use.
type RunLog struct {
	conn *Conn
	run  string
}

// RunLog returns the writer of run's history.
func (c *Conn) RunLog(run string) *RunLog { return &RunLog{conn: c, run: run} }

func (l *RunLog) put(ctx context.Context, m *nats.Msg) (uint64, error) {
	ack, err := l.conn.JS.PublishMsg(ctx, m)
	if err != nil {
		return 0, fmt.Errorf("run %s: record %s: %w", l.run, m.Subject, err)
	}
	return ack.Sequence, nil
}

// PutPlan records the run's plan, in chunks.
func (l *RunLog) PutPlan(ctx context.Context, plan []byte) error {
	size := int(min(int64(maxChunk), l.conn.NC.MaxPayload()-chunkHeadroom))
	for len(plan) > 0 {
		n := min(size, len(plan))
		m := nats.NewMsg(historySubject(l.run, "plan"))
		m.Data = plan[:n]
		if _, err := l.put(ctx, m); err != nil {
			return err
		}
		plan = plan[n:]
	}
	return nil
}

// PutResult records a finished task's journal line. It does not wait for the
// broker's confirmation: Flush does.
func (l *RunLog) PutResult(line []byte) error {
	m := nats.NewMsg(historySubject(l.run, "result"))
	m.Data = line
	if _, err := l.conn.JS.PublishMsgAsync(m); err != nil {
		return fmt.Errorf("run %s: record a result: %w", l.run, err)
	}
	return nil
}

// Flush waits until the broker has confirmed every result put and every attempt a
// Recorder recorded, or ctx ends.
func (l *RunLog) Flush(ctx context.Context) error {
	select {
	case <-l.conn.JS.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("run %s: record its results: %w", l.run, ctx.Err())
	}
}

// Output returns the chunk of output at seq.
func (l *RunLog) Output(ctx context.Context, seq uint64) ([]byte, error) {
	m, err := l.conn.Results.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("run %s: read output %d: %w", l.run, seq, err)
	}
	return m.Data, nil
}

// Recorder runs attempts on an Executor and records each in the run's history: its
// output as it comes, then its end. An attempt the history already holds (a run
// taken over) does not run again: its output is written to the captures from the
// history and its record returned. Its Run has the method set of the pipeline's
// Runner.
type Recorder struct {
	exec *Executor // nil: replay only; an attempt not recorded ends stopped
	log  *RunLog
	done map[AttemptKey]AttemptRecord
}

// NewRecorder records the attempts exec runs into log; done holds those recorded
// already. exec nil replays only.
func NewRecorder(exec *Executor, log *RunLog, done map[AttemptKey]AttemptRecord) *Recorder {
	return &Recorder{exec: exec, log: log, done: done}
}

// Run runs or replays one attempt (see Executor.Run).
func (r *Recorder) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	if rec, ok := r.done[AttemptKey{t.Index, attempt}]; ok {
		for _, ref := range rec.Out {
			data, err := r.log.Output(ctx, ref.Seq)
			if err != nil {
				data = fmt.Appendf(nil, "gorun: %v\n", err)
			}
			if ref.Stream == 0 {
				_, _ = stdout.Write(data)
			} else {
				_, _ = stderr.Write(data)
			}
		}
		return rec.JobAttempt()
	}
	if r.exec == nil {
		return jobs.Attempt{Start: time.Now(), ExitCode: -1, Stopped: true}
	}
	w := &outRecorder{log: r.log, index: t.Index, attempt: attempt}
	a := r.exec.Run(ctx, t, slot, attempt,
		process.NewForwardingCapture(w.stream(0, stdout)), process.NewForwardingCapture(w.stream(1, stderr)))
	if r.exec.ctl != nil && r.exec.ctl.TakenOver() {
		return a // the run is another's now: its history is theirs to write
	}
	rec := recordOf(t.Index, attempt, &a, w.chunks())
	data, _ := json.Marshal(rec)
	m := nats.NewMsg(historySubject(r.log.run, "attempt"))
	m.Data = data
	_, _ = r.log.conn.JS.PublishMsgAsync(m) // confirmed by Flush; not recorded: an attach runs it again
	return a
}

// outRecorder records an attempt's output chunks as they are written.
type outRecorder struct {
	log            *RunLog
	index, attempt int

	mu      sync.Mutex
	out     []OutRef // confirmed
	pending []pendingChunk
}

type pendingChunk struct {
	ack    jetstream.PubAckFuture
	stream int
}

// maxPendingChunks bounds the chunks of one attempt that wait for the broker's
// confirmation, and so the memory they hold: the next Write waits for the oldest.
const maxPendingChunks = 8

// confirm waits for the confirmations of the pending chunks until at most keep are
// left; a chunk the broker did not confirm within a few seconds is left out.
// o.mu is held.
func (o *outRecorder) confirm(keep int) {
	deadline := time.After(10 * time.Second)
	for len(o.pending) > keep {
		p := o.pending[0]
		o.pending = o.pending[1:]
		select {
		case ack := <-p.ack.Ok():
			o.out = append(o.out, OutRef{Seq: ack.Sequence, Stream: p.stream})
		case <-p.ack.Err():
		case <-deadline:
		}
	}
}

// chunks returns the chunks the broker confirmed, in order.
func (o *outRecorder) chunks() []OutRef {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.confirm(0)
	return o.out
}

type streamWriter struct {
	o      *outRecorder
	stream int
	to     *process.Capture
}

func (o *outRecorder) stream(n int, to *process.Capture) *streamWriter {
	return &streamWriter{o: o, stream: n, to: to}
}

// Write writes p to the pipeline's capture, then records it, waiting for the
// broker's confirmation only when maxPendingChunks wait for it already: the output
// of an attempt is written by one goroutine, in order, and the worker's next chunk
// waits for this Write.
func (s *streamWriter) Write(p []byte) (int, error) {
	_, _ = s.to.Write(p)
	m := nats.NewMsg(historySubject(s.o.log.run, "out"))
	m.Header.Set(hdrStream, strconv.Itoa(s.stream))
	m.Data = append([]byte(nil), p...)
	if f, err := s.o.log.conn.JS.PublishMsgAsync(m); err == nil {
		s.o.mu.Lock()
		s.o.pending = append(s.o.pending, pendingChunk{ack: f, stream: s.stream})
		s.o.confirm(maxPendingChunks)
		s.o.mu.Unlock()
	}
	return len(p), nil
}
