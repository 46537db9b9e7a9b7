package pipeline

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
	"golang.org/x/time/rate"
)

// pooled is a fake runner whose tasks take a second; it counts the tasks running in
// each named pool, and in each key (the item's directory), and the most at once.
type pooled struct {
	mu      sync.Mutex
	running map[string]int
	most    map[string]int
	starts  map[string][]time.Time
}

func (p *pooled) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	groups := append([]string{"all"}, t.Limits...)
	if t.Item != "" {
		groups = append(groups, "key:"+path.Dir(t.Item))
	}
	p.mu.Lock()
	if p.running == nil {
		p.running, p.most, p.starts = map[string]int{}, map[string]int{}, map[string][]time.Time{}
	}
	for _, g := range groups {
		p.running[g]++
		p.most[g] = max(p.most[g], p.running[g])
		p.starts[g] = append(p.starts[g], time.Now())
	}
	p.mu.Unlock()
	time.Sleep(time.Second)
	p.mu.Lock()
	for _, g := range groups {
		p.running[g]--
	}
	p.mu.Unlock()
	return jobs.Attempt{Start: time.Now(), ExitCode: 0}
}

func runPooled(t *testing.T, src jobs.Source, opts Options) *pooled {
	t.Helper()
	p := &pooled{}
	opts.Runner, opts.Output, opts.Stdout, opts.Stderr = p, None, io.Discard, io.Discard
	n := 0
	if err := Run(context.Background(), src, opts, func(r jobs.Result) {
		n++
		if r.Status != jobs.Succeeded {
			t.Errorf("%s: %s", r.ID, r.Status)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNamedLimitNeverExceeded: tasks in a pool of 2 never run more than 2 at once,
// and the tasks outside it use the other workers meanwhile.
func TestNamedLimitNeverExceeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var file = "limits: {db: {concurrency: 2}}\ntasks:\n"
		for i := range 8 {
			file += fmt.Sprintf("  - {id: db%d, run: x, limits: [db]}\n", i)
		}
		for i := range 8 {
			file += fmt.Sprintf("  - {id: other%d, run: x}\n", i)
		}
		f, err := input.Parse("l.yaml", []byte(file))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		p := runPooled(t, input.NewSliceSource(f.Tasks(jobs.Settings{})), Options{Workers: 4, Limits: f.Limits})
		if p.most["db"] != 2 || p.most["all"] != 4 {
			t.Errorf("at most %d db tasks and %d tasks at once, want 2 and 4", p.most["db"], p.most["all"])
		}
		// 8 db tasks 2 at a time take 4 s; the 8 others fill the other 2 workers.
		if took := time.Since(start); took != 4*time.Second {
			t.Errorf("the run took %v, want 4s: the pool holds up only its own tasks", took)
		}
	})
}

// TestPerKeyRate: a limit keyed by the item's directory paces each directory's
// starts at its rate, and the directories side by side.
func TestPerKeyRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key, _, err := input.NewKey("{//}")
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := input.NewTemplate([]string{"echo", "{}"}, jobs.DefaultShell)
		if err != nil {
			t.Fatal(err)
		}
		var lines string
		for i := range 10 {
			for _, dir := range []string{"a", "b", "c"} {
				lines += fmt.Sprintf("%s/%d\n", dir, i)
			}
		}
		src := input.NewLineSource("stdin", io.NopCloser(strings.NewReader(lines)), input.LineOptions{Template: tmpl})
		lim := jobs.Limit{Name: "--limit-by", Rate: 2, Burst: 1, Key: key, KeySource: "{//}", Every: true, Concurrency: 2}
		start := time.Now()
		p := runPooled(t, src, Options{Workers: 16, Limits: []jobs.Limit{lim}})
		for _, dir := range []string{"a", "b", "c"} {
			starts := p.starts["key:"+dir]
			if len(starts) != 10 || p.most["key:"+dir] > 2 {
				t.Fatalf("%s: %d starts, %d at once; want 10, at most 2", dir, len(starts), p.most["key:"+dir])
			}
			for i := 1; i < len(starts); i++ {
				if gap := starts[i].Sub(starts[i-1]); gap < 500*time.Millisecond {
					t.Errorf("%s: start %d came %v after the one before, want at least 500ms (2/s)", dir, i+1, gap)
				}
			}
		}
		// 10 starts a key at 2/s: the last at 4.5 s, ending at 5.5 s.
		if took := time.Since(start); took != 5500*time.Millisecond {
			t.Errorf("the run took %v, want 5.5s: the keys run side by side", took)
		}
	})
}

// TestKeyedPoolsAreForgottenWhenIdle: a family of pools holds only the keys in use.
func TestKeyedPoolsAreForgottenWhenIdle(t *testing.T) {
	key, _, _ := input.NewKey("{id}")
	g := newLimitGate([]jobs.Limit{{Name: "k", Concurrency: 1, Key: key, Every: true}})
	now := time.Now()
	for i := 1; i <= 1000; i++ {
		task := jobs.Task{Index: i, ID: fmt.Sprint("t", i)}
		if ok, _, _ := g.Admit(task, now); !ok {
			t.Fatalf("task %d not admitted", i)
		}
		g.Start(task, now)
		if ok, _, _ := g.Admit(jobs.Task{Index: 5000 + i, ID: task.ID}, now); ok {
			t.Fatalf("a second task with key %s admitted while the first runs", task.ID)
		}
		g.Done(task)
	}
	if n := len(g.pools[0]); n != 0 {
		t.Errorf("%d pools left after every task ended, want 0", n)
	}
}

