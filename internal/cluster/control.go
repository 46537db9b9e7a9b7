package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorun/gorun/internal/jobs"
)

// The control plane of runs. Each run has a record in the RunsBucket, under its id:
// the submitter writes it when the run starts, refreshes it every heartbeatEvery
// with its counts and running tasks (a compare-and-set on the record's revision, so
// that it never overwrites a cancel), and writes it a last time when the run ends.
// Anyone may cancel a running run (CancelRun): its state becomes cancelled, its
// consumer and queued attempts are removed, and the workers, which watch the bucket,
// stop its executions; a live submitter, which watches its record, ends as on an
// interrupt. Workers also keep the bucket: a run whose record has not changed for its
// OrphanAfter is cancelled (one worker wins the compare-and-set), and a finished run's
// record is purged once its Retain has passed since its end.

// StateCancelled is the state of a run cancelled by CancelRun (or as an orphan).
const StateCancelled = "cancelled"

// MaxRetain is the longest a finished run's record is kept: the RunsBucket's age
// limit, counted from the record's last write, the run's end.
const MaxRetain = 7 * 24 * time.Hour

// DefaultOrphanAfter is how long a run's submitter may be silent before the run is
// cancelled.
const DefaultOrphanAfter = 10 * time.Minute

// MinOrphanAfter is the shortest OrphanAfter: several heartbeats must fit in it.
const MinOrphanAfter = 2 * time.Second

// heartbeatEvery is how often a submitter refreshes its record, at most: a quarter of
// the run's OrphanAfter when that is shorter.
const heartbeatEvery = 2 * time.Second

// keepEvery is how often a worker looks for orphaned and expired runs.
const keepEvery = time.Second

// ErrNoRun means that the broker knows no run of that id (never, or no longer).
var ErrNoRun = errors.New("no such run on the broker")

// RunRecord is a run's entry in the RunsBucket. State and Lease are what workers
// read to serve a run; the rest is for the control commands.
type RunRecord struct {
	State string        `json:"state"` // StateRunning, StateDone or StateCancelled
	Lease time.Duration `json:"lease"`

	Host        string         `json:"host,omitempty"` // the submitter's
	PID         int            `json:"pid,omitempty"`
	Started     time.Time      `json:"started,omitzero"`
	Heartbeat   time.Time      `json:"heartbeat,omitzero"` // the submitter's last refresh
	Ended       time.Time      `json:"ended,omitzero"`
	ExitCode    *int           `json:"exit_code,omitempty"` // the submitter's, once it ended
	Reason      string         `json:"reason,omitempty"`    // why it was cancelled
	Detach      bool           `json:"detach,omitempty"`
	Epoch       int            `json:"epoch,omitempty"`        // 0, then one more at each takeover by gorun attach
	OrphanAfter time.Duration  `json:"orphan_after,omitempty"` // 0: never cancelled as an orphan
	Retain      time.Duration  `json:"retain,omitempty"`       // 0: MaxRetain
	Total       int            `json:"total"`                  // tasks; -1: not known (a stream)
	Counts      map[string]int `json:"counts,omitempty"`       // finished tasks per status
	Running     []RunningTask  `json:"running,omitempty"`      // the longest running, at most maxListed
	RunningN    int            `json:"running_count"`          // all that run
	// On and Needs are the routes of the run's tasks (Routes): the attempts of the
	// tasks that require the labels On[N] and ask for Needs[N] go to
	// gorun.task.<run>.on<N>, which the workers with those labels and room for that
	// request serve.
	On    []map[string]string `json:"on,omitempty"`
	Needs []jobs.Resources    `json:"needs,omitempty"`
}

// maxListed bounds the running tasks a record lists, so that a heartbeat of a run
// with very many running tasks stays far below the server's payload limit (a record
// that could not be written would make its run look orphaned).
const maxListed = 1000

// RunningTask is an attempt that runs on a worker.
type RunningTask struct {
	ID      string    `json:"id"`
	Attempt int       `json:"attempt"`
	Worker  string    `json:"worker"`
	Since   time.Time `json:"since"`
}

