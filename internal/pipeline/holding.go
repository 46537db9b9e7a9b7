package pipeline

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// HoldLinger is how long Holding still gives a reason after it stopped holding the run
// back: a run held back most of the time, with a start now and then, reads as held
// back rather than flickering.
const HoldLinger = 300 * time.Millisecond

// Holding says what holds a run back now, for a progress bar. Run keeps it up to date
// (Options.Holding); String may be called from any goroutine. The zero value is ready
// to use and says nothing holds the run back.
type Holding struct {
	mu      sync.Mutex
	why     string // what a gate holds the next start back for, while a worker is free
	last    string // the last such reason, for HoldLinger after it ended
	ended   time.Time
	limiter *rate.Limiter // the run's --rate; nil: none
	allowed int           // the back-off window: tasks allowed at once ...
	workers int           // ... of the run's workers
}

// String is what holds the run back now: "waiting: load", "waiting: memfree",
// "waiting: limit api", "concurrency 4 of 8 after back-off", "waiting: rate"; "" when
// nothing does.
func (h *Holding) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	why := h.why
	if why == "" && h.last != "" && time.Since(h.ended) < HoldLinger {
		why = h.last
	}
	switch {
	case why == "back-off":
		return fmt.Sprintf("concurrency %d of %d after back-off", h.allowed, h.workers)
	case why != "":
		return "waiting: " + why
	case h.limiter != nil && h.limiter.Tokens() < 0: // a start waits for its token
		return "waiting: rate"
	}
	return ""
}

// start readies h for a run of workers paced by limiter (nil: none).
func (h *Holding) start(workers int, limiter *rate.Limiter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.limiter, h.allowed, h.workers = limiter, workers, workers
}

// held records what a gate holds the run back for now ("": nothing); the pool's
// pool.Options.Held.
func (h *Holding) held(why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if why == "" && h.why != "" {
		h.last, h.ended = h.why, time.Now()
	}
	h.why = why
}

// window records the back-off's concurrency.
func (h *Holding) window(allowed, workers int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.allowed, h.workers = allowed, workers
}