// TestBucketKeepsTheRateWhenLate: starts made late while tasks wait are counted on
// time, so that the rate holds over time; a start after an idle spell earns nothing.
func TestBucketKeepsTheRateWhenLate(t *testing.T) {
	b := newBucket(10, 1) // every 100ms
	t0 := time.Unix(1000, 0)
	b.take(t0)
	for i := 1; i <= 10; i++ {
		at := b.allowedAt()
		if want := t0.Add(time.Duration(i) * 100 * time.Millisecond); !at.Equal(want) {
			t.Fatalf("start %d allowed at %v, want %v: the delays of the starts before were kept", i+1, at.Sub(t0), want.Sub(t0))
		}
		b.refused()                           // a task waits for the token
		b.take(at.Add(30 * time.Millisecond)) // and starts 30ms late
	}
	idle := b.allowedAt().Add(5 * time.Second)
	b.take(idle)
	if got := b.allowedAt().Sub(idle); got != 100*time.Millisecond {
		t.Errorf("after an idle spell, the next start is allowed %v later, want 100ms", got)
	}
}

// startsThrough starts n tasks of a pool whose tasks always wait, on a bucket of
// 10/s, as soon as it allows each, except that nothing starts from stallFrom to
// stallTo after the first (a machine too busy to run gorun): the starts' times.
func startsThrough(n int, stallFrom, stallTo time.Duration) []time.Duration {
	b := newBucket(10, 1)
	t0 := time.Unix(1000, 0)
	now := t0
	var starts []time.Duration
	for range n {
		if b.allowedAt().After(now) {
			b.refused() // asked at once, refused until its token
		}
		at := later(b.allowedAt(), now)
		if d := at.Sub(t0); d >= stallFrom && d < stallTo {
			at = t0.Add(stallTo)
		}
		b.take(at)
		starts = append(starts, at.Sub(t0))
		now = at
	}
	return starts
}

// TestBucketCatchesUpAfterAStall: after gorun was stalled for a second, the pool's
// starts catch up at twice the rate, never closer than half an interval, until they
// are back on schedule: the 60th start comes at 5.9 s, as without the stall. A stall
// longer than catchUp is not made up.
func TestBucketCatchesUpAfterAStall(t *testing.T) {
	starts := startsThrough(60, 2*time.Second, 3*time.Second)
	if got, want := starts[59], 5900*time.Millisecond; got != want {
		t.Errorf("the 60th start at %v, want %v: the stall's starts were not made up", got, want)
	}
	for i := 1; i < len(starts); i++ {
		if gap := starts[i] - starts[i-1]; gap < 50*time.Millisecond {
			t.Errorf("start %d came %v after the one before, want at least 50ms (half an interval)", i+1, gap)
		}
	}
	long := startsThrough(60, 2*time.Second, 5*time.Second)
	if got, want := long[59], 5900*time.Millisecond+3*time.Second; got != want {
		t.Errorf("after a 3 s stall: the 60th start at %v, want %v: a stall beyond catchUp is not made up", got, want)
	}
}

// TestWaitIsRecorded: each result says how long its task was ready but did not
// start, and what held it back.
func TestWaitIsRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, err := input.Parse("w.yaml", []byte(`limits: {db: {concurrency: 1}}
tasks:
  - {id: db0, run: x, limits: [db]}
  - {id: db1, run: x, limits: [db]}
  - {id: free0, run: x}
  - {id: free1, run: x}
  - {id: free2, run: x}
`))
		if err != nil {
			t.Fatal(err)
		}
		p := &pooled{}
		results := map[string]jobs.Result{}
		opts := Options{Workers: 2, Limits: f.Limits, Limiter: rate.NewLimiter(rate.Every(3*time.Second), 4),
			Runner: p, Output: None, Stdout: io.Discard, Stderr: io.Discard}
		if err := Run(context.Background(), input.NewSliceSource(f.Tasks(jobs.Settings{})), opts, func(r jobs.Result) { results[r.ID] = r }); err != nil {
			t.Fatal(err)
		}
		// The rate: a burst of 4, then a token every 3 s. 0 s: db0 and free0 start
		// (db1 waits for the pool db, free1 and free2 for a worker); 1 s: db1 and free1
		// start with the last two tokens; 2 s: free2 gets a worker and waits for a
		// token, at 3 s.
		for id, want := range map[string]struct {
			wait time.Duration
			why  string
		}{
			"db0": {0, ""}, "free0": {0, ""},
			"db1": {time.Second, "limit db"}, "free1": {time.Second, "workers"},
			"free2": {3 * time.Second, "workers,rate"},
		} {
			r := results[id]
			if got := time.Duration(r.Wait).Round(time.Millisecond); got != want.wait || strings.Join(r.WaitedFor, ",") != want.why {
				t.Errorf("%s: waited %v for %q, want %v for %q", id, got, r.WaitedFor, want.wait, want.why)
			}
		}
	})
}