// RunMeta is what a submitter says of its run beyond its state and lease.
type RunMeta struct {
	Total       int           // tasks in the run; -1: not known
	OrphanAfter time.Duration // 0: never cancelled as an orphan
	Retain      time.Duration // 0: MaxRetain
	Detach      bool
	On          []map[string]string // the label sets of the run's routes (Routes)
	Needs       []jobs.Resources    // the requests of the run's routes
}

// RunEntry is a run's record as the broker holds it.
type RunEntry struct {
	ID string
	RunRecord
	Revision uint64
	Written  time.Time // the broker's time of the record's last write
}

func decodeRecord(e jetstream.KeyValueEntry) (RunEntry, error) {
	r := RunEntry{ID: e.Key(), Revision: e.Revision(), Written: e.Created()}
	if err := json.Unmarshal(e.Value(), &r.RunRecord); err != nil {
		return r, fmt.Errorf("run %s: bad record: %w", e.Key(), err)
	}
	if r.Started.IsZero() { // a record of an older gorun: state and lease only
		r.Total = -1
	}
	return r, nil
}

// GetRun returns the record of run; an error wrapping ErrNoRun when there is none.
func (c *Conn) GetRun(ctx context.Context, run string) (RunEntry, error) {
	if !validRunID(run) {
		return RunEntry{}, fmt.Errorf("run %q: %w", run, ErrNoRun)
	}
	e, err := c.Runs.Get(ctx, run)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return RunEntry{}, fmt.Errorf("run %s: %w", run, ErrNoRun)
	}
	if err != nil {
		return RunEntry{}, fmt.Errorf("run %s: %w", run, err)
	}
	return decodeRecord(e)
}

// WatchRun calls f with run's record now and at each change, until f returns false,
// the record is removed, or ctx ends (then it returns ctx's error).
func (c *Conn) WatchRun(ctx context.Context, run string, f func(RunEntry) bool) error {
	if _, err := c.GetRun(ctx, run); err != nil {
		return err
	}
	w, err := c.Runs.Watch(ctx, run)
	if err != nil {
		return fmt.Errorf("run %s: watch it: %w", run, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return ctx.Err()
			case e == nil: // the current record was delivered
				continue
			case e.Operation() != jetstream.KeyValuePut:
				return fmt.Errorf("run %s: %w", run, ErrNoRun)
			}
			r, err := decodeRecord(e)
			if err != nil {
				return err
			}
			if !f(r) {
				return nil
			}
		}
	}
}

// validRunID reports whether id can be a key of the RunsBucket.
func validRunID(id string) bool {
	return id != "" && !strings.ContainsAny(id, ".*> \t") && !strings.HasPrefix(id, "$")
}

// ListRuns returns the records of the runs the broker knows, oldest first. A
// finished run whose retention has passed is left out, and purged.
func (c *Conn) ListRuns(ctx context.Context) ([]RunEntry, error) {
	keys, err := c.Runs.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	var runs []RunEntry
	for k := range keys.Keys() {
		r, err := c.GetRun(ctx, k)
		if errors.Is(err, ErrNoRun) {
			continue // gone meanwhile
		}
		if err != nil {
			return nil, err
		}
		if r.expired(time.Now()) {
			if c.Runs.Purge(ctx, r.ID, jetstream.LastRevision(r.Revision)) == nil {
				_ = c.purgeHistory(ctx, r.ID)
			}
			continue
		}
		runs = append(runs, r)
	}
	slices.SortFunc(runs, func(a, b RunEntry) int { return a.Started.Compare(b.Started) })
	return runs, nil
}

// expired reports whether a finished run's retention has passed at now.
func (r *RunEntry) expired(now time.Time) bool {
	if r.State == StateRunning || r.Retain <= 0 || r.Written.IsZero() {
		return false
	}
	return now.Sub(r.Written) > r.Retain
}

