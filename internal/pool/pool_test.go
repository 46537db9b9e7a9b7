package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/time/rate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errTimeout = errors.New("job timed out")

// runAll feeds n jobs to Run and collects every Done.
func runAll[R any](startCtx, runCtx context.Context, opts Options[int, R], n int, timeout time.Duration, fn Func[int, R]) []Done[int, R] {
	in := make(chan Job[int])
	out := make(chan Done[int, R])
	go func() {
		defer close(in)
		for i := 1; i <= n; i++ {
			in <- Job[int]{Index: i, Value: i, Timeout: timeout}
		}
	}()
	go func() {
		Run(startCtx, runCtx, opts, in, fn, out)
		close(out)
	}()
	var all []Done[int, R]
	for d := range out {
		all = append(all, d)
	}
	return all
}

func TestConcurrencyNeverExceedsWorkers(t *testing.T) {
	for _, workers := range []int{1, 3, 8} {
		var running, most atomic.Int32
		fn := func(ctx context.Context, slot, attempt int, v int) int {
			n := running.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			running.Add(-1)
			return v * 2
		}
		ctx := context.Background()
		done := runAll(ctx, ctx, Options[int, int]{Workers: workers}, 200, 0, fn)
		if len(done) != 200 {
			t.Fatalf("workers=%d: got %d results, want 200", workers, len(done))
		}
		seen := make(map[int]bool)
		for _, d := range done {
			if !d.Started || d.Result != d.Job.Value*2 || d.Slot < 1 || d.Slot > workers {
				t.Errorf("workers=%d: bad done %+v", workers, d)
			}
			seen[d.Job.Index] = true
		}
		if len(seen) != 200 {
			t.Errorf("workers=%d: got %d distinct jobs, want 200", workers, len(seen))
		}
		if got := most.Load(); got > int32(workers) {
			t.Errorf("workers=%d: got %d running at once, want at most %d", workers, got, workers)
		}
	}
}

func TestStartsRespectTheRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var starts []time.Duration
		begin := time.Now()
		startCh := make(chan time.Duration, 20)
		fn := func(ctx context.Context, slot, attempt int, v int) int {
			startCh <- time.Since(begin)
			return v
		}
		ctx := context.Background()
		lim := rate.NewLimiter(10, 1)
		runAll(ctx, ctx, Options[int, int]{Workers: 4, Limiter: lim}, 20, 0, fn)
		close(startCh)
		for s := range startCh {
			starts = append(starts, s)
		}
		if len(starts) != 20 {
			t.Fatalf("got %d starts, want 20", len(starts))
		}
		// 20 starts at 10/s with burst 1: the first at once, the last after 1.9s.
		if last := starts[len(starts)-1]; last < 1900*time.Millisecond {
			t.Errorf("last start at %v, want at least 1.9s", last)
		}
		for i := 1; i < len(starts); i++ {
			if gap := starts[i] - starts[i-1]; gap < 99*time.Millisecond {
				t.Errorf("starts %d and %d %v apart, want at least 100ms", i, i+1, gap)
			}
		}
	})
}

func TestStopStartingSkipsTheRest(t *testing.T) {
	startCtx, stop := context.WithCancel(context.Background())
	var started atomic.Int32
	fn := func(ctx context.Context, slot, attempt int, v int) int {
		if started.Add(1) == 3 {
			stop()
		}
		return v
	}
	done := runAll(startCtx, context.Background(), Options[int, int]{Workers: 1}, 50, 0, fn)
	if len(done) != 50 {
		t.Fatalf("got %d results, want 50: every job is reported", len(done))
	}
	var ran int
	for _, d := range done {
		if d.Started {
			ran++
		}
	}
	if ran != 3 {
		t.Errorf("got %d started, want 3 (none after startCtx ended)", ran)
	}
}

func TestCancelStopsRunningJobs(t *testing.T) {
	runCtx, cancel := context.WithCancel(context.Background())
	startCtx, stop := context.WithCancel(runCtx)
	defer stop()
	var started atomic.Int32
	fn := func(ctx context.Context, slot, attempt int, v int) error {
		if started.Add(1) == 4 {
			cancel()
		}
		<-ctx.Done()
		return ctx.Err()
	}
	done := runAll(startCtx, runCtx, Options[int, error]{Workers: 4}, 10, 0, fn)
	var ran int
	for _, d := range done {
		if d.Started {
			ran++
			if !errors.Is(d.Result, context.Canceled) {
				t.Errorf("job %d: got %v, want context.Canceled", d.Job.Index, d.Result)
			}
		}
	}
	if ran != 4 || len(done) != 10 {
		t.Errorf("got %d started of %d reported, want 4 of 10", ran, len(done))
	}
}

