package main

import (
	"context"
	"fmt"

	"github.com/gorun/gorun/internal/cluster"
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
// run. For gorun attach (opts.resume), it takes the run over on attach's connection.
func openRemote(ctx context.Context, opts *ExecOptions, runID string, total int) (*remote, error) {
	if rs := opts.resume; rs != nil {
		exec, err := cluster.TakeOver(ctx, rs.conn, rs.entry, opts.Grace)
		if err != nil {
			return nil, fmt.Errorf("broker %s: %w", opts.Broker, err)
		}
		return &remote{conn: rs.conn, exec: exec, slots: rs.plan.Workers}, nil
	}
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
		cluster.RunMeta{Total: total, OrphanAfter: opts.OrphanAfter, Retain: opts.Retain, Detach: opts.Detach})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("broker %s: %w", opts.Broker, err)
	}
	return &remote{conn: conn, exec: exec, slots: slots}, nil
}

// Close ends the run on the broker and closes the connection.
func (r *remote) Close() error {
	err := r.exec.Close()
	r.conn.Close()
	return err
}
