package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrClaimed means that a run's record changed while gorun attach tried to take the
// run over: its submitter came back, or another attach was quicker.
var ErrClaimed = errors.New("its record changed meanwhile: its submitter is back, or another attach took it over")

// TakeOver makes this process the submitter of the running run of rec, whose
// submitter has gone silent: a compare-and-set on rec's revision writes the record
// anew with this process as its submitter and one more epoch (one of many attaches
// wins; a submitter that comes back sees the epoch and stops), then the run's
// attempts are served as OpenRun serves them. The attempts of earlier epochs are
// refused when a worker asks to start them, and their ends do not count: the
// scheduler hands again every attempt that has no record in the run's history.
// The earlier submitters, should they come back, leave the messages of the later
// epochs' attempts unanswered.
// grace is the time from SIGTERM to SIGKILL that every attempt carries.
func TakeOver(ctx context.Context, conn *Conn, rec RunEntry, grace time.Duration) (*Executor, error) {
	if rec.State != StateRunning {
		return nil, fmt.Errorf("run %s is %s, not running", rec.ID, rec.State)
	}
	e, err := openExecutor(ctx, conn, rec.ID, rec.Lease, grace, rec.On, rec.Needs)
	if err != nil {
		return nil, err
	}
	e.epoch = rec.Epoch + 1
	host, _ := os.Hostname()
	r := rec.RunRecord
	r.Host, r.PID, r.Heartbeat, r.Epoch = host, os.Getpid(), time.Now(), e.epoch
	r.Counts, r.Running, r.RunningN = map[string]int{}, nil, 0
	data, _ := json.Marshal(r)
	rev, err := conn.Runs.Update(ctx, rec.ID, data, rec.Revision)
	if err == nil {
		e.ctl, err = runControl(conn, rec.ID, r, rev, e.running)
	} else if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		err = fmt.Errorf("run %s: %w", rec.ID, ErrClaimed)
	} else {
		err = fmt.Errorf("run %s: claim it: %w", rec.ID, err)
	}
	if err != nil {
		_ = e.sub.Unsubscribe()
		return nil, err
	}
	return e, nil
}

// epochOf is the epoch of an attempt's subject: 0 for gorun.att.<run>.<index>.<attempt>,
// N for the .eN that a submitter of epoch N appends.
func epochOf(subject string) int {
	last := subject[strings.LastIndexByte(subject, '.')+1:]
	if !strings.HasPrefix(last, "e") {
		return 0
	}
	n, err := strconv.Atoi(last[1:])
	if err != nil {
		return 0
	}
	return n
}