func TestTimeoutCause(t *testing.T) {
	fn := func(ctx context.Context, slot, attempt int, v int) error {
		<-ctx.Done()
		return context.Cause(ctx)
	}
	ctx := context.Background()
	done := runAll(ctx, ctx, Options[int, error]{Workers: 2, TimeoutCause: errTimeout}, 2, 10*time.Millisecond, fn)
	for _, d := range done {
		if !errors.Is(d.Result, errTimeout) {
			t.Errorf("got cause %v, want %v", d.Result, errTimeout)
		}
	}
}

func TestPanicBecomesAResult(t *testing.T) {
	fn := func(ctx context.Context, slot, attempt int, v int) int {
		if v == 2 {
			panic("boom")
		}
		return v
	}
	ctx := context.Background()
	done := runAll(ctx, ctx, Options[int, int]{Workers: 2}, 3, 0, fn)
	var panics int
	for _, d := range done {
		if d.Panic != nil {
			panics++
			if d.Job.Index != 2 || !strings.Contains(d.Panic.Error(), "boom") || !strings.Contains(d.Panic.Error(), "pool_test.go") {
				t.Errorf("got panic %v for job %d, want boom with its stack for job 2", d.Panic, d.Job.Index)
			}
		}
	}
	if panics != 1 || len(done) != 3 {
		t.Errorf("got %d panics in %d results, want 1 in 3", panics, len(done))
	}
}

func TestRetriesUntilSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		begin := time.Now()
		var starts []time.Duration
		fn := func(ctx context.Context, slot, attempt int, v int) bool {
			starts = append(starts, time.Since(begin))
			return attempt == 3 // fails twice, then succeeds
		}
		retry := func(v int, ok bool, attempt int) (time.Duration, bool) {
			return time.Duration(attempt) * 100 * time.Millisecond, !ok && attempt < 5
		}
		ctx := context.Background()
		done := runAll(ctx, ctx, Options[int, bool]{Workers: 1, Retry: retry}, 1, 0, fn)
		if len(done) != 1 || !done[0].Result || done[0].Attempts != 3 {
			t.Fatalf("got %+v, want one success after 3 attempts", done)
		}
		want := []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond}
		for i := range want {
			if starts[i] != want[i] {
				t.Errorf("attempt %d started at %v, want %v", i+1, starts[i], want[i])
			}
		}
	})
}

func TestWaitingRetryHoldsNoWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		begin := time.Now()
		started := map[int][]time.Duration{}
		fn := func(ctx context.Context, slot, attempt int, v int) bool {
			started[v] = append(started[v], time.Since(begin))
			time.Sleep(10 * time.Millisecond)
			return v == 2 || attempt == 2
		}
		retry := func(v int, ok bool, attempt int) (time.Duration, bool) { return time.Second, !ok }
		ctx := context.Background()
		done := runAll(ctx, ctx, Options[int, bool]{Workers: 1, Retry: retry}, 2, 0, fn)
		if len(done) != 2 {
			t.Fatalf("got %d results, want 2", len(done))
		}
		// Job 1 fails and waits a second for its retry; job 2 runs in the meantime on
		// the only worker.
		if got := started[2][0]; got != 10*time.Millisecond {
			t.Errorf("job 2 started at %v, want 10ms: while job 1 waited for its retry", got)
		}
		if got := started[1][1]; got != 1010*time.Millisecond {
			t.Errorf("job 1's retry started at %v, want 1.01s", got)
		}
	})
}

func TestStopEndsWaitingRetriesWithTheirLastAttempt(t *testing.T) {
	startCtx, stop := context.WithCancel(context.Background())
	defer stop()
	fn := func(ctx context.Context, slot, attempt int, v int) int {
		if v == 1 {
			time.AfterFunc(50*time.Millisecond, stop)
		}
		return attempt
	}
	retry := func(v int, r int, attempt int) (time.Duration, bool) { return time.Hour, true }
	done := runAll(startCtx, context.Background(), Options[int, int]{Workers: 1, Retry: retry}, 3, 0, fn)
	var tried, skipped int
	for _, d := range done {
		switch {
		case d.Started && d.Attempts == 1 && d.Result == 1:
			tried++
		case !d.Started:
			skipped++
		default:
			t.Errorf("unexpected %+v", d)
		}
	}
	if tried+skipped != 3 || tried < 1 {
		t.Errorf("got %d ended with their first attempt and %d not started, want 3 in all", tried, skipped)
	}
}