// CancelRun cancels a running run: its record's state becomes cancelled with reason
// (a compare-and-set: a submitter's heartbeat never undoes it), then its consumer and
// queued attempts are removed. Workers stop its running executions when they see the
// record change; a live submitter ends as on an interrupt. It returns the record as
// it left it. A run that is no longer running is left as it is, and returned with
// changed false.
func (c *Conn) CancelRun(ctx context.Context, run, reason string) (rec RunEntry, changed bool, err error) {
	for {
		rec, err = c.GetRun(ctx, run)
		if err != nil {
			return rec, false, err
		}
		if rec.State != StateRunning {
			return rec, false, nil
		}
		if rec, changed, err = c.cancelAt(ctx, rec, reason); err != nil || changed {
			return rec, changed, err
		}
	}
}

// cancelAt cancels the run of rec if its record is still at rec's revision; changed
// is false when it was not (someone wrote it meanwhile).
func (c *Conn) cancelAt(ctx context.Context, rec RunEntry, reason string) (RunEntry, bool, error) {
	rec.State, rec.Reason, rec.Running, rec.RunningN = StateCancelled, reason, nil, 0
	if rec.Ended.IsZero() {
		rec.Ended = time.Now()
	}
	data, _ := json.Marshal(rec.RunRecord)
	rev, err := c.Runs.Update(ctx, rec.ID, data, rec.Revision)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("run %s: cancel it: %w", rec.ID, err)
	}
	rec.Revision = rev
	err = c.DeleteConsumerOf(ctx, rec.ID)
	if perr := c.Tasks.Purge(ctx, jetstream.WithPurgeSubject(taskSubject(rec.ID))); perr != nil {
		err = errors.Join(err, fmt.Errorf("run %s: remove its queued attempts: %w", rec.ID, perr))
	}
	return rec, true, err
}

// DeleteConsumerOf removes the consumer of run's attempts, if it exists.
func (c *Conn) DeleteConsumerOf(ctx context.Context, run string) error {
	err := c.JS.DeleteConsumer(ctx, TasksStream, consumerName(run))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("run %s: remove its consumer: %w", run, err)
	}
	return nil
}

// Control is a submitter's side of its run's record: it writes the record, refreshes
// it every heartbeat with the counts and the running tasks, and watches it for a
// cancel from elsewhere. Open makes it; the Executor's Close writes the last record.
type Control struct {
	kv      jetstream.KeyValue
	run     string
	every   time.Duration
	running func() []RunningTask

	mu        sync.Mutex
	rec       RunRecord
	rev       uint64
	finished  bool
	takenOver bool // by gorun attach: the run is another's

	cancelled  chan struct{} // closed when the record says cancelled
	cancelOnce sync.Once

	stop   context.CancelFunc
	done   sync.WaitGroup
	closed sync.Once
}

// startControl writes the first record of run and starts its heartbeat and its watch.
func startControl(ctx context.Context, conn *Conn, run string, lease time.Duration, meta RunMeta, running func() []RunningTask) (*Control, error) {
	host, _ := os.Hostname()
	now := time.Now()
	rec := RunRecord{State: StateRunning, Lease: lease, Host: host, PID: os.Getpid(), Started: now, Heartbeat: now,
		Detach: meta.Detach, OrphanAfter: meta.OrphanAfter, Retain: meta.Retain, Total: meta.Total, Counts: map[string]int{}, On: meta.On, Needs: meta.Needs}
	data, _ := json.Marshal(rec)
	rev, err := conn.Runs.Put(ctx, run, data)
	if err != nil {
		return nil, fmt.Errorf("run %s: announce it: %w", run, err)
	}
	return runControl(conn, run, rec, rev, running)
}

