// Package progress draws a live progress bar on a terminal while tasks run, without
// ever mixing it into the tasks' own output.
package progress

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/gorun/gorun/internal/jobs"
)

// Interval is how often the bar is redrawn: updates are counted as they come and
// drawn at most this often, so a fast run pays nothing per task for its bar.
const Interval = 150 * time.Millisecond

// Bar is a progress bar on a terminal: done out of total (a count and a rate when the
// total is not known, as for a stream), succeeded and failed counts, tasks per second
// and, with a total, the time left.
//
// One goroutine, started by Start and ended by Stop, draws it. Add may be called from
// any goroutine. Task output must reach the terminal through Wrap, which erases the
// bar before each write; the bar comes back at the next redraw.
type Bar struct {
	mu    sync.Mutex // the terminal: held while the bar is drawn or output written
	bar   *progressbar.ProgressBar
	drawn bool

	done, ok, failed atomic.Int64

	stop     chan struct{}
	finished chan struct{}
}

// Start draws a bar on w (the terminal's stderr) for total tasks, or for an unknown
// number when total < 0, and starts the goroutine that redraws it.
func Start(w io.Writer, total int) *Bar {
	b := &Bar{stop: make(chan struct{}), finished: make(chan struct{})}
	b.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetItsString("tasks"),
		progressbar.OptionShowIts(),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(total >= 0),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetSpinnerChangeInterval(0), // no goroutine of its own: ours redraws
		progressbar.OptionEnableColorCodes(false),
	)
	go b.run()
	return b
}

// Add counts a finished task.
func (b *Bar) Add(r jobs.Result) {
	b.done.Add(1)
	switch r.Status {
	case jobs.Succeeded:
		b.ok.Add(1)
	case jobs.Failed, jobs.TimedOut:
		b.failed.Add(1)
	}
}

func (b *Bar) run() {
	defer close(b.finished)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
			b.draw()
		}
	}
}

func (b *Bar) draw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.bar.Set64(b.done.Load())
	b.bar.Describe(fmt.Sprintf("%d ok, %d failed", b.ok.Load(), b.failed.Load()))
	b.drawn = true
}

// erase removes the bar from the terminal; b.mu is held.
func (b *Bar) erase() {
	if b.drawn {
		_ = b.bar.Clear()
		b.drawn = false
	}
}

// Stop ends the redrawing and erases the bar, so that what follows (the summary)
// starts on a clean line. It waits for the drawing goroutine.
func (b *Bar) Stop() {
	close(b.stop)
	<-b.finished
	b.mu.Lock()
	defer b.mu.Unlock()
	b.erase()
	_ = b.bar.Exit()
}

// Wrap returns a writer to the terminal that erases the bar before each write.
func (b *Bar) Wrap(w io.Writer) io.Writer { return &wrapped{b: b, w: w} }

type wrapped struct {
	b *Bar
	w io.Writer
}

func (x *wrapped) Write(p []byte) (int, error) {
	x.b.mu.Lock()
	defer x.b.mu.Unlock()
	x.b.erase()
	return x.w.Write(p)
}
