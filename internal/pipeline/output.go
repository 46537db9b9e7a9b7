package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

// Output says what becomes of the tasks' own output.
type Output string

// The output modes.
const (
	// Grouped prints each task's stdout, then its stderr, whole, when the task ends:
	// two tasks' output never interleave.
	Grouped Output = "grouped"
	// Line prints whole lines as tasks write them; a line is never split between tasks.
	Line Output = "line"
	// Tag is Line with each line prefixed by the task id and a tab.
	Tag Output = "tag"
	// JSONL prints one JSON result per task on stdout, and nothing else.
	JSONL Output = "jsonl"
	// None prints no task output; results still keep the tails.
	None Output = "none"
)

// ParseOutput checks an output mode name.
func ParseOutput(s string) (Output, error) {
	switch o := Output(s); o {
	case Grouped, Line, Tag, JSONL, None:
		return o, nil
	}
	return "", fmt.Errorf("invalid output mode %q: want grouped, line, tag, jsonl or none", s)
}

// MaxLineBytes bounds a line that the line and tag modes hold while waiting for its
// end; a longer line is printed in pieces of this size, each ended by a newline.
const MaxLineBytes = 1 << 20

// lockedWriter serialises writes from many goroutines to w and keeps the first error.
type lockedWriter struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

// write writes the pieces together, under one lock.
func (l *lockedWriter) write(pieces ...[]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range pieces {
		if l.err != nil {
			return
		}
		if len(p) > 0 {
			_, l.err = l.w.Write(p)
		}
	}
}

// Err returns the first write error.
func (l *lockedWriter) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// lineWriter passes whole lines of one stream on to dst, each with prefix, in one
// write per Write call however many lines it holds. It is written by one goroutine at
// a time.
type lineWriter struct {
	dst    *lockedWriter
	prefix []byte
	buf    []byte // the start of a line whose end has not come yet
	out    []byte // scratch for prefixed lines
}

var newline = []byte{'\n'}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	if last := bytes.LastIndexByte(p, '\n'); last >= 0 {
		w.writeLines(p[:last+1])
		p = p[last+1:]
	}
	for len(p) > 0 { // the start of a line
		room := MaxLineBytes - len(w.buf)
		if len(p) < room {
			w.buf = append(w.buf, p...)
			break
		}
		w.buf = append(w.buf, p[:room]...)
		p = p[room:]
		w.dst.write(w.prefix, w.buf, newline)
		w.buf = w.buf[:0]
	}
	return n, nil
}

// writeLines writes the held line start and lines, which end with a newline.
func (w *lineWriter) writeLines(lines []byte) {
	if len(w.prefix) == 0 {
		w.dst.write(w.buf, lines)
		w.buf = w.buf[:0]
		return
	}
	out := append(w.out[:0], w.prefix...)
	out = append(out, w.buf...)
	w.buf = w.buf[:0]
	for len(lines) > 0 {
		i := bytes.IndexByte(lines, '\n')
		out = append(out, lines[:i+1]...)
		lines = lines[i+1:]
		if len(lines) > 0 {
			out = append(out, w.prefix...)
		}
	}
	w.dst.write(out)
	if cap(out) <= 256<<10 {
		w.out = out
	}
}

// Flush prints a last line that has no newline, ending it with one.
func (w *lineWriter) Flush() {
	if len(w.buf) > 0 {
		w.dst.write(w.prefix, w.buf, newline)
		w.buf = w.buf[:0]
	}
}

// printer writes finished tasks' output and results, from the fan-in goroutine, in
// the order tasks end or, with keep-order, in input order. In keep-order mode it holds
// tasks that ended before their turn: in memory up to heldMemBytes, and beyond that in
// an unlinked temporary file, so memory stays bounded however long one task holds up
// the rest.
type printer struct {
	mode      Output
	keepOrder bool
	stdout    *lockedWriter
	stderr    *lockedWriter
	emit      func(jobs.Result)

	next    int           // keep-order: the index whose turn it is
	held    map[int]*held // keep-order: tasks waiting for their turn
	heldMem int           // bytes of memory the held tasks hold
	spill   *os.File      // keep-order: where held tasks go beyond heldMemBytes
	spillAt int64         // the spill file's end
	jsonBuf bytes.Buffer  // JSONL: the line being written
}

