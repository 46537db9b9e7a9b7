package cluster

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

// TestFitGateHoldsInOrder: on a worker of 2 CPUs and GPUs 0,1, an attempt that fits
// starts at once with its own GPU; one that does not fit what is free is held (the
// worker pulls nothing meanwhile) and starts once enough is released, before one held
// after it even when that one would fit sooner; a held attempt whose context ends is
// not taken and holds nothing; an attempt that asks for nothing never waits.
func TestFitGateHoldsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFitGate(jobs.Capacity{MilliCPU: 2000, Memory: 1 << 30, GPUs: []string{"0", "1"}})
		ctx := context.Background()
		one := jobs.Resources{MilliCPU: 1000, GPU: 1}
		two := jobs.Resources{MilliCPU: 2000}
		if !g.holds(two) || g.holds(jobs.Resources{MilliCPU: 2001}) || g.holds(jobs.Resources{GPU: 3}) {
			t.Fatal("holds: want 2 CPUs held, not 2.001 CPUs nor 3 GPUs")
		}
		a, waited, _, ok := g.acquire(ctx, nil, one)
		if !ok || waited != 0 || !slices.Equal(a, []string{"0"}) {
			t.Fatalf("first: %v %v %v, want GPU 0 at once", a, waited, ok)
		}
		if g.holding() != nil {
			t.Fatal("holding with nothing held")
		}
		var order []string
		done := make(chan struct{}, 2)
		go func() { // needs both CPUs: held until the first ends
			_, waited, why, ok := g.acquire(ctx, nil, two)
			if !ok || waited != 3*time.Second || why != "worker resources cpu" {
				t.Errorf("two: waited %v for %q, ok %v; want 3s (until the first released) for worker resources cpu", waited, why, ok)
			}
			order = append(order, "two")
			time.Sleep(time.Second)
			g.release(two, nil)
			done <- struct{}{}
		}()
		synctest.Wait()
		if g.holding() == nil {
			t.Fatal("an attempt is held, and holding says none: the worker would pull more")
		}
		go func() { // fits what is free now (1 CPU, GPU 1), but came after a held one
			ids, _, _, ok := g.acquire(ctx, nil, one)
			if !ok || !slices.Equal(ids, []string{"0"}) {
				t.Errorf("late one: %v %v, want GPU 0", ids, ok)
			}
			order = append(order, "one")
			g.release(one, ids)
			done <- struct{}{}
		}()
		synctest.Wait()
		stopped, cancel := context.WithCancel(ctx)
		go func() { // held, then its context ends: not taken
			if _, _, _, ok := g.acquire(stopped, nil, one); ok {
				t.Error("a held attempt whose context ended was taken")
			}
			done <- struct{}{}
		}()
		synctest.Wait()
		cancel()
		<-done
		if ids, waited, _, ok := g.acquire(ctx, nil, jobs.Resources{}); !ok || waited != 0 || ids != nil {
			t.Errorf("nothing asked: %v %v %v, want no wait", ids, waited, ok)
		}
		time.Sleep(3 * time.Second)
		g.release(one, a)
		<-done
		<-done
		if !slices.Equal(order, []string{"two", "one"}) {
			t.Errorf("started %v, want the held ones in the order they came", order)
		}
		if g.holding() != nil || g.used != (jobs.Resources{}) {
			t.Errorf("at the end: held %d, used %+v; want none", len(g.held), g.used)
		}
	})
}
