package pipeline

import (
	"time"

	"golang.org/x/time/rate"

	"github.com/gorun/gorun/internal/jobs"
)

// limitGate is the pool's gate (pool.Gate) for the run's named limits: a task starts
// only when every pool it is in has a free slot and a token. A limit with a key is a
// family of pools, one per key value, made when a task with a new value is first
// asked about and forgotten once idle (nothing running, its tokens full).
//
// The pool's dispatching goroutine owns a limitGate.
type limitGate struct {
	limits []jobs.Limit
	byName map[string]int
	pools  []map[string]*limitPool // by limit: by key ("" for a limit without one)
	refs   map[int][]poolRef       // by task index: the pools it is in, while it is asked about
	sweep  []int                   // by limit: the family's size at which idle pools are swept
	whys   []string                // by limit: why it holds a task back ("limit api")
}

// minSweep is the size of a family of pools at which its idle pools are first swept.
const minSweep = 64

// limitPool is one pool: its running tasks and its token bucket.
type limitPool struct {
	running int
	tokens  *bucket // nil: the limit has no rate
}

// bucket paces starts as a token bucket of burst tokens, one more every interval,
// kept as GCRA keeps it: tat is the time from which the bucket is full again. A start
// is allowed at t when t >= tat - (burst-1)·interval.
//
// A start made after the bucket filled up, but by less than an interval (the
// scheduler's own delay on a busy machine), is counted at the time it filled: the
// starts keep to the rate over time instead of losing that delay at each start. Two
// starts may then come closer than an interval, but no window of an interval ever
// holds more than burst+1 starts.
type bucket struct {
	interval time.Duration
	burst    int
	tat      time.Time
}

// slack divides the interval to give how late a start may be and still be counted
// on time: 1, a whole interval.
const slack = 1

func newBucket(r rate.Limit, burst int) *bucket {
	return &bucket{interval: time.Duration(float64(time.Second) / float64(r)), burst: max(burst, 1)}
}

// allowedAt returns the time from which a start is allowed.
func (b *bucket) allowedAt() time.Time {
	return b.tat.Add(-time.Duration(b.burst-1) * b.interval)
}

// take counts a start at now, which allowedAt allowed.
func (b *bucket) take(now time.Time) {
	if late := now.Sub(b.tat); late >= 0 && late < b.interval/slack {
		b.tat = b.tat.Add(b.interval)
		return
	}
	b.tat = later(b.tat, now).Add(b.interval)
}

// full reports whether the bucket holds all its tokens at now.
func (b *bucket) full(now time.Time) bool { return !now.Before(b.tat) }

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

type poolRef struct {
	limit int
	key   string
}

func newLimitGate(limits []jobs.Limit) *limitGate {
	g := &limitGate{limits: limits, byName: map[string]int{}, pools: make([]map[string]*limitPool, len(limits)), refs: map[int][]poolRef{},
		sweep: make([]int, len(limits)), whys: make([]string, len(limits))}
	for i, l := range limits {
		g.whys[i] = "limit " + l.Name
		g.byName[l.Name] = i
		g.pools[i] = map[string]*limitPool{}
		g.sweep[i] = minSweep
	}
	return g
}

// poolsOf returns the pools t is in, computing them once per attempt.
func (g *limitGate) poolsOf(t *jobs.Task) []poolRef {
	if refs, ok := g.refs[t.Index]; ok {
		return refs
	}
	var refs []poolRef
	add := func(i int) {
		ref := poolRef{limit: i}
		if g.limits[i].Key != nil {
			ref.key = g.limits[i].Key(t)
		}
		refs = append(refs, ref)
	}
	for i, l := range g.limits {
		if l.Every {
			add(i)
		}
	}
	for _, name := range t.Limits {
		if i, ok := g.byName[name]; ok && !g.limits[i].Every {
			add(i)
		}
	}
	g.refs[t.Index] = refs
	return refs
}

// pool returns the pool ref points to, making it when it is new.
func (g *limitGate) pool(ref poolRef) *limitPool {
	p := g.pools[ref.limit][ref.key]
	if p == nil {
		p = &limitPool{}
		if l := &g.limits[ref.limit]; l.Rated() {
			p.tokens = newBucket(l.Rate, l.Burst)
		}
		g.pools[ref.limit][ref.key] = p
	}
	return p
}

// Admit implements pool.Gate.
func (g *limitGate) Admit(t jobs.Task, now time.Time) (ok bool, wake time.Time, why string) {
	ok = true
	for _, ref := range g.poolsOf(&t) {
		l, p := &g.limits[ref.limit], g.pool(ref)
		if l.Concurrency > 0 && p.running >= l.Concurrency {
			if ok {
				why = g.whys[ref.limit]
			}
			ok = false // waits for an end: no time to wake at
			continue
		}
		if p.tokens != nil {
			if at := p.tokens.allowedAt(); now.Before(at) {
				if ok {
					why = g.whys[ref.limit]
				}
				ok = false
				if wake.IsZero() || at.After(wake) {
					wake = at // the last of its pools' tokens
				}
			}
		}
	}
	return ok, wake, why
}

// Start implements pool.Gate.
func (g *limitGate) Start(t jobs.Task, now time.Time) {
	for _, ref := range g.poolsOf(&t) {
		p := g.pool(ref)
		p.running++
		if p.tokens != nil {
			p.tokens.take(now)
		}
	}
}

// Done implements pool.Gate.
func (g *limitGate) Done(t jobs.Task) {
	now := time.Now()
	for _, ref := range g.poolsOf(&t) {
		p := g.pool(ref)
		p.running--
		if g.limits[ref.limit].Key == nil {
			continue
		}
		if p.idle(now) {
			delete(g.pools[ref.limit], ref.key)
		}
		// A pool whose tokens were not full when its last task ended is swept later,
		// when the family has doubled: the sweeps cost O(1) a task, amortised.
		if fam := g.pools[ref.limit]; len(fam) >= g.sweep[ref.limit] {
			for key, p := range fam {
				if p.idle(now) {
					delete(fam, key)
				}
			}
			g.sweep[ref.limit] = max(minSweep, 2*len(fam))
		}
	}
	delete(g.refs, t.Index)
}

// idle reports whether p runs nothing and has all its tokens: a new pool would be
// the same.
func (p *limitPool) idle(now time.Time) bool {
	return p.running == 0 && (p.tokens == nil || p.tokens.full(now))
}