// TestExecutionsCountInAttempts: an attempt that stands for several executions
// counts them all, the next attempt's number follows them, and the retry budget
// counts attempts only.
func TestExecutionsCountInAttempts(t *testing.T) {
	var numbers []int
	fn := func(ctx context.Context, slot, attempt int, v int) int {
		numbers = append(numbers, attempt) // one worker: no race
		if attempt == 1 {
			return 2 // ran twice (say, redelivered after a crash), and failed
		}
		return 1
	}
	opts := Options[int, int]{
		Workers:    1,
		Executions: func(r int) int { return r },
		Retry: func(v, r, tries int) (time.Duration, bool) {
			return 0, tries < 2 // one retry
		},
	}
	ctx := context.Background()
	done := runAll(ctx, ctx, opts, 1, 0, fn)
	if len(done) != 1 || done[0].Attempts != 3 || done[0].Tries != 2 {
		t.Fatalf("got %+v, want 3 executions in 2 attempts", done)
	}
	if len(numbers) != 2 || numbers[0] != 1 || numbers[1] != 3 {
		t.Errorf("attempt numbers %v, want [1 3]", numbers)
	}
}

func TestDoneKeepsEarlierAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Each attempt returns its number; it fails until the third.
		fn := func(ctx context.Context, slot, attempt int, v int) int {
			time.Sleep(time.Duration(attempt) * time.Second)
			return attempt
		}
		retry := func(v, r, tries int) (time.Duration, bool) { return 0, r < 3 }
		ctx := context.Background()
		done := runAll(ctx, ctx, Options[int, int]{Workers: 1, Retry: retry}, 1, 0, fn)
		if len(done) != 1 || done[0].Result != 3 {
			t.Fatalf("got %+v, want one job ending with attempt 3", done)
		}
		e := done[0].Earlier
		if len(e) != 2 || e[0].Result != 1 || e[1].Result != 2 || e[0].Slot != 1 || e[0].Attempts != 1 || e[1].Attempts != 2 {
			t.Fatalf("earlier attempts: %+v, want attempts 1 and 2 in slot 1", e)
		}
		if e[0].Earlier != nil || e[1].Earlier != nil {
			t.Errorf("an earlier attempt holds earlier attempts itself: %+v", e)
		}
		if got := done[0].Taken.Sub(e[1].Taken); got != 2*time.Second {
			t.Errorf("the last attempt was taken %v after the second, want 2s", got)
		}
	})
}

// runReady runs the jobs of opts.Ready on one worker, with nothing from in, records
// the order fn sees them in, and returns it with every Done.
func runReady(startCtx context.Context, opts Options[int, int]) (order []int, done []Done[int, int]) {
	in := make(chan Job[int])
	close(in)
	out := make(chan Done[int, int])
	fn := func(ctx context.Context, slot, attempt int, v int) int {
		order = append(order, v) // one worker: no other goroutine runs fn
		return v
	}
	opts.Workers = 1
	go func() {
		Run(startCtx, startCtx, opts, in, fn, out)
		close(out)
	}()
	for d := range out {
		done = append(done, d)
	}
	return order, done
}

func TestReadyJobsStartByLess(t *testing.T) {
	var jobs []Job[int]
	for i, v := range []int{3, 1, 4, 1, 5, 9, 2, 6} {
		jobs = append(jobs, Job[int]{Index: i + 1, Value: v})
	}
	order, _ := runReady(context.Background(), Options[int, int]{
		Ready: jobs,
		Less:  func(a, b Job[int]) bool { return a.Value > b.Value },
	})
	if want := []int{9, 6, 5, 4, 3, 2, 1, 1}; !slices.Equal(order, want) {
		t.Errorf("got order %v, want %v", order, want)
	}
	order, _ = runReady(context.Background(), Options[int, int]{Ready: jobs})
	if want := []int{3, 1, 4, 1, 5, 9, 2, 6}; !slices.Equal(order, want) {
		t.Errorf("without Less: got order %v, want %v (as given)", order, want)
	}
}

// TestFollowMakesJobsReady: the jobs Follow returns join the ready ones before the
// next start, and those it rules out are sent to out without running.
func TestFollowMakesJobsReady(t *testing.T) {
	order, done := runReady(context.Background(), Options[int, int]{
		Ready: []Job[int]{{Index: 1, Value: 1}, {Index: 2, Value: 2}},
		Less:  func(a, b Job[int]) bool { return a.Value > b.Value },
		Follow: func(d Done[int, int]) ([]Job[int], []Done[int, int]) {
			if d.Job.Value == 2 {
				return []Job[int]{{Index: 3, Value: 3}}, []Done[int, int]{{Job: Job[int]{Index: 4, Value: 4}}}
			}
			return nil, nil
		},
	})
	if want := []int{2, 3, 1}; !slices.Equal(order, want) {
		t.Errorf("got order %v, want %v: 3, ready after 2, outranks 1", order, want)
	}
	if len(done) != 4 {
		t.Fatalf("got %d Dones, want 4", len(done))
	}
	for _, d := range done {
		if d.Started != (d.Job.Value != 4) {
			t.Errorf("job %d: started %v", d.Job.Value, d.Started)
		}
	}
}

