package pipeline

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

// holder is a fake runner that holds its task's resources for the task's estimate (1s
// without one), and checks as each attempt starts that the attempts running hold no
// more than the capacity, and that no two of them hold the same GPU. A task whose id
// starts with "flaky" fails its first attempt.
type holder struct {
	capacity jobs.Capacity
	mu       sync.Mutex
	used     jobs.Resources
	most     jobs.Resources
	gpus     map[string]string // GPU -> the task holding it
	starts   map[string]time.Time
	tries    map[string]int
	errs     []string
}

func (h *holder) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	var ids []string
	for _, kv := range t.Env {
		if v, ok := strings.CutPrefix(kv, "CUDA_VISIBLE_DEVICES="); ok {
			ids = strings.Split(v, ",")
		}
	}
	r := t.Resources
	h.mu.Lock()
	if h.gpus == nil {
		h.gpus, h.starts, h.tries = map[string]string{}, map[string]time.Time{}, map[string]int{}
	}
	h.used.MilliCPU += r.MilliCPU
	h.used.Memory += r.Memory
	h.used.GPU += r.GPU
	h.most.MilliCPU, h.most.Memory, h.most.GPU = max(h.most.MilliCPU, h.used.MilliCPU), max(h.most.Memory, h.used.Memory), max(h.most.GPU, h.used.GPU)
	if h.used.MilliCPU > h.capacity.MilliCPU || h.used.Memory > h.capacity.Memory || h.used.GPU > len(h.capacity.GPUs) {
		h.errs = append(h.errs, fmt.Sprintf("%s started with %s held, capacity %s", t.ID, h.used, h.capacity.Describe("cpu")))
	}
	if len(ids) != r.GPU && !(r.GPU == 0 && ids == nil) {
		h.errs = append(h.errs, fmt.Sprintf("%s asks for %d GPUs, got %q", t.ID, r.GPU, ids))
	}
	for _, id := range ids {
		if other, held := h.gpus[id]; held {
			h.errs = append(h.errs, fmt.Sprintf("%s got GPU %s, which %s holds", t.ID, id, other))
		}
		if !slices.Contains(h.capacity.GPUs, id) {
			h.errs = append(h.errs, fmt.Sprintf("%s got GPU %s, not one of %q", t.ID, id, h.capacity.GPUs))
		}
		h.gpus[id] = t.ID
	}
	if _, ok := h.starts[t.ID]; !ok {
		h.starts[t.ID] = time.Now()
	}
	h.tries[t.ID]++
	fail := strings.HasPrefix(t.ID, "flaky") && h.tries[t.ID] == 1
	h.mu.Unlock()

	time.Sleep(cmpOr(t.Estimate, time.Second))

	h.mu.Lock()
	h.used.MilliCPU -= r.MilliCPU
	h.used.Memory -= r.Memory
	h.used.GPU -= r.GPU
	for _, id := range ids {
		delete(h.gpus, id)
	}
	h.mu.Unlock()
	if fail {
		return jobs.Attempt{Start: time.Now(), ExitCode: 1}
	}
	return jobs.Attempt{Start: time.Now(), ExitCode: 0}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// runHolder runs the task file text with workers and capacity c on a holder, and
