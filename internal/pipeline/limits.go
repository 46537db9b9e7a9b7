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
// The bucket keeps its schedule when gorun, not the input, is late: once a task has
// waited for a token (refused), its start and those after it are counted on the
// schedule, however late gorun made them (a busy machine that stalled it), so that the
// starts keep to the rate over time instead of losing each delay. The starts it then
// owes come at most twice the rate (half an interval apart) until it is back on
// schedule: it catches up without a burst (with burst 1, no interval holds more than
// two starts). What it owes is forgotten once it is more
// than catchUp behind, and a start after an idle spell (no task waited) earns nothing.
type bucket struct {
	interval time.Duration
	burst    int
	tat      time.Time
	last     time.Time // the last start
	waited   bool      // a task waited for a token since the last start
	late     bool      // the last start came after its time: the next one is paced
	behind   bool      // the schedule is still behind the last start: starts are owed
}

// catchUp bounds how far behind its schedule a bucket may fall and still catch up:
// this long, or one interval if longer.
const catchUp = 2 * time.Second

func newBucket(r rate.Limit, burst int) *bucket {
	return &bucket{interval: time.Duration(float64(time.Second) / float64(r)), burst: max(burst, 1)}
}

// allowedAt returns the time from which a start is allowed.
func (b *bucket) allowedAt() time.Time {
	at := b.tat.Add(-time.Duration(b.burst-1) * b.interval)
	if b.late {
		at = later(at, b.last.Add(b.interval/2))
	}
	return at
}

// refused records that a task waits for a token.
func (b *bucket) refused() { b.waited = true }

// take counts a start at now, which allowedAt allowed.
func (b *bucket) take(now time.Time) {
	late := now.Sub(b.tat)
	if (b.waited || b.behind) && late < max(catchUp, b.interval) {
		b.tat = b.tat.Add(b.interval) // on schedule, however late now is
		b.late = late > 0
	} else {
		b.tat = later(b.tat, now).Add(b.interval)
		b.late = false
	}
	b.behind = b.tat.Before(now)
	b.last, b.waited = now, false
}

// full reports whether the bucket holds all its tokens at now and owes no start.
func (b *bucket) full(now time.Time) bool {
	if b.behind {
		return now.Sub(b.tat) >= max(catchUp, b.interval)
	}
	return !now.Before(b.tat) && !b.waited
}

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
				p.tokens.refused()
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