// TestFollowAfterStopEndsJobsNotStarted: once starting has ended, what Follow makes
// ready ends not started.
func TestFollowAfterStopEndsJobsNotStarted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	order, done := runReady(ctx, Options[int, int]{
		Ready:    []Job[int]{{Index: 1, Value: 1}},
		Finished: func(d Done[int, int]) { cancel() },
		Follow: func(d Done[int, int]) ([]Job[int], []Done[int, int]) {
			if d.Job.Value == 1 {
				return []Job[int]{{Index: 2, Value: 2}}, nil
			}
			return nil, nil
		},
	})
	if !slices.Equal(order, []int{1}) {
		t.Errorf("got order %v, want [1]", order)
	}
	if len(done) != 2 || done[1].Job.Value != 2 || done[1].Started {
		t.Errorf("got %+v, want job 2 not started", done)
	}
}

// semGate admits at most max attempts of odd values at once.
type semGate struct {
	max, held, most int
	starts          []int
}

func (g *semGate) Admit(v int, now time.Time) (bool, time.Time, string) {
	return v%2 == 0 || g.held < g.max, time.Time{}, "odd"
}
func (g *semGate) Start(v int, now time.Time) {
	g.starts = append(g.starts, v)
	if v%2 == 1 {
		g.held++
		g.most = max(g.most, g.held)
	}
}
func (g *semGate) Done(v int) {
	if v%2 == 1 {
		g.held--
	}
}

// TestGateHoldsBackOnlyWhatItLimits: odd jobs share a semaphore of 1; even jobs are
// free. The odd ones never run two at once, and the even ones do not wait behind
// them, even when they come later in the queue.
func TestGateHoldsBackOnlyWhatItLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &semGate{max: 1}
		var jobs []Job[int]
		for i := 1; i <= 6; i++ {
			jobs = append(jobs, Job[int]{Index: i, Value: []int{1, 3, 5, 7, 2, 4}[i-1]})
		}
		in := make(chan Job[int])
		close(in)
		out := make(chan Done[int, int])
		fn := func(ctx context.Context, slot, attempt int, v int) int {
			time.Sleep(time.Second)
			return v
		}
		start := time.Now()
		ends := map[int]time.Duration{}
		go func() {
			Run(context.Background(), context.Background(), Options[int, int]{Workers: 3, Ready: jobs, Gate: g}, in, fn, out)
			close(out)
		}()
		for d := range out {
			ends[d.Job.Value] = time.Since(start)
		}
		if g.most != 1 || g.held != 0 {
			t.Errorf("odd jobs: at most %d at once, %d held at the end; want 1 and 0", g.most, g.held)
		}
		if ends[2] != time.Second || ends[4] != time.Second {
			t.Errorf("even jobs ended at %v and %v, want 1s: they do not wait behind the gated ones", ends[2], ends[4])
		}
		if ends[7] != 4*time.Second {
			t.Errorf("the last odd job ended at %v, want 4s (one at a time)", ends[7])
		}
	})
}

// countGate admits everything and counts how often it was asked.
type countGate struct{ asked int }

func (g *countGate) Admit(int, time.Time) (bool, time.Time, string) {
	g.asked++
	return true, time.Time{}, ""
}
func (g *countGate) Start(int, time.Time) {}
func (g *countGate) Done(int)             {}

// TestGateThatAdmitsCostsNoPass: a Gate that admits the next job is asked about it,
// not about every ready job at every start. A pass over the queue per start made a
// 5,000-task file at -j 8 take 1.8 times as long, with every run's back-off gate.
func TestGateThatAdmitsCostsNoPass(t *testing.T) {
	const n = 2000
	var jobs []Job[int]
	for i := 1; i <= n; i++ {
		jobs = append(jobs, Job[int]{Index: i, Value: i})
	}
	g := &countGate{}
	in := make(chan Job[int])
	close(in)
	out := make(chan Done[int, int])
	go func() {
		Run(context.Background(), context.Background(), Options[int, int]{Workers: 4, Ready: jobs, Gate: g}, in,
			func(ctx context.Context, slot, attempt int, v int) int { return v }, out)
		close(out)
	}()
	done := 0
	for range out {
		done++
	}
	if done != n || g.asked > 4*n {
		t.Errorf("%d jobs done, the gate asked %d times; want %d, and at most %d", done, g.asked, n, 4*n)
	}
}