// returns it with the results by id.
func runHolder(t *testing.T, text string, workers int, c jobs.Capacity) (*holder, map[string]jobs.Result) {
	t.Helper()
	f, err := input.Parse("r.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	tasks := f.Tasks(jobs.Settings{})
	if err := f.CheckCapacity(tasks, &c, true); err != nil {
		t.Fatal(err)
	}
	h := &holder{capacity: c}
	results := map[string]jobs.Result{}
	opts := Options{Workers: workers, Capacity: &c, GPUEnv: true, Runner: h, Output: None, Stdout: io.Discard, Stderr: io.Discard,
		Jitter: func() float64 { return 0 }}
	if err := Run(context.Background(), input.NewSliceSource(tasks), opts, func(r jobs.Result) { results[r.ID] = r }); err != nil {
		t.Fatal(err)
	}
	for _, e := range h.errs {
		t.Error(e)
	}
	for id, r := range results {
		if r.Status != jobs.Succeeded {
			t.Errorf("%s: %s, want succeeded", id, r.Status)
		}
	}
	if len(h.gpus) != 0 || h.used != (jobs.Resources{}) {
		t.Errorf("after the run, %v still held and GPUs %v, want nothing", h.used, h.gpus)
	}
	return h, results
}

// TestResourcesNeverOversubscribed: a mix of tasks asking for CPUs, memory and GPUs,
// some failing once and retried, never hold more than the capacity at once; each
// attempt gets as many GPUs as it asks for, none held by another, and the run packs
// them (it uses the whole capacity at some point).
func TestResourcesNeverOversubscribed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		text := "defaults: {retries: 1, retry_delay: 10ms}\ntasks:\n"
		for i := range 40 {
			id := fmt.Sprintf("t%d", i)
			if i%7 == 3 {
				id = fmt.Sprintf("flaky%d", i)
			}
			cpu := []string{"1", "0.5", "2", "1.5"}[i%4]
			mem := []string{"1GiB", "512MiB", "3GiB"}[i%3]
			gpu := []int{0, 1, 0, 2, 0}[i%5]
			est := []string{"700ms", "1s", "1300ms", "400ms"}[i%4]
			text += fmt.Sprintf("  - {id: %s, run: x, estimate: %s, resources: {cpu: %s, memory: %s, gpu: %d}}\n", id, est, cpu, mem, gpu)
		}
		c := jobs.Capacity{MilliCPU: 4000, Memory: 6 << 30, GPUs: []string{"0", "1", "2"}}
		h, results := runHolder(t, text, 16, c)
		if len(results) != 40 {
			t.Errorf("%d results, want 40", len(results))
		}
		if h.most.GPU != 3 || h.most.MilliCPU < 3500 {
			t.Errorf("at most %v held at once, want all 3 GPUs and at least 3.5 CPUs at some point: the run packs its tasks", h.most)
		}
		for id, n := range h.tries {
			if want := map[bool]int{true: 2, false: 1}[strings.HasPrefix(id, "flaky")]; n != want {
				t.Errorf("%s ran %d times, want %d", id, n, want)
			}
		}
	})
}

// TestSmallTasksFillAroundALargeTaskThatIsNotStarved: a task asking for every CPU
// waits while small tasks behind it use what is free (the CPUs are not left idle),
// but only while a workers' worth of them overtake it: then it holds a reservation,
// and starts as soon as the running ones have ended, long before the small tasks
// run out. Without the reservation the small tasks, ending one at a time, would never
// leave all 4 CPUs free at once until the last of them.
func TestSmallTasksFillAroundALargeTaskThatIsNotStarved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		text := "tasks:\n"
		for i := range 40 {
			if i == 2 {
				text += "  - {id: big, run: x, resources: {cpu: 4}}\n"
				continue
			}
			est := []string{"1s", "1250ms", "1500ms", "1750ms"}[i%4]
			text += fmt.Sprintf("  - {id: s%d, run: x, estimate: %s, resources: {cpu: 1}}\n", i, est)
		}
		start := time.Now()
		h, results := runHolder(t, text, 4, jobs.Capacity{MilliCPU: 4000})
		big := h.starts["big"].Sub(start)
		// s0 and s1 start at 0; big does not fit in the 2 CPUs left, and s3 and s4 take them.
		if got := h.starts["s3"].Sub(start); got != 0 {
			t.Errorf("s3 started at %v, want 0s: a small task fills what the large one cannot use", got)
		}
		// From the fifth overtake on (4 workers), big reserves: it starts once the
		// tasks running then have ended, by 1.75s + 1.75s at the latest.
		if big > 3500*time.Millisecond {
			t.Errorf("big started at %v, want by 3.5s: a large task is not starved", big)
		}
		later := 0
		for id, at := range h.starts {
			if id != "big" && at.After(h.starts["big"]) {
				later++
			}
		}
		if later < 20 {
			t.Errorf("%d small tasks started after big, want most of them (20 or more)", later)
		}
		if r := results["big"]; !slices.Contains(r.WaitedFor, "resources cpu") || r.Wait <= 0 {
			t.Errorf("big waited %vs for %q, want some time for resources cpu", r.Wait, r.WaitedFor)
		}
	})
}

