// Package progress draws a live progress bar on a terminal while tasks run, without
// ever mixing it into the tasks' own output.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/gorun/gorun/internal/jobs"
)

// Interval is how often the bar is redrawn: updates are counted as they come and
// drawn at most this often, so a fast run pays nothing per task for its bar.
const Interval = 150 * time.Millisecond

// DefaultWidth is the width of a terminal whose size cannot be read.
const DefaultWidth = 80

// Bar is a progress bar on a terminal: done out of total (a count and a rate when the
// total is not known, as for a stream), succeeded and failed counts, what holds the run
// back now if anything does ("waiting: memfree"), tasks per second and, with a total,
// the time left. It always fits on one line of the terminal: its width is read at
// every redraw, so it follows a resize, and what does not fit is left out (the bar
// itself first, then the time left, the rate, what holds the run back, the counts), so
// that the terminal never wraps it and erasing it leaves nothing behind.
//
// One goroutine, started by Start and ended by Stop, draws it. Add may be called from
// any goroutine. Task output must reach the terminal through Wrap, which erases the
// bar before each write; the bar comes back at the next redraw.
type Bar struct {
	mu    sync.Mutex // the terminal: held while the bar is drawn or output written
	w     io.Writer
	width func() int // the terminal's columns
	total int        // < 0: unknown
	held  func() string
	start time.Time
	drawn bool

	done, ok, failed atomic.Int64

	stop     chan struct{}
	finished chan struct{}
}

// Start draws a bar on w (the terminal's stderr) for total tasks, or for an unknown
// number when total < 0, and starts the goroutine that redraws it. The bar's width
// is w's terminal's, when w is one. held, when not nil, says at each redraw what holds
// the run back ("" when nothing does); it is called on the drawing goroutine.
func Start(w io.Writer, total int, held func() string) *Bar {
	return start(w, total, terminalWidth(w), held)
}

func start(w io.Writer, total int, width func() int, held func() string) *Bar {
	if held == nil {
		held = func() string { return "" }
	}
	b := &Bar{w: w, width: width, total: total, held: held, start: time.Now(), stop: make(chan struct{}), finished: make(chan struct{})}
	go b.run()
	return b
}

// terminalWidth returns a function that reads the width of w's terminal, or gives
// DefaultWidth when w is not one.
func terminalWidth(w io.Writer) func() int {
	f, ok := w.(*os.File)
	return func() int {
		if ok {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
				return cols
			}
		}
		return DefaultWidth
	}
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
	held := b.held() // before the terminal is locked: it may take locks of its own
	b.mu.Lock()
	defer b.mu.Unlock()
	line := Line(b.total, int(b.done.Load()), int(b.ok.Load()), int(b.failed.Load()), time.Since(b.start), held, b.width())
	_, _ = io.WriteString(b.w, "\r"+line+"\x1b[K") // the rest of the line erased
	b.drawn = true
}

// Line returns the bar for done tasks of total (< 0: unknown), ok and failed of them,
// after elapsed, while held holds the run back ("": nothing), in fewer than cols
// columns: "[=====>    ] (5/12) 4 ok, 1 failed, waiting: memfree, 3.2 tasks/s, 2s
// left". What does not fit is left out: the bar itself first (it needs 10 columns),
// then the time left, the rate, held and the counts.
func Line(total, done, ok, failed int, elapsed time.Duration, held string, cols int) string {
	room := cols - 1 // never the last column: some terminals wrap there
	count := fmt.Sprintf("(%d/%d)", done, total)
	if total < 0 {
		count = fmt.Sprintf("(%d)", done)
	}
	parts := []string{count, fmt.Sprintf("%d ok, %d failed", ok, failed)}
	if held != "" {
		parts = append(parts, held)
	}
	if s := elapsed.Seconds(); s > 0 {
		parts = append(parts, fmt.Sprintf("%.1f tasks/s", float64(done)/s))
	}
	if total > 0 && done > 0 && done < total {
		left := time.Duration(float64(elapsed) * float64(total-done) / float64(done))
		parts = append(parts, left.Round(time.Second).String()+" left")
	}
	for len(parts) > 0 {
		text := strings.Join(parts, ", ")
		text = strings.Replace(text, ", ", " ", 1) // "(5/12) 4 ok, …"
		if utf8.RuneCountInString(text) <= room {
			barWidth := min(30, room-utf8.RuneCountInString(text)-3)
			if total <= 0 || barWidth < 10 {
				return text
			}
			filled := barWidth * done / total
			bar := strings.Repeat("=", filled)
			if filled < barWidth {
				bar += ">" + strings.Repeat(" ", barWidth-filled-1)
			}
			return "[" + bar + "] " + text
		}
		parts = parts[:len(parts)-1]
	}
	return ""
}

// erase removes the bar from the terminal; b.mu is held.
func (b *Bar) erase() {
	if b.drawn {
		_, _ = io.WriteString(b.w, "\r\x1b[K")
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