// runControl starts the heartbeat and the watch of run's record, as written at rev.
func runControl(conn *Conn, run string, rec RunRecord, rev uint64, running func() []RunningTask) (*Control, error) {
	c := &Control{kv: conn.Runs, run: run, every: heartbeatEvery, running: running, cancelled: make(chan struct{}), rec: rec, rev: rev}
	if rec.OrphanAfter > 0 {
		c.every = min(c.every, rec.OrphanAfter/4)
	}
	bg, stop := context.WithCancel(context.Background())
	w, err := conn.Runs.Watch(bg, run, jetstream.UpdatesOnly())
	if err != nil {
		stop()
		return nil, fmt.Errorf("run %s: watch its record: %w", run, err)
	}
	c.stop = stop
	c.done.Add(2)
	go func() {
		defer c.done.Done()
		c.watch(w)
	}()
	go func() {
		defer c.done.Done()
		c.beat(bg)
	}()
	return c, nil
}

// Cancelled is closed when the run was cancelled from elsewhere (gorun cancel, or by
// a worker as an orphan); Reason says why.
func (c *Control) Cancelled() <-chan struct{} { return c.cancelled }

// Reason is why the run was cancelled.
func (c *Control) Reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.Reason
}

// Add counts a finished task.
func (c *Control) Add(r jobs.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rec.Counts[string(r.Status)]++
}

// TakenOver reports whether gorun attach took the run over from this submitter.
func (c *Control) TakenOver() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.takenOver
}

// SetExitCode records the submitter's exit code, written with the last record.
func (c *Control) SetExitCode(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rec.ExitCode = &code
}

func (c *Control) watch(w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	for e := range w.Updates() {
		if e == nil || e.Operation() != jetstream.KeyValuePut {
			continue
		}
		var rec RunRecord
		if json.Unmarshal(e.Value(), &rec) == nil && (rec.State == StateCancelled || c.supersededBy(rec)) {
			c.adopt(rec)
		}
	}
}

// supersededBy reports whether other is the record of a gorun attach that took the
// run over from this submitter.
func (c *Control) supersededBy(other RunRecord) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return other.Epoch > c.rec.Epoch
}

// adopt takes a cancel written by someone else, or a takeover: the run is then
// another's, and this Control never writes its record again.
func (c *Control) adopt(other RunRecord) {
	c.mu.Lock()
	if other.Epoch > c.rec.Epoch {
		c.rec.State, c.rec.Reason = StateCancelled, fmt.Sprintf("taken over by gorun attach (%s pid %d)", other.Host, other.PID)
		c.finished, c.takenOver = true, true
	} else {
		c.rec.State, c.rec.Reason = StateCancelled, other.Reason
	}
	c.mu.Unlock()
	c.cancelOnce.Do(func() { close(c.cancelled) })
}

func (c *Control) beat(ctx context.Context) {
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		wctx, cancel := context.WithTimeout(ctx, max(c.every, time.Second))
		_ = c.write(wctx, false)
		cancel()
	}
}

// write refreshes the record (the last time when final), by a compare-and-set on its
// revision: a record someone else changed is read again, and a cancel there is
// adopted before the write is tried again.
func (c *Control) write(ctx context.Context, final bool) error {
	for tries := 0; ; tries++ {
		c.mu.Lock()
		if c.finished {
			c.mu.Unlock()
			return nil
		}
		rec, rev := c.rec, c.rev
		rec.Counts = maps.Clone(c.rec.Counts)
		c.mu.Unlock()
		rec.Heartbeat = time.Now()
		if final {
			rec.Running, rec.RunningN = nil, 0
			if rec.State == StateRunning {
				rec.State = StateDone
			}
			rec.Ended = rec.Heartbeat
		} else {
			rec.Running = c.running()
			rec.RunningN = len(rec.Running)
			if len(rec.Running) > maxListed {
				slices.SortFunc(rec.Running, func(a, b RunningTask) int { return a.Since.Compare(b.Since) })
				rec.Running = rec.Running[:maxListed]
			}
		}
		data, _ := json.Marshal(rec)
		newRev, err := c.kv.Update(ctx, c.run, data, rev)
		if err == nil {
			c.mu.Lock()
			c.rev, c.finished = newRev, final
			c.mu.Unlock()
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) || tries >= 3 {
			return fmt.Errorf("run %s: write its record: %w", c.run, err)
		}
		e, gerr := c.kv.Get(ctx, c.run)
		if gerr != nil {
			return fmt.Errorf("run %s: read its record: %w", c.run, gerr)
		}
		var other RunRecord
		if json.Unmarshal(e.Value(), &other) == nil && (other.State == StateCancelled || c.supersededBy(other)) {
			c.adopt(other)
		}
		c.mu.Lock()
		c.rev = e.Revision()
		c.mu.Unlock()
	}
}