// TestTasksAskingNothingIgnoreTheCapacity: tasks without resources run as many at
// once as the workers allow, beside one that holds the only CPU.
func TestTasksAskingNothingIgnoreTheCapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		text := "tasks:\n  - {id: a, run: x, resources: {cpu: 1}}\n  - {id: b, run: x, resources: {cpu: 1}}\n"
		for i := range 6 {
			text += fmt.Sprintf("  - {id: n%d, run: x}\n", i)
		}
		start := time.Now()
		h, _ := runHolder(t, text, 4, jobs.Capacity{MilliCPU: 1000})
		if got := h.starts["b"].Sub(start); got != time.Second {
			t.Errorf("b started at %v, want 1s: after a, which holds the only CPU", got)
		}
		// a, n0, n1, n2 at 0s (b waits); then b, n3, n4, n5 at 1s.
		if took := time.Since(start); took != 2*time.Second {
			t.Errorf("the run took %v, want 2s", took)
		}
	})
}

// TestGPUsAreHandedOutAndTakenBack: four tasks asking for 2 of 3 GPUs run one at a
// time, each with two distinct devices of the list.
func TestGPUsAreHandedOutAndTakenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		text := "tasks:\n"
		for i := range 4 {
			text += fmt.Sprintf("  - {id: g%d, run: x, resources: {gpu: 2}}\n", i)
		}
		start := time.Now()
		h, _ := runHolder(t, text, 4, jobs.Capacity{GPUs: []string{"3", "5", "7"}})
		if h.most.GPU != 2 {
			t.Errorf("at most %d GPUs held at once, want 2", h.most.GPU)
		}
		if took := time.Since(start); took != 4*time.Second {
			t.Errorf("the run took %v, want 4s: one task at a time", took)
		}
	})
}

// TestResourceGateWaiterIsTheFirstInLine: of the tasks that do not fit, the first in
// line is the waiter; after its overtakes it reserves what it asks for, tasks asking
// for nothing still start, and once it starts nobody waits.
func TestResourceGateWaiterIsTheFirstInLine(t *testing.T) {
	g := newResourceGate(jobs.Capacity{MilliCPU: 2000}, nil, 1, nil)
	task := func(i int, milli int64) jobs.Task {
		return jobs.Task{Index: i, ID: fmt.Sprint("t", i), Resources: jobs.Resources{MilliCPU: milli}}
	}
	now := time.Now()
	g.Start(task(1, 1000), now)
	if ok, _, why := g.Admit(task(5, 2000), now); ok || why != "resources cpu" {
		t.Fatalf("admit 2 CPUs with 1 free: %v %q, want refused for resources cpu", ok, why)
	}
	g.Admit(task(3, 2000), now) // before task 5 in input order
	if g.waiter == nil || g.waiter.job.Index != 3 {
		t.Fatalf("waiter %+v, want task 3: the first in line that does not fit", g.waiter)
	}
	// One overtake is allowed; then the waiter reserves.
	if ok, _, _ := g.Admit(task(6, 500), now); !ok {
		t.Fatal("a task that fits was refused before the waiter reserves")
	}
	g.Start(task(6, 500), now)
	if ok, _, why := g.Admit(task(7, 500), now); ok || why != "resources cpu" {
		t.Fatalf("admit with the waiter's reservation: %v %q, want refused", ok, why)
	}
	if ok, _, _ := g.Admit(jobs.Task{Index: 8}, now); !ok {
		t.Fatal("a task that asks for nothing was refused")
	}
	g.Done(task(1, 1000))
	g.Done(task(6, 500))
	if ok, _, _ := g.Admit(task(3, 2000), now); !ok {
		t.Fatal("the waiter was refused with the whole capacity free")
	}
	g.Start(task(3, 2000), now)
	if g.waiter != nil {
		t.Errorf("waiter %+v after it started, want none", g.waiter)
	}
}
