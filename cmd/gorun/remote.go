package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/gorun/gorun/internal/jobs"

	"github.com/gorun/gorun/internal/cluster"
)

// remote is a run's connection to a broker and the executor that runs its attempts
// on the broker's workers.
type remote struct {
	conn  *cluster.Conn
	exec  *cluster.Executor
	slots int // the slots of the workers live when the run started
	// capacity is what the run's tasks that ask for resources may hold at once: the
	// flags', else the live workers' summed; nil when no task asks for any.
	capacity *jobs.Capacity
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
	workers, err := conn.LiveWorkers(ctx)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("broker %s: %w", opts.Broker, err)
	}
	r := &remote{conn: conn}
	for _, w := range workers {
		r.slots += w.Slots
	}
	meta := cluster.RunMeta{Total: total, OrphanAfter: opts.OrphanAfter, Retain: opts.Retain, Detach: opts.Detach}
	if opts.fit.asks() {
		c := workersCapacity(opts, workers)
		if err := opts.fit.check(&c, false); err != nil { // labels: a worker may still come
			conn.Close()
			return nil, err
		}
		r.capacity = &c
		meta.On, meta.Needs = cluster.Routes(opts.fit.tasks)
		said := map[string]bool{}
		for n, on := range meta.On {
			var why string
			switch need := meta.Needs[n]; {
			case !slices.ContainsFunc(workers, func(w cluster.WorkerInfo) bool { return jobs.Missing(on, w.Labels) == "" }):
				why = "has the labels " + jobs.FormatLabels(on)
			case !slices.ContainsFunc(workers, func(w cluster.WorkerInfo) bool { return jobs.Missing(on, w.Labels) == "" && w.Holds(need) }):
				why = "has room for " + need.String()
				if len(on) > 0 {
					why = "with the labels " + jobs.FormatLabels(on) + " " + why
				}
			}
			if why != "" && !said[why] && !opts.Quiet {
				said[why] = true
				fmt.Fprintf(opts.IO.ErrOut, "gorun: no live worker %s: their tasks wait for one\n", why)
			}
		}
	}
	if r.exec, err = cluster.OpenRun(ctx, conn, runID, opts.AckWait, opts.Grace, meta); err != nil {
		conn.Close()
		return nil, fmt.Errorf("broker %s: %w", opts.Broker, err)
	}
	return r, nil
}

// workersCapacity is the capacity of a run with --broker: what --cpus, --memory and
// --gpus give, else the live workers' announcements summed. The GPUs are a count
// only: which devices a task uses is its worker's business (see the README).
func workersCapacity(opts *ExecOptions, workers []cluster.WorkerInfo) jobs.Capacity {
	var c jobs.Capacity
	gpus := 0
	for _, w := range workers {
		c.MilliCPU += w.MilliCPU
		c.Memory += w.Memory
		gpus += w.GPUs
	}
	if opts.CPUs != nil {
		c.MilliCPU = *opts.CPUs
	}
	if opts.Memory != nil {
		c.Memory = *opts.Memory
	}
	if opts.GPUs != nil {
		gpus = len(opts.GPUs)
	}
	c.GPUs = make([]string, gpus)
	for i := range c.GPUs {
		c.GPUs[i] = strconv.Itoa(i)
	}
	return c
}

// Close ends the run on the broker and closes the connection.
func (r *remote) Close() error {
	err := r.exec.Close()
	r.conn.Close()
	return err
}
