package cluster

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

// fitGate keeps a worker within the capacity it announces: an attempt whose task asks
// for resources starts only when its request fits in what the worker's running
// attempts leave, and is handed GPUs of the worker's own list. An attempt that fits
// the capacity but not what is free now is held: its lease is kept, it is not
// started, and the worker pulls no attempt while one is held (holding), so that the
// held attempts start first, in the order they came, as soon as running attempts
// free enough. An attempt that asks for nothing never waits. Safe for concurrent use.
type fitGate struct {
	capacity jobs.Capacity
	gpus     *jobs.GPUPool

	mu      sync.Mutex
	used    jobs.Resources
	held    []*int        // the held attempts, in the order they came
	changed chan struct{} // closed and replaced at each change of used or held
}

func newFitGate(c jobs.Capacity) *fitGate {
	return &fitGate{capacity: c, gpus: jobs.NewGPUPool(c.GPUs), changed: make(chan struct{})}
}

// holds reports whether r fits in the whole capacity: whether the worker may ever run
// it.
func (g *fitGate) holds(r jobs.Resources) bool {
	return r.MilliCPU <= g.capacity.MilliCPU && r.Memory <= g.capacity.Memory && r.GPU <= len(g.capacity.GPUs)
}

// shortLocked returns the first resource of r that what is free cannot give: "cpu",
// "memory", "gpu"; "" when r fits.
func (g *fitGate) shortLocked(r jobs.Resources) string {
	switch {
	case r.MilliCPU > 0 && g.used.MilliCPU+r.MilliCPU > g.capacity.MilliCPU:
		return "cpu"
	case r.Memory > 0 && g.used.Memory+r.Memory > g.capacity.Memory:
		return "memory"
	case r.GPU > 0 && g.used.GPU+r.GPU > len(g.capacity.GPUs):
		return "gpu"
	}
	return ""
}

func (g *fitGate) fitsLocked(r jobs.Resources) bool { return g.shortLocked(r) == "" }

func (g *fitGate) changeLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// acquire takes r for an attempt about to start, waiting (held) while it does not
// fit in what is free or an attempt held before it waits, until ctx or gone ends. It
// returns the GPUs the attempt is handed, how long it was held and why ("worker
// resources cpu": what was short on the worker when it came; "worker resources":
// only attempts held before it);
// ok false: it was not taken (ctx or gone ended). The caller gives r and the GPUs
// back with release. r must fit the capacity (holds).
func (g *fitGate) acquire(ctx context.Context, gone <-chan struct{}, r jobs.Resources) (gpus []string, waited time.Duration, why string, ok bool) {
	if r.IsZero() {
		return nil, 0, "", true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	short := g.shortLocked(r)
	if len(g.held) == 0 && short == "" {
		return g.takeLocked(r), 0, "", true
	}
	why = strings.TrimSpace("worker resources " + short)
	since := time.Now()
	me := new(int)
	g.held = append(g.held, me)
	g.changeLocked()
	for g.held[0] != me || !g.fitsLocked(r) {
		changed := g.changed
		g.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-gone:
		case <-changed:
		}
		g.mu.Lock()
		if ctx.Err() != nil || isClosed(gone) {
			for i, h := range g.held {
				if h == me {
					g.held = append(g.held[:i:i], g.held[i+1:]...)
					break
				}
			}
			g.changeLocked()
			return nil, time.Since(since), why, false
		}
	}
	g.held = g.held[1:]
	gpus = g.takeLocked(r)
	g.changeLocked()
	return gpus, time.Since(since), why, true
}

func (g *fitGate) takeLocked(r jobs.Resources) []string {
	g.used.MilliCPU += r.MilliCPU
	g.used.Memory += r.Memory
	g.used.GPU += r.GPU
	if r.GPU > 0 {
		return g.gpus.Take(r.GPU)
	}
	return nil
}

// release gives back what acquire took.
func (g *fitGate) release(r jobs.Resources, gpus []string) {
	if r.IsZero() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.used.MilliCPU -= r.MilliCPU
	g.used.Memory -= r.Memory
	g.used.GPU -= r.GPU
	if len(gpus) > 0 {
		g.gpus.Put(gpus)
	}
	g.changeLocked()
}

// holding returns nil when no attempt is held, else a channel closed at the next
// change: a slot pulls no attempt until it is nil.
func (g *fitGate) holding() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.held) == 0 {
		return nil
	}
	return g.changed
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
