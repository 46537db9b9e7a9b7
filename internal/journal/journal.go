// Package journal keeps an append-only record of finished tasks, one JSON line each,
// so that an interrupted or crashed run can be resumed without redoing finished work,
// and reports can be rendered after the fact.
//
// A journal file holds, for each run, a header line {"type":"run",...} and then one
// line {"type":"result",...} per finished task, with the Result fields inline and the
// task's identity as "key". Each line is written with a single write(2) on a file
// opened O_APPEND, so a line reaches the file the moment its task ends and survives a
// kill -9 of gorun (the kernel holds it, not gorun); only the last line can be torn,
// by a crash in the middle of that one write, and readers skip a torn last line.
package journal

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

// Header starts each run in a journal.
type Header struct {
	Type      string    `json:"type"` // "run"
	RunID     string    `json:"run_id"`
	StartedAt time.Time `json:"started_at"`
	Input     string    `json:"input,omitempty"` // the task file, or "stdin"
}

// Record is one finished task in a journal.
type Record struct {
	Type  string `json:"type"` // "result"
	RunID string `json:"run_id"`
	Key   string `json:"key"`
	jobs.Result
}

// Writer appends to a journal. It is used by one goroutine at a time.
type Writer struct {
	f     *os.File
	runID string
	buf   bytes.Buffer
}

// Create opens path for appending (creating it, mode 0644) and writes the run's header.
// A torn last line, left by a crash in the middle of a write, is cut off first, so
// that it does not end up in the middle of the journal.
func Create(path string, h Header) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if err := cutTornLine(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	w := &Writer{f: f, runID: h.RunID}
	h.Type = "run"
	if err := w.line(h); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// cutTornLine truncates f after its last newline.
func cutTornLine(f *os.File) error {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	end := st.Size()
	buf := make([]byte, 4096)
	for off := end; off > 0; {
		n := int64(len(buf))
		if off < n {
			n = off
		}
		off -= n
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			if keep := off + int64(i) + 1; keep < end {
				return f.Truncate(keep)
			}
			return nil
		}
	}
	return f.Truncate(0) // one torn line and nothing else
}

// Write appends the result of a finished task.
func (w *Writer) Write(r jobs.Result) error {
	return w.line(Record{Type: "result", RunID: w.runID, Key: r.Key, Result: r})
}

func (w *Writer) line(v any) error {
	w.buf.Reset()
	enc := json.NewEncoder(&w.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // Encode ends the line
		return fmt.Errorf("journal %s: %w", w.f.Name(), err)
	}
	if _, err := w.f.Write(w.buf.Bytes()); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// Close flushes the journal to disk and closes it.
func (w *Writer) Close() error {
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ErrCorrupt marks a journal line that is not a record, before the last line.
var ErrCorrupt = errors.New("corrupt journal")

// Read calls fn for each record of the journal at path, in order. A torn last line
// (one that does not end with a newline, or does not parse) is skipped; a bad line
// before it is an error wrapping ErrCorrupt that names the line. A journal that does
// not exist has no records.
func Read(path string, fn func(Record) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var bad error
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && bad != nil {
			return bad // a bad line with more after it
		}
		if err == io.EOF {
			return nil // a last line without its newline is torn: skip it
		}
		if err != nil {
			return fmt.Errorf("read journal %s: %w", path, err)
		}
		var probe struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(line, &probe) != nil || (probe.Type != "run" && probe.Type != "result") {
			bad = fmt.Errorf("%w: %s:%d: not a journal record", ErrCorrupt, path, n)
			continue
		}
		if probe.Type != "result" {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			bad = fmt.Errorf("%w: %s:%d: %v", ErrCorrupt, path, n, err)
			continue
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// Succeeded returns the keys of the tasks that succeeded in the journal at path.
func Succeeded(path string) (map[string]bool, error) {
	done := make(map[string]bool)
	err := Read(path, func(r Record) error {
		if r.Status == jobs.Succeeded && r.Key != "" {
			done[r.Key] = true
		}
		return nil
	})
	return done, err
}

// Latest returns the last result of each task in the journal, in the order the tasks
// first appear: the state of a batch across its resumed runs.
func Latest(path string) ([]jobs.Result, error) {
	var order []string
	last := make(map[string]jobs.Result)
	err := Read(path, func(r Record) error {
		key := r.Key
		if key == "" {
			key = r.RunID + "/" + strconv.Itoa(r.Index)
		}
		if _, seen := last[key]; !seen {
			order = append(order, key)
		}
		last[key] = r.Result
		return nil
	})
	results := make([]jobs.Result, len(order))
	for i, k := range order {
		results[i] = last[k]
	}
	return results, err
}

// Keyer gives tasks their identity in a journal, so that a resumed run knows which
// tasks already succeeded, whatever their order in the input:
//   - a task whose id the input gave: the id and a hash of its resolved command,
//     environment and working directory (as an absolute path: see
//     jobs.Task.IdentityDir), so that an edited task runs again;
//   - any other task (a line of input, say): the hash, and how many times the same
//     command came before it in this input, so that a command given twice runs twice.
//
// A Keyer is used by one goroutine at a time; it remembers each distinct command.
type Keyer struct {
	seen map[[16]byte]int
}

// Key returns t's identity.
func (k *Keyer) Key(t *jobs.Task) string {
	h := sha256.New()
	for _, a := range t.Args(0) {
		h.Write([]byte(a))
		h.Write([]byte{0})
	}
	h.Write([]byte{1})
	for _, e := range t.Env {
		h.Write([]byte(e))
		h.Write([]byte{0})
	}
	h.Write([]byte{1})
	h.Write([]byte(t.IdentityDir()))
	var sum [16]byte
	copy(sum[:], h.Sum(nil))
	hash := hex.EncodeToString(sum[:])
	if t.Named {
		return t.ID + ":" + hash
	}
	if k.seen == nil {
		k.seen = make(map[[16]byte]int)
	}
	k.seen[sum]++
	return hash + "#" + strconv.Itoa(k.seen[sum])
}