// heldMemBytes bounds the memory of the tasks keep-order holds back.
const heldMemBytes = 16 << 20

type held struct {
	r   jobs.Result
	out *outcome // nil when spilled
	// where the spilled record is: result JSON, then stdout, then stderr
	off                    int64
	resLen, outLen, errLen int64
}

func newPrinter(opts *Options, emit func(jobs.Result)) *printer {
	return &printer{
		mode: opts.Output, keepOrder: opts.KeepOrder, emit: emit, next: 1,
		stdout: &lockedWriter{w: opts.Stdout}, stderr: &lockedWriter{w: opts.Stderr},
		held: make(map[int]*held),
	}
}

// spools reports whether tasks' output is kept whole to be printed when they end.
func (p *printer) spools() bool {
	return p.mode == Grouped || (p.keepOrder && (p.mode == Line || p.mode == Tag))
}

// streams reports whether tasks' output is printed line by line as it comes.
func (p *printer) streams() bool { return !p.keepOrder && (p.mode == Line || p.mode == Tag) }

// captures returns the writers one task's stdout and stderr go to, and a function to
// call once the task's process is done; tag prefixes its lines in the Tag mode.
func (p *printer) captures(tag string) (stdout, stderr *process.Capture, done func()) {
	if !p.streams() {
		return process.NewCapture(p.spools()), process.NewCapture(p.spools()), func() {}
	}
	var prefix []byte
	if p.mode == Tag {
		prefix = []byte(tag + "\t")
	}
	ow := &lineWriter{dst: p.stdout, prefix: prefix}
	ew := &lineWriter{dst: p.stderr, prefix: prefix}
	return process.NewForwardingCapture(ow), process.NewForwardingCapture(ew), func() { ow.Flush(); ew.Flush() }
}

// add takes a finished (or never started) task. o may be nil.
func (p *printer) add(r jobs.Result, o *outcome) {
	if !p.keepOrder {
		p.print(r, o)
		return
	}
	h := &held{r: r, out: o}
	size := resultSize(&r) + outcomeMem(o)
	if r.Index != p.next && p.heldMem+size > heldMemBytes {
		if err := p.spillHeld(h); err == nil {
			size = 0
		}
	}
	p.heldMem += size
	p.held[r.Index] = h
	p.drain()
}

// drain prints the held tasks whose turn has come.
func (p *printer) drain() {
	for {
		h, ok := p.held[p.next]
		if !ok {
			return
		}
		delete(p.held, p.next)
		p.next++
		if h.out == nil && h.resLen > 0 {
			p.printSpilled(h)
			continue
		}
		p.heldMem -= resultSize(&h.r) + outcomeMem(h.out)
		p.print(h.r, h.out)
	}
}

// finish prints whatever is still held, in index order. Normally nothing is.
func (p *printer) finish() {
	for len(p.held) > 0 {
		if _, ok := p.held[p.next]; !ok {
			p.next++
			continue
		}
		p.drain()
	}
	if p.spill != nil {
		p.spill.Close()
		p.spill = nil
	}
}

func resultSize(r *jobs.Result) int {
	return 256 + len(r.ID) + len(r.Command) + len(r.StdoutTail) + len(r.StderrTail) + len(r.Error)
}

func outcomeMem(o *outcome) int {
	if o == nil || o.stdout == nil {
		return 0
	}
	return o.stdout.MemSize() + o.stderr.MemSize()
}

// print writes one task's output as the mode wants and emits its result.
func (p *printer) print(r jobs.Result, o *outcome) {
	if o != nil && o.stdout != nil {
		p.writeOutput(o.tag, o.stdout, o.stderr)
		o.close()
	}
	p.emitResult(r)
}