// close stops the heartbeat and the watch, and writes the last record: done (unless
// cancelled), with the end and the exit code.
func (c *Control) close(ctx context.Context) error {
	var err error
	c.closed.Do(func() {
		c.stop()
		c.done.Wait()
		err = c.write(ctx, true)
	})
	return err
}

// keeper is a worker's watch over the RunsBucket's records: it cancels a running
// run whose record has not changed for its OrphanAfter (by this worker's clock: no
// clocks are compared), and purges a finished run's record once its Retain has passed.
// Many workers may do the same at once: every change is a compare-and-set on the
// revision seen, and one wins. Safe for concurrent use.
type keeper struct {
	conn *Conn
	log  func(msg string, args ...any)

	mu   sync.Mutex
	runs map[string]*kept
}

type kept struct {
	rec  RunEntry
	seen time.Time // when this worker saw the revision first
}

func newKeeper(conn *Conn, log func(string, ...any)) *keeper {
	return &keeper{conn: conn, log: log, runs: map[string]*kept{}}
}

// observe takes an entry of the bucket's watch and reports whether it cancels its
// run: the worker then stops the run's executions.
func (k *keeper) observe(e jetstream.KeyValueEntry) (cancelled bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(k.runs, e.Key())
		return false
	}
	rec, err := decodeRecord(e)
	if err != nil {
		delete(k.runs, e.Key())
		return false
	}
	k.runs[e.Key()] = &kept{rec: rec, seen: time.Now()}
	return rec.State == StateCancelled
}

// due returns the runs to cancel as orphans and those to purge, as of now.
func (k *keeper) due(now time.Time) (orphans, expired []RunEntry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range k.runs {
		switch {
		case r.rec.State == StateRunning && !r.rec.Detach && r.rec.OrphanAfter > 0 && now.Sub(r.seen) > r.rec.OrphanAfter:
			orphans = append(orphans, r.rec)
		case r.rec.expired(now):
			expired = append(expired, r.rec)
		}
	}
	return orphans, expired
}

// keep looks for orphaned and expired runs every keepEvery until ctx ends.
func (k *keeper) keep(ctx context.Context) {
	tick := time.NewTicker(keepEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		orphans, expired := k.due(time.Now())
		for _, r := range orphans {
			reason := fmt.Sprintf("orphaned: no heartbeat from its submitter (%s pid %d) for %v", r.Host, r.PID, r.OrphanAfter)
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if _, changed, err := k.conn.cancelAt(actx, r, reason); changed {
				k.log("orphaned run cancelled", "run", r.ID, "reason", reason)
			} else if err != nil {
				k.log("orphaned run not cancelled", "run", r.ID, "error", err)
			}
			cancel()
		}
		for _, r := range expired {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if k.conn.Runs.Purge(actx, r.ID, jetstream.LastRevision(r.Revision)) == nil {
				_ = k.conn.purgeHistory(actx, r.ID)
			}
			cancel()
		}
	}
}

// stopRun stops this worker's executions of run's attempts.
func (b *stopBoard) stopRun(run string) {
	prefix := "gorun.att." + run + "."
	b.mu.Lock()
	defer b.mu.Unlock()
	for attempt, execs := range b.execs {
		if strings.HasPrefix(attempt, prefix) {
			for _, cancel := range execs {
				cancel()
			}
		}
	}
}
