package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// A recorded run's history reads back whole: its plan, its attempts with their
// output, its results; a Recorder replays a recorded attempt without running it.
func TestHistoryRecordsAndReplays(t *testing.T) {
	conn := serveInProcess(t)
	startWorker(t, conn, 2)
	ctx := context.Background()
	e := openRun(t, conn, "hist", 5*time.Second)
	log := conn.RunLog("hist")
	plan := strings.Repeat("p", 3*maxChunk+5) // in several chunks
	if err := log.PutPlan(ctx, []byte(plan)); err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(e, log, nil)
	out, errOut := capture(), capture()
	a := rec.Run(ctx, shellTask(1, "echo one; echo two >&2; exit 4"), 1, 1, out, errOut)
	if a.ExitCode != 4 || contents(t, out) != "one\n" || contents(t, errOut) != "two\n" {
		t.Fatalf("attempt %+v, stdout %q, stderr %q", a, contents(t, out), contents(t, errOut))
	}
	if err := log.PutResult([]byte(`{"index":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := log.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	h, err := conn.ReadHistory(ctx, "hist")
	if err != nil {
		t.Fatal(err)
	}
	if string(h.Plan) != plan || len(h.Results) != 1 || string(h.Results[0]) != `{"index":1}` || len(h.Attempts) != 1 {
		t.Fatalf("history: plan %d bytes, results %q, attempts %+v", len(h.Plan), h.Results, h.Attempts)
	}
	// Replayed: the same attempt and output, and nothing runs (no executor).
	replay := NewRecorder(nil, log, h.Attempts)
	out, errOut = capture(), capture()
	b := replay.Run(ctx, shellTask(1, "exit 99"), 1, 1, out, errOut)
	if b.ExitCode != 4 || b.Worker != a.Worker || !b.Start.Equal(a.Start) || contents(t, out) != "one\n" || contents(t, errOut) != "two\n" {
		t.Errorf("replayed %+v, stdout %q, stderr %q; want %+v", b, contents(t, out), contents(t, errOut), a)
	}
	if c := replay.Run(ctx, shellTask(2, "exit 0"), 1, 1, capture(), capture()); !c.Stopped {
		t.Errorf("an attempt not recorded, replayed only: %+v, want stopped", c)
	}
	if err := conn.purgeHistory(ctx, "hist"); err != nil {
		t.Fatal(err)
	}
	if h, err := conn.ReadHistory(ctx, "hist"); err != nil || h.Plan != nil || len(h.Attempts) != 0 {
		t.Errorf("after the purge: %+v, %v", h, err)
	}
}

// A takeover wins once: the old submitter learns it, stops writing the record and
// leaves the run's consumer alone; the new one's attempts run on the workers.
func TestTakeOver(t *testing.T) {
	conn := serveInProcess(t)
	startWorker(t, conn, 1)
	ctx := context.Background()
	old, err := OpenRun(ctx, conn, "taken", 5*time.Second, time.Second, RunMeta{Total: 2})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := conn.GetRun(ctx, "taken")
	if err != nil {
		t.Fatal(err)
	}
	e, err := TakeOver(ctx, conn, rec, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TakeOver(ctx, conn, rec, time.Second); !errors.Is(err, ErrClaimed) {
		t.Errorf("a second takeover from the same record: %v, want ErrClaimed", err)
	}
	select {
	case <-old.Control().Cancelled():
	case <-time.After(10 * time.Second):
		t.Fatal("the old submitter did not learn of the takeover")
	}
	if !old.Control().TakenOver() || !strings.Contains(old.Control().Reason(), "taken over") {
		t.Errorf("old submitter: taken over %v, reason %q", old.Control().TakenOver(), old.Control().Reason())
	}
	// The old submitter, still listening, leaves the new one's attempts alone (were a
	// start refused by it, the attempt would never run: stopped after 30s).
	for i := 1; i <= 5; i++ {
		out := capture()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		a := e.Run(rctx, shellTask(i, "echo again"), 1, 1, out, capture())
		cancel()
		if a.ExitCode != 0 || contents(t, out) != "again\n" {
			t.Fatalf("attempt %d after the takeover, beside the old submitter: %+v, stdout %q", i, a, contents(t, out))
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	now, err := conn.GetRun(ctx, "taken")
	if err != nil {
		t.Fatal(err)
	}
	if now.State != StateRunning || now.Epoch != 1 {
		t.Errorf("record after the old submitter closed: %+v", now.RunRecord)
	}
	out := capture()
	if a := e.Run(ctx, shellTask(6, "echo again"), 1, 1, out, capture()); a.ExitCode != 0 || contents(t, out) != "again\n" {
		t.Errorf("attempt after the takeover: %+v, stdout %q", a, contents(t, out))
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if now, _ := conn.GetRun(ctx, "taken"); now.State != StateDone {
		t.Errorf("record after the run: %+v", now.RunRecord)
	}
}

func TestEpochOf(t *testing.T) {
	for subject, want := range map[string]int{
		"gorun.att.r.3.1": 0, "gorun.att.r.3.1.e1": 1, "gorun.att.r.3.12.e12": 12, "gorun.att.r.3.1.ex": 0,
	} {
		if got := epochOf(subject); got != want {
			t.Errorf("epochOf(%q) = %d, want %d", subject, got, want)
		}
	}
}
