package main

import (
	"context"
	"fmt"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/pipeline"
)

// remote is a run's connection to a broker and the executor that runs its attempts
// on the broker's workers.
type remote struct {
	conn  *cluster.Conn
	exec  *cluster.Executor
	slots int // the slots of the workers live when the run started
}

// openRemote connects to opts.Broker and opens the run there, with the lease and
// grace of opts, and its record (total tasks, -1 when not known). Close it after the
// run.
func openRemote(ctx context.Context, opts *ExecOptions, runID string, total int) (*remote, error) {
	co, err := opts.Conn.options(opts.IO.ErrOut)
	if err != nil {
		return nil, err
	}
	conn, err := cluster.Dial(ctx, opts.Broker, co)
	if err != nil {
		return nil, err
	}
	slots, err := conn.LiveSlots(ctx)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("broker %s: %w", opts.Broker, err)
	}
	exec, err := cluster.OpenRun(ctx, conn, runID, opts.AckWait, opts.Grace,
		cluster.RunMeta{Total: total, OrphanAfter: opts.OrphanAfter, Retain: opts.Retain})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("broker %s: %w", opts.Broker, err)
	}
	return &remote{conn: conn, exec: exec, slots: slots}, nil
}

// runner returns the runner the run's scheduler hands its attempts to.
func (r *remote) runner() pipeline.Runner { return r.exec }

// Close ends the run on the broker and closes the connection.
func (r *remote) Close() error {
	err := r.exec.Close()
	r.conn.Close()
	return err
}
