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

// Labels route attempts to workers. A task whose `on:` requires labels (gpu=a100)
// goes to a queue of its own, one per distinct set of labels of the run: the subject
// gorun.task.<run>.on<N>, with a durable consumer gorun-run-<run>-on<N>. The run's
// record lists the sets (RunRecord.On, N is the position), and a worker serves the
// queue of each set its own labels hold, beside the run's queue of tasks that
// require none. An attempt is so never delivered to a worker that may not run it:
// no delivery is spent on a refusal (MaxDeliver), and an attempt whose labels no
// live worker has waits in its queue until one comes.

// labelSubject is the queue of the run's attempts that require the label set at n.
func labelSubject(run string, n int) string { return taskSubject(run) + ".on" + strconv.Itoa(n) }

// labelConsumer is the consumer of labelSubject.
func labelConsumer(run string, n int) string { return consumerName(run) + "-on" + strconv.Itoa(n) }

// LabelSets returns the distinct label sets the tasks require, in the order first
// met; nil when none requires any.
func LabelSets(tasks []jobs.Task) []map[string]string {
	var sets []map[string]string
	seen := map[string]bool{}
	for i := range tasks {
		on := tasks[i].On
		if len(on) == 0 {
			continue
		}
		if k := jobs.FormatLabels(on); !seen[k] {
			seen[k] = true
			sets = append(sets, on)
		}
	}
	return sets
}

// setOf returns the position of on in sets, or -1 (no labels, or a set the run did
// not declare).
func setOf(sets []map[string]string, on map[string]string) int {
	if len(on) == 0 {
		return -1
	}
	for i, s := range sets {
		if maps.Equal(s, on) {
			return i
		}
	}
	return -1
}

// createLabelConsumers makes the consumer of each label set of the run, as the run's
// own consumer is made.
func createLabelConsumers(ctx context.Context, conn *Conn, run string, sets []map[string]string, cfg jetstream.ConsumerConfig) error {
	for n := range sets {
		cfg.Durable, cfg.FilterSubject = labelConsumer(run, n), labelSubject(run, n)
		if _, err := conn.JS.CreateOrUpdateConsumer(ctx, TasksStream, cfg); err != nil {
			return fmt.Errorf("run %s: create the consumer of labels %s: %w", run, jobs.FormatLabels(sets[n]), err)
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
