package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorun/gorun/internal/jobs"
)

func TestRunRecordLifecycle(t *testing.T) {
	conn := serveInProcess(t)
	ctx := context.Background()
	e, err := OpenRun(ctx, conn, "rec1", time.Second, time.Second, RunMeta{Total: 3, OrphanAfter: time.Minute, Retain: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r, err := conn.GetRun(ctx, "rec1")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != StateRunning || r.Lease != time.Second || r.Total != 3 || r.OrphanAfter != time.Minute || r.Retain != time.Hour ||
		r.Host == "" || r.PID == 0 || r.Started.IsZero() {
		t.Errorf("first record %+v", r.RunRecord)
	}
	e.Control().Add(jobs.Result{Status: jobs.Succeeded})
	e.Control().Add(jobs.Result{Status: jobs.Failed})
	e.Control().SetExitCode(1)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = conn.GetRun(ctx, "rec1")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != StateDone || r.ExitCode == nil || *r.ExitCode != 1 || r.Ended.IsZero() ||
		r.Counts["succeeded"] != 1 || r.Counts["failed"] != 1 || len(r.Running) != 0 {
		t.Errorf("last record %+v", r.RunRecord)
	}
	if _, changed, err := conn.CancelRun(ctx, "rec1", "late"); changed || err != nil {
		t.Errorf("cancel of a finished run: changed %v, error %v; want neither", changed, err)
	}
	if _, err := conn.GetRun(ctx, "nope"); !errors.Is(err, ErrNoRun) {
		t.Errorf("unknown run: got %v, want ErrNoRun", err)
	}
	if _, err := conn.GetRun(ctx, "a.b"); !errors.Is(err, ErrNoRun) {
		t.Errorf("a run id that cannot be a key: got %v, want ErrNoRun", err)
	}
}

// A cancel from elsewhere reaches the submitter, removes the run's consumer and
// queued attempts, and survives the submitter's heartbeats and last write.
func TestCancelRun(t *testing.T) {
	conn := serveInProcess(t)
	ctx := context.Background()
	e, err := OpenRun(ctx, conn, "can1", time.Second, time.Second, RunMeta{Total: -1, OrphanAfter: MinOrphanAfter})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.JS.Publish(ctx, taskSubject("can1"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	rec, changed, err := conn.CancelRun(ctx, "can1", "by a test")
	if err != nil || !changed || rec.State != StateCancelled {
		t.Fatalf("cancel: %+v changed %v error %v", rec, changed, err)
	}
	select {
	case <-e.Control().Cancelled():
	case <-time.After(10 * time.Second):
		t.Fatal("the submitter did not learn of the cancel")
	}
	if got := e.Control().Reason(); got != "by a test" {
		t.Errorf("reason %q", got)
	}
	if _, err := conn.JS.Consumer(ctx, TasksStream, consumerName("can1")); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("consumer after the cancel: %v, want it gone", err)
	}
	info, err := conn.Tasks.Info(ctx, jetstream.WithSubjectFilter(taskSubject("can1")))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[taskSubject("can1")]; n != 0 {
		t.Errorf("%d attempts still queued", n)
	}
	time.Sleep(2 * e.Control().every) // heartbeats meanwhile must not undo it
	e.Control().SetExitCode(3)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := conn.GetRun(ctx, "can1")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != StateCancelled || r.Reason != "by a test" || r.ExitCode == nil || *r.ExitCode != 3 {
		t.Errorf("last record %+v", r.RunRecord)
	}
	if _, changed, err := conn.CancelRun(ctx, "can1", "again"); changed || err != nil {
		t.Errorf("second cancel: changed %v, error %v", changed, err)
	}
}

// putRecord writes a record as a submitter would, and returns the entry a worker's
// watch would see.
func putRecord(t *testing.T, conn *Conn, run string, rec RunRecord) jetstream.KeyValueEntry {
	t.Helper()
	data, _ := json.Marshal(rec)
	if _, err := conn.Runs.Put(context.Background(), run, data); err != nil {
		t.Fatal(err)
	}
	e, err := conn.Runs.Get(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestKeeperDue(t *testing.T) {
	conn := serveInProcess(t)
	k := newKeeper(conn, func(string, ...any) {})
	now := time.Now()
	k.observe(putRecord(t, conn, "orphan", RunRecord{State: StateRunning, Started: now, OrphanAfter: 5 * time.Second}))
	k.observe(putRecord(t, conn, "detached", RunRecord{State: StateRunning, Started: now, OrphanAfter: 5 * time.Second, Detach: true}))
	k.observe(putRecord(t, conn, "never", RunRecord{State: StateRunning, Started: now}))
	k.observe(putRecord(t, conn, "old", RunRecord{State: StateDone, Started: now, Retain: time.Minute}))
	if k.observe(putRecord(t, conn, "gone", RunRecord{State: StateCancelled, Started: now})) != true {
		t.Error("a cancelled record does not say so")
	}
	names := func(rs []RunEntry) (out []string) {
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	if o, x := k.due(now.Add(4 * time.Second)); len(o)+len(x) != 0 {
		t.Errorf("too early: orphans %v, expired %v", names(o), names(x))
	}
	o, x := k.due(time.Now().Add(6 * time.Second))
	if len(o) != 1 || o[0].ID != "orphan" || len(x) != 0 {
		t.Errorf("after 6s: orphans %v, expired %v; want [orphan] and none", names(o), names(x))
	}
	// A new revision (a heartbeat) restarts the orphan's clock.
	k.observe(putRecord(t, conn, "orphan", RunRecord{State: StateRunning, Started: now, OrphanAfter: 5 * time.Second}))
	o, x = k.due(time.Now().Add(2 * time.Minute))
	if len(o) != 1 || len(x) != 1 || x[0].ID != "old" {
		t.Errorf("after 2m: orphans %v, expired %v; want [orphan] and [old]", names(o), names(x))
	}
	if o, _ := k.due(time.Now().Add(4 * time.Second)); len(o) != 0 {
		t.Errorf("a heartbeat did not restart the clock: %v", names(o))
	}
}

// A worker cancels a run whose submitter went silent for its OrphanAfter, and stops
// its executions; a compare-and-set makes sure a record that changed meanwhile is not
// cancelled.
func TestWorkerCancelsOrphan(t *testing.T) {
	conn := serveInProcess(t)
	ctx := context.Background()
	// A run whose submitter is gone: its record is never written again.
	putRecord(t, conn, "orph", RunRecord{State: StateRunning, Lease: time.Second, Started: time.Now(), OrphanAfter: 2 * time.Second})
	start := time.Now()
	startWorker(t, conn, 1)
	for {
		r, err := conn.GetRun(ctx, "orph")
		if err != nil {
			t.Fatal(err)
		}
		if r.State == StateCancelled {
			if waited := time.Since(start); waited < 2*time.Second {
				t.Errorf("cancelled after %v, before its orphan-after of 2s", waited)
			}
			if r.Reason == "" {
				t.Error("no reason given")
			}
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("the orphaned run was not cancelled within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A stale revision loses.
	stale := RunEntry{ID: "stale", RunRecord: RunRecord{State: StateRunning}}
	e := putRecord(t, conn, "stale", stale.RunRecord)
	stale.Revision = e.Revision()
	putRecord(t, conn, "stale", stale.RunRecord) // a heartbeat
	if _, changed, err := conn.cancelAt(ctx, stale, "stale"); changed || err != nil {
		t.Errorf("cancel at a stale revision: changed %v, error %v", changed, err)
	}
}

// A record lists the thousand longest running tasks, and counts them all.
func TestRecordListsAThousandRunning(t *testing.T) {
	conn := serveInProcess(t)
	ctx := context.Background()
	now := time.Now()
	running := func() []RunningTask {
		out := make([]RunningTask, 1500)
		for i := range out {
			out[i] = RunningTask{ID: "task-with-a-longish-name-" + strconv.Itoa(i), Attempt: 1, Worker: "worker-7/12345", Since: now.Add(-time.Duration(i) * time.Second)}
		}
		return out
	}
	c, err := startControl(ctx, conn, "big", time.Second, RunMeta{Total: -1}, running)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.close(ctx) }()
	if err := c.write(ctx, false); err != nil {
		t.Fatal(err)
	}
	r, err := conn.GetRun(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Running) != maxListed || r.RunningN != 1500 || r.Running[0].ID != "task-with-a-longish-name-1499" {
		t.Errorf("record lists %d of %d running, first %q", len(r.Running), r.RunningN, r.Running[0].ID)
	}
}

// A finished run's record is purged once its retention has passed since its end: by
// the workers, and by ListRuns, which never lists it.
func TestRetainPurges(t *testing.T) {
	conn := serveInProcess(t)
	ctx := context.Background()
	putRecord(t, conn, "kept", RunRecord{State: StateDone, Started: time.Now(), Retain: time.Hour})
	putRecord(t, conn, "listed", RunRecord{State: StateDone, Started: time.Now(), Retain: time.Second})
	waitGone := func(run string, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			runs, err := conn.ListRuns(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(runs, func(r RunEntry) bool { return r.ID == run }) {
				if _, err := conn.Runs.Get(ctx, run); !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
					t.Errorf("%s: not listed but still in the bucket: %v", run, err)
				}
				return time.Since(start)
			}
			if time.Since(start) > limit {
				t.Fatalf("%s still listed after %v", run, limit)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if took := waitGone("listed", 10*time.Second); took < 500*time.Millisecond {
		t.Errorf("purged after %v, before its retention of 1s", took)
	}
	startWorker(t, conn, 1)
	putRecord(t, conn, "byworker", RunRecord{State: StateCancelled, Started: time.Now(), Retain: time.Second})
	start := time.Now()
	for {
		if _, err := conn.Runs.Get(ctx, "byworker"); errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the worker did not purge an expired record within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := conn.GetRun(ctx, "kept"); err != nil {
		t.Errorf("a record within its retention: %v", err)
	}
}