// sizeGate admits a job while the sizes of the jobs running, its own added, stay
// within room: job 1 is as large as the room, the others 1; one more is held until
// job 2 ends. It counts the Admits.
type sizeGate struct {
	room, used, asked int
}

func size(v int) int {
	if v == 1 {
		return 1 << 20
	}
	return 1
}

func (g *sizeGate) Admit(v int, _ time.Time) (bool, time.Time, string) {
	g.asked++
	return g.used+min(size(v), g.room) <= g.room, time.Time{}, "room"
}
func (g *sizeGate) Start(v int, _ time.Time) { g.used += min(size(v), g.room) }
func (g *sizeGate) Done(v int) {
	g.used -= min(size(v), g.room)
	if v == 2 {
		g.used-- // what held job 1 back from the start
	}
}

type exhaustingGate struct{ *sizeGate }

func (g exhaustingGate) Exhausted() (bool, string) { return g.used >= g.room, "room" }

// TestJobHeldBackAtTheHeadCostsNoPass: a job at the head of the queue that its Gate
// holds back while the others behind it are admitted makes each start cost a few
// Admits, not a pass over the queue; and a Gate that says it is exhausted is asked
// about no other job at all until one ends. (A Gate that admits none of the jobs and
// cannot say so at once still costs a pass, once per end.)
func TestJobHeldBackAtTheHeadCostsNoPass(t *testing.T) {
	for _, exhaust := range []bool{false, true} {
		const n = 2000
		var jobs []Job[int]
		for i := 1; i <= n; i++ {
			jobs = append(jobs, Job[int]{Index: i, Value: i})
		}
		// Without Exhauster, room for all the workers beside job 2: a job behind job 1
		// is always admitted. With it, room for one beside job 2: the room is often
		// full, and the gate says so.
		g := &sizeGate{room: 1000, used: 1} // job 1 waits until job 2 ends
		var gate Gate[int] = g
		if exhaust {
			g.room = 3
			gate = exhaustingGate{g}
		}
		in := make(chan Job[int])
		close(in)
		out := make(chan Done[int, int])
		release := make(chan struct{})
		go func() {
			Run(context.Background(), context.Background(), Options[int, int]{Workers: 8, Ready: jobs, Gate: gate}, in,
				func(ctx context.Context, slot, attempt int, v int) int {
					if v == 2 {
						<-release // job 1 cannot start before this one ends
					}
					return v
				}, out)
			close(out)
		}()
		done, first := 0, 0
		for d := range out {
			if done++; done == n-2 {
				close(release)
			}
			if d.Job.Value == 1 {
				first = done
			}
		}
		if done != n || first < n-1 {
			t.Fatalf("exhaust %v: %d jobs done, job 1 ended %dth; want %d, after job 2", exhaust, done, first, n)
		}
		if g.asked > 8*n {
			t.Errorf("exhaust %v: the gate was asked %d times for %d jobs; want at most %d", exhaust, g.asked, n, 8*n)
		}
	}
}

// TestHeldSaysWhatHoldsThePoolBack: three odd jobs share a semaphore of 1 on 3
// workers. While the gate holds the next one back and a worker is free, Held says why,
// and "" as soon as a job starts or nothing is left to start.
func TestHeldSaysWhatHoldsThePoolBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &semGate{max: 1}
		jobs := []Job[int]{{Index: 1, Value: 1}, {Index: 2, Value: 3}, {Index: 3, Value: 5}}
		in := make(chan Job[int])
		close(in)
		out := make(chan Done[int, int])
		fn := func(ctx context.Context, slot, attempt int, v int) int {
			time.Sleep(time.Second)
			return v
		}
		start := time.Now()
		var held []string
		opts := Options[int, int]{Workers: 3, Ready: jobs, Gate: g, Held: func(why string) {
			held = append(held, fmt.Sprintf("%v %q", time.Since(start), why)) // the dispatching goroutine only
		}}
		go func() {
			Run(context.Background(), context.Background(), opts, in, fn, out)
			close(out)
		}()
		for range out {
		}
		want := []string{`0s "odd"`, `1s ""`, `1s "odd"`, `2s ""`}
		if !slices.Equal(held, want) {
			t.Errorf("got %q, want %q", held, want)
		}
	})
}
