package process

import (
	"bytes"
	"strings"
	"testing"
)

func TestCaptureTail(t *testing.T) {
	for _, spool := range []bool{false, true} {
		c := NewCapture(spool)
		var all strings.Builder
		for i := 0; i < 3000; i++ {
			s := strings.Repeat(string(rune('a'+i%26)), i%7+1)
			all.WriteString(s)
			_, _ = c.Write([]byte(s))
		}
		want := all.String()
		if got := c.Tail(); got != want[len(want)-TailBytes:] {
			t.Errorf("spool=%v: tail differs from the last %d bytes", spool, TailBytes)
		}
		if c.Len() != int64(len(want)) {
			t.Errorf("spool=%v: got length %d, want %d", spool, c.Len(), len(want))
		}
		if spool {
			var b strings.Builder
			_, _ = c.WriteTo(&b)
			if b.String() != want {
				t.Error("spooled output differs from what was written")
			}
		}
		c.Close()
	}
}

func TestCaptureSpillsToDisk(t *testing.T) {
	c := NewCapture(true)
	defer c.Close()
	chunk := strings.Repeat("z", 100<<10)
	for i := 0; i < 10; i++ {
		_, _ = c.Write([]byte(chunk))
	}
	if c.MemSize() > SpoolMemBytes {
		t.Errorf("holds %d bytes in memory after 1 MB, want at most %d", c.MemSize(), SpoolMemBytes)
	}
	var b strings.Builder
	_, _ = c.WriteTo(&b)
	if b.Len() != 10*len(chunk) {
		t.Errorf("got %d bytes back, want %d", b.Len(), 10*len(chunk))
	}
}

// TestCaptureReusesBuffers: once a run has warmed up, a Capture costs its own struct
// and the tail string it hands out, whatever the task printed (within the sizes
// kept), not buffers sized to the output.
func TestCaptureReusesBuffers(t *testing.T) {
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 1<<10) // 16 KiB
	for _, spool := range []bool{false, true} {
		allocs := testing.AllocsPerRun(200, func() {
			c := NewCapture(spool)
			_, _ = c.Write(chunk[:100])
			_, _ = c.Write(chunk)
			_ = c.Tail()
			_ = c.Close()
		})
		if allocs > 2 {
			t.Errorf("spool %v: got %.1f allocations per capture, want at most 2 (the Capture and its tail)", spool, allocs)
		}
	}
}
