package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// Labels and resources route attempts to workers. A task whose `on:` requires labels
// (gpu=a100) or whose `resources` ask for something goes to a queue of its own, one
// per distinct pair of a label set and a request of the run: the subject
// gorun.task.<run>.on<N>, with a durable consumer gorun-run-<run>-on<N>. The run's
// record lists the pairs (RunRecord.On and RunRecord.Needs, N is the position), and a
// worker serves the queue of each pair whose labels its own hold and whose request
// its capacity holds, beside the run's queue of tasks that require and ask for
// nothing. An attempt is so never delivered to a worker that may not run it, nor to
// one too small ever to run it: no delivery is spent on a refusal (MaxDeliver), and
// an attempt that no live worker may run waits in its queue until one comes.

// labelSubject is the queue of the run's attempts of the route at n.
func labelSubject(run string, n int) string { return taskSubject(run) + ".on" + strconv.Itoa(n) }

// labelConsumer is the consumer of labelSubject.
func labelConsumer(run string, n int) string { return consumerName(run) + "-on" + strconv.Itoa(n) }

// Routes returns the distinct pairs of the label set the tasks require and the
// resources they ask for, in the order first met, as two lists of the same length;
// nil when no task requires or asks for anything.
func Routes(tasks []jobs.Task) (on []map[string]string, needs []jobs.Resources) {
	seen := map[string]bool{}
	for i := range tasks {
		t := &tasks[i]
		if len(t.On) == 0 && t.Resources.IsZero() {
			continue
		}
		if k := jobs.FormatLabels(t.On) + "|" + t.Resources.String(); !seen[k] {
			seen[k] = true
			on, needs = append(on, t.On), append(needs, t.Resources)
		}
	}
	return on, needs
}

// routeOf returns the position of the route of t's labels and request in on and
// needs, or -1 (it requires and asks for nothing, or the run did not declare it).
// needs may be shorter than on (a record of a run from before requests were routed):
// the missing ones ask for nothing.
func routeOf(on []map[string]string, needs []jobs.Resources, t *jobs.Task) int {
	if len(t.On) == 0 && t.Resources.IsZero() {
		return -1
	}
	for i, s := range on {
		if maps.Equal(s, t.On) && needAt(needs, i) == t.Resources {
			return i
		}
	}
	return -1
}

// needAt is the request of the route at n.
func needAt(needs []jobs.Resources, n int) jobs.Resources {
	if n < len(needs) {
		return needs[n]
	}
	return jobs.Resources{}
}

// createLabelConsumers makes the consumer of each route of the run (on and needs
// have the same length), as the run's own consumer is made.
func createLabelConsumers(ctx context.Context, conn *Conn, run string, sets []map[string]string, needs []jobs.Resources, cfg jetstream.ConsumerConfig) error {
	for n := range sets {
		cfg.Durable, cfg.FilterSubject = labelConsumer(run, n), labelSubject(run, n)
		if _, err := conn.JS.CreateOrUpdateConsumer(ctx, TasksStream, cfg); err != nil {
			return fmt.Errorf("run %s: create the consumer of labels %s, resources %s: %w", run, jobs.FormatLabels(sets[n]), needAt(needs, n), err)
		}
	}
	return nil
}

// WorkerInfo is what a worker announces of itself in the WorkersBucket, while it lives.
type WorkerInfo struct {
	Slots    int               `json:"slots"`
	MilliCPU int64             `json:"cpu_milli,omitempty"`
	Memory   uint64            `json:"memory,omitempty"`
	GPUs     int               `json:"gpus,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Holds reports whether the worker's capacity holds r: whether it may ever run an
// attempt that asks for r.
func (w WorkerInfo) Holds(r jobs.Resources) bool {
	return r.MilliCPU <= w.MilliCPU && r.Memory <= w.Memory && r.GPU <= w.GPUs
}

// decodeWorker reads a worker's announcement: a WorkerInfo, or the number of its
// slots alone, as earlier versions wrote it.
func decodeWorker(data []byte) (WorkerInfo, bool) {
	if n, err := strconv.Atoi(string(data)); err == nil {
		return WorkerInfo{Slots: n}, n > 0
	}
	var w WorkerInfo
	if json.Unmarshal(data, &w) != nil || w.Slots < 1 {
		return WorkerInfo{}, false
	}
	return w, true
}

// LiveWorkers returns the announcements of the workers that announced themselves
// within the last 15 seconds.
func (c *Conn) LiveWorkers(ctx context.Context) ([]WorkerInfo, error) {
	keys, err := c.Workers.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	var out []WorkerInfo
	for k := range keys.Keys() {
		e, err := c.Workers.Get(ctx, k)
		if err != nil {
			continue // gone meanwhile
		}
		if w, ok := decodeWorker(e.Value()); ok {
			out = append(out, w)
		}
	}
	return out, nil
}