func (p *printer) writeOutput(tag string, stdout, stderr io.WriterTo) {
	switch {
	case p.mode == Grouped:
		p.stdout.copyFrom(stdout)
		p.stderr.copyFrom(stderr)
	case p.spools(): // line or tag, kept for keep-order
		var prefix []byte
		if p.mode == Tag {
			prefix = []byte(tag + "\t")
		}
		for _, s := range []struct {
			src io.WriterTo
			dst *lockedWriter
		}{{stdout, p.stdout}, {stderr, p.stderr}} {
			lw := &lineWriter{dst: s.dst, prefix: prefix}
			_, _ = s.src.WriteTo(lw)
			lw.Flush()
		}
	}
}

// copyFrom writes everything src holds, as one piece of output.
func (l *lockedWriter) copyFrom(src io.WriterTo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		_, l.err = src.WriteTo(l.w)
	}
}

func (p *printer) emitResult(r jobs.Result) {
	if p.mode == JSONL {
		p.jsonBuf.Reset()
		enc := json.NewEncoder(&p.jsonBuf)
		enc.SetEscapeHTML(false)
		if enc.Encode(r) == nil { // Encode ends the line
			p.stdout.write(p.jsonBuf.Bytes())
		}
	}
	p.emit(r)
}

// spillHeld moves a held task's result and output to the spill file.
func (p *printer) spillHeld(h *held) error {
	if p.spill == nil {
		f, err := os.CreateTemp("", "gorun-keep-order-*")
		if err != nil {
			return err
		}
		_ = os.Remove(f.Name()) // unlinked: nothing is left behind
		p.spill = f
	}
	rec := spillRecord{Result: h.r, Key: h.r.Key, DurationNS: int64(h.r.Duration), Tag: h.r.ID}
	if h.out != nil {
		rec.Tag = h.out.tag
	}
	res, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	w := &countingWriter{w: &offsetWriter{f: p.spill, off: p.spillAt}}
	if _, err := w.Write(res); err != nil {
		return err
	}
	h.off, h.resLen = p.spillAt, w.n
	if o := h.out; o != nil && o.stdout != nil && p.spools() {
		if _, err := o.stdout.WriteTo(w); err != nil {
			return err
		}
		h.outLen = w.n - h.resLen
		if _, err := o.stderr.WriteTo(w); err != nil {
			return err
		}
		h.errLen = w.n - h.resLen - h.outLen
	}
	p.spillAt += w.n
	if h.out != nil {
		h.out.close()
		h.out = nil
	}
	return nil
}

func (p *printer) printSpilled(h *held) {
	var rec spillRecord
	buf := make([]byte, h.resLen)
	if _, err := p.spill.ReadAt(buf, h.off); err == nil {
		_ = json.Unmarshal(buf, &rec)
	}
	r := rec.Result
	r.Key, r.Duration = rec.Key, jobs.Seconds(rec.DurationNS)
	if h.outLen+h.errLen > 0 {
		stdout := io.NewSectionReader(p.spill, h.off+h.resLen, h.outLen)
		stderr := io.NewSectionReader(p.spill, h.off+h.resLen+h.outLen, h.errLen)
		p.writeOutput(rec.Tag, sectionWriterTo{stdout}, sectionWriterTo{stderr})
	}
	p.emitResult(r)
	if len(p.held) == 0 { // nothing spilled is waiting: start the file afresh
		_ = p.spill.Truncate(0)
		p.spillAt = 0
	}
}

// spillRecord is a held result as the spill file keeps it: every field of a
// jobs.Result, also those its public JSON leaves out (Key, the task's identity in the
// journal, without which a resumed run would run the task again) or rounds (the
// duration, which it writes in seconds), so that a result comes back exactly as it
// went.
type spillRecord struct {
	jobs.Result
	Key        string `json:"key"`
	DurationNS int64  `json:"duration_ns"`
	Tag        string `json:"tag"` // of its output lines, in the Tag mode
}

type sectionWriterTo struct{ r *io.SectionReader }

func (s sectionWriterTo) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, s.r) }

type offsetWriter struct {
	f   *os.File
	off int64
}

func (o *offsetWriter) Write(p []byte) (int, error) {
	n, err := o.f.WriteAt(p, o.off)
	o.off += int64(n)
	return n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
