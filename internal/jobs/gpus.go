package jobs

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// GPUPool hands out a machine's GPUs to the attempts that start: the attempts'
// scheduler counts them, so that the attempts running never ask for more than are
// free, and the pool names which. It is safe for concurrent use: attempts take and
// give back on their own goroutines.
type GPUPool struct {
	mu   sync.Mutex
	free []string // in the order of the capacity's list: the first free go first
	all  []string
}

// NewGPUPool returns the pool of the devices gpus, all free.
func NewGPUPool(gpus []string) *GPUPool {
	return &GPUPool{free: slices.Clone(gpus), all: gpus}
}

// Take returns n free GPUs, the first free first. Its caller admits an attempt only
// when n are free, and an attempt gives its GPUs back before its end reaches the
// scheduler, so there are always enough: fewer is a fault of gorun's, and panics.
func (p *GPUPool) Take(n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n > len(p.free) {
		panic(fmt.Sprintf("gpu pool: %d GPUs asked for, %d free", n, len(p.free)))
	}
	ids := slices.Clone(p.free[:n])
	p.free = p.free[n:]
	return ids
}

// Put gives GPUs back.
func (p *GPUPool) Put(ids []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, ids...)
	slices.SortFunc(p.free, func(a, b string) int { return slices.Index(p.all, a) - slices.Index(p.all, b) })
}

// WithGPUs returns the environment of an attempt that holds ids: CUDA_VISIBLE_DEVICES
// names them. (Not GORUN_GPUS too: a gorun inside the task would read it as its
// --gpus, where one device, 3, is a count.) env is not written to.
func WithGPUs(env []string, ids []string) []string {
	return append(slices.Clip(env), "CUDA_VISIBLE_DEVICES="+strings.Join(ids, ","))
}
