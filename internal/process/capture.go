package process

import (
	"fmt"
	"io"
	"os"
)

// TailBytes is how much of the end of each output stream a Result keeps.
const TailBytes = 4 << 10

// SpoolMemBytes is how much of a spooled stream stays in memory before the rest goes
// to a temporary file.
const SpoolMemBytes = 256 << 10

// Capture is the writer one output stream of a task goes to. It counts the bytes and
// keeps the last TailBytes; a spooling Capture also keeps everything, in memory up to
// SpoolMemBytes and then in an unlinked temporary file, so memory stays bounded
// whatever the task prints.
//
// A Capture is written by one goroutine at a time (os/exec's copier) and read after
// the task ends. Write never fails: a full disk is reported by Err, and the task keeps
// running. The zero value keeps only the tail.
type Capture struct {
	fwd   io.Writer // optional: every write is passed on, as it comes
	spool bool
	n     int64
	ring  []byte // tail when not spooling; len grows to TailBytes, then wraps at pos
	pos   int
	mem   []byte
	file  *os.File
	err   error
}

// NewCapture returns a Capture that keeps everything when spool is set.
func NewCapture(spool bool) *Capture { return &Capture{spool: spool} }

// NewForwardingCapture returns a Capture that keeps the tail and passes every write on
// to fwd as it comes; fwd's errors are ignored (the task keeps running).
func NewForwardingCapture(fwd io.Writer) *Capture { return &Capture{fwd: fwd} }

// Write implements io.Writer.
func (c *Capture) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if c.fwd != nil {
		_, _ = c.fwd.Write(p)
	}
	if !c.spool {
		c.keepTail(p)
		return len(p), nil
	}
	if c.file == nil && len(c.mem)+len(p) <= SpoolMemBytes {
		if c.mem == nil {
			c.mem = spoolBufs.get()
		}
		c.mem = append(c.mem, p...)
		return len(p), nil
	}
	if c.err != nil {
		return len(p), nil
	}
	if c.file == nil {
		f, err := os.CreateTemp("", "gorun-output-*")
		if err != nil {
			c.err = fmt.Errorf("spool task output: %w", err)
			return len(p), nil
		}
		// Unlinked at once: a crash leaves nothing behind.
		_ = os.Remove(f.Name())
		c.file = f
		if _, err := f.Write(c.mem); err != nil {
			c.err = fmt.Errorf("spool task output: %w", err)
		}
		spoolBufs.put(c.mem)
		c.mem = nil
	}
	if _, err := c.file.Write(p); err != nil && c.err == nil {
		c.err = fmt.Errorf("spool task output: %w", err)
	}
	return len(p), nil
}

func (c *Capture) keepTail(p []byte) {
	if c.ring == nil {
		c.ring = tailBufs.get()
	}
	if len(p) >= TailBytes {
		c.ring = append(c.ring[:0], p[len(p)-TailBytes:]...)
		c.pos = 0
		return
	}
	if len(c.ring) < TailBytes {
		room := TailBytes - len(c.ring)
		if len(p) <= room {
			c.ring = append(c.ring, p...)
			return
		}
		c.ring = append(c.ring, p[:room]...)
		p = p[room:]
	}
	for len(p) > 0 {
		n := copy(c.ring[c.pos:], p)
		p = p[n:]
		c.pos = (c.pos + n) % TailBytes
	}
}

// MemSize returns about how much memory the Capture holds.
func (c *Capture) MemSize() int { return cap(c.ring) + cap(c.mem) }

// Len returns the number of bytes written.
func (c *Capture) Len() int64 { return c.n }

// Err returns the first error spooling met, if any.
func (c *Capture) Err() error { return c.err }

// Tail returns the last TailBytes written (fewer if fewer were written).
func (c *Capture) Tail() string {
	if !c.spool {
		if len(c.ring) < TailBytes || c.pos == 0 {
			return string(c.ring)
		}
		return string(c.ring[c.pos:]) + string(c.ring[:c.pos])
	}
	if c.file == nil {
		return string(c.mem[max(0, len(c.mem)-TailBytes):])
	}
	size := c.n
	if st, err := c.file.Stat(); err == nil {
		size = st.Size()
	}
	off := max(0, size-TailBytes)
	buf := make([]byte, size-off)
	n, _ := c.file.ReadAt(buf, off)
	return string(buf[:n])
}

// WriteTo copies everything a spooling Capture kept to w.
func (c *Capture) WriteTo(w io.Writer) (int64, error) {
	if c.file == nil {
		n, err := w.Write(c.mem)
		return int64(n), err
	}
	return io.Copy(w, io.NewSectionReader(c.file, 0, 1<<62))
}

// Close releases the temporary file, if any, and hands the Capture's buffers on to
// later Captures. The Capture is empty afterwards.
func (c *Capture) Close() error {
	spoolBufs.put(c.mem)
	tailBufs.put(c.ring)
	c.mem, c.ring, c.pos = nil, nil, 0
	if c.file == nil {
		return nil
	}
	err := c.file.Close()
	c.file = nil
	return err
}

// freeList keeps buffers for reuse, up to a number, so that a run allocates capture
// buffers for the tasks that run at once and not again for every task. Unlike a
// sync.Pool it survives garbage collections, which a run of short tasks causes several
// times a second. It is safe for concurrent use.
type freeList struct {
	bufs    chan []byte
	size    int // a new buffer's capacity
	maxSize int // a larger buffer is left to the garbage collector
}

func newFreeList(n, size, maxSize int) *freeList {
	return &freeList{bufs: make(chan []byte, n), size: size, maxSize: maxSize}
}

// get returns an empty buffer: a kept one, or a new one of the list's size.
func (l *freeList) get() []byte {
	select {
	case b := <-l.bufs:
		return b
	default:
		return make([]byte, 0, l.size)
	}
}

// put keeps b for a later get, when it is not too large and the list is not full.
func (l *freeList) put(b []byte) {
	if b == nil || cap(b) > l.maxSize {
		return
	}
	select {
	case l.bufs <- b[:0]:
	default:
	}
}

// The buffers of Captures: a tail's ring is TailBytes; a spooled stream's memory
// starts small (most tasks print little) and is kept while it stays under 64 KiB.
var (
	tailBufs  = newFreeList(256, TailBytes, TailBytes)
	spoolBufs = newFreeList(256, 512, 64<<10)
)
