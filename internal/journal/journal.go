// Package journal keeps an append-only record of finished tasks, one JSON line each,
// so that an interrupted or crashed run can be resumed without redoing finished work,
// and reports can be rendered after the fact.
//
// A journal file holds, for each run, a header line {"type":"run",...} and then one
// line {"type":"result",...} per finished task, with the Result fields inline and the
// task's identity as "key". Each line is written with a single write(2) on a file
// opened O_APPEND, so a line reaches the file the moment its task ends and survives a
// kill -9 of gorun (the kernel holds it, not gorun); only the last line can be torn,
// by a crash in the middle of that one write, and readers skip a torn last line. The
// lines are fsynced in groups, within SyncDelay of their write, so that a power cut
// loses at most the last moment of a run.
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
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

// Header starts each run in a journal.
type Header struct {
	Type      string    `json:"type"` // "run"
	RunID     string    `json:"run_id"`
	StartedAt time.Time `json:"started_at"`
	Input     string    `json:"input,omitempty"` // the task file, or "stdin"
	Hostname  string    `json:"hostname,omitempty"`
}

// Record is one finished task in a journal.
type Record struct {
	Type  string `json:"type"` // "result"
	RunID string `json:"run_id"`
	Key   string `json:"key"`
	jobs.Result
}

// SyncDelay is how long a written record may wait for its fsync(2): the records
// written within one SyncDelay share one fsync (group commit). A record is on disk at
// most SyncDelay plus the time of two fsyncs after its task ended (one may be under
// way when it is written).
const SyncDelay = 100 * time.Millisecond

// File is what a Writer writes to: an *os.File opened for appending, in production.
// Write and Sync may be called from two goroutines at once.
type File interface {
	io.Writer
	Sync() error
	Close() error
}

// Writer appends to a journal: one write(2) per record, made by Write, and an fsync(2)
// within SyncDelay of it, made by a goroutine that the Writer owns (started by
// NewWriter, stopped and waited for by Close). That goroutine only calls File.Sync; it
// never writes.
//
// Write and Close are called by one goroutine at a time (a run's fan-in). After a
// write or an fsync fails, the journal takes nothing more: every later Write returns
// the first error without writing, so that nothing follows a record the failed write
// may have torn.
type Writer struct {
	f     File
	name  string
	runID string
	buf   bytes.Buffer

	kick     chan struct{} // a record was written: fsync within SyncDelay; buffered, 1
	quit     chan struct{} // closed by Close: the syncer returns
	syncDone chan struct{} // closed by the syncer when it returns

	mu  sync.Mutex
	err error // the first write or fsync error; sticky
}

// RefusedError is a file that Create will not append to, and why. The file was not
// changed.
type RefusedError struct {
	Path   string
	Reason string
}

func (e *RefusedError) Error() string {
	return "journal " + e.Path + ": " + e.Reason + "; not touching it"
}

// Create opens the journal at path for appending, creating it with mode 0600 (it holds
// task output, which may hold secrets; an existing journal keeps its mode), and
// writes the run's header. It refuses, with a *RefusedError and without changing
// anything, a path that is a symbolic link or not a regular file, and an existing
// non-empty file that is not a gorun journal (see Check). A torn last line, left by a
// crash in the middle of a write, is cut off first, so that it does not end up in the
// middle of the journal.
func Create(path string, h Header) (*Writer, error) {
	f, err := openJournal(path)
	if err != nil {
		return nil, err
	}
	keep, size, err := check(f, path)
	if err == nil && keep < size {
		if err = f.Truncate(keep); err != nil {
			err = fmt.Errorf("journal %s: cut its torn last line: %w", path, err)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return NewWriter(f, path, h)
}

// Check tells whether Create would accept path, without creating or changing it: nil
// for a path that does not exist, an empty file and a gorun journal (whose last line
// may be torn); a *RefusedError for a symbolic link, a file that is not regular, a
// file whose first line is not a gorun run header, and one whose unfinished last line
// is not the start of a gorun record.
func Check(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return openError(path, err)
	}
	defer f.Close()
	_, _, err = check(f, path)
	return err
}

func openJournal(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, openError(path, err)
	}
	return f, nil
}

func openError(path string, err error) error {
	if errors.Is(err, syscall.ELOOP) { // O_NOFOLLOW met a symbolic link
		if st, lerr := os.Lstat(path); lerr == nil && st.Mode()&fs.ModeSymlink != 0 {
			return &RefusedError{Path: path, Reason: "is a symbolic link (name the file itself)"}
		}
	}
	return fmt.Errorf("open journal %s: %w", path, unwrapPath(err))
}

// maxHeader bounds the first line Check reads: a header is a few hundred bytes.
const maxHeader = 64 << 10

// maxTorn bounds the torn last line Check reads: a record holds a command of up to
// 64 MiB and two 4 KiB tails, escaped.
const maxTorn = 256 << 20

// check verifies that f is a regular file that is empty or a gorun journal, and
// returns the length to keep (its size, or less when its last line is torn).
func check(f *os.File, path string) (keep, size int64, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("journal %s: %w", path, unwrapPath(err))
	}
	if !st.Mode().IsRegular() {
		return 0, 0, &RefusedError{Path: path, Reason: "is not a regular file"}
	}
	size = st.Size()
	if size == 0 {
		return 0, 0, nil
	}
	first := make([]byte, min(size, maxHeader))
	if _, err := f.ReadAt(first, 0); err != nil {
		return 0, 0, fmt.Errorf("journal %s: %w", path, unwrapPath(err))
	}
	nl := bytes.IndexByte(first, '\n')
	if nl < 0 {
		if int64(len(first)) == size && isFragment(first, headerPrefix) {
			return 0, size, nil // only a header, torn by a crash
		}
		return 0, 0, &RefusedError{Path: path, Reason: "is not a gorun journal (its first line is not a gorun run header)"}
	}
	var h Header
	if json.Unmarshal(first[:nl], &h) != nil || h.Type != "run" || h.RunID == "" {
		return 0, 0, &RefusedError{Path: path, Reason: "is not a gorun journal (its first line is not a gorun run header)"}
	}
	keep, err = lastNewline(f, size)
	if err != nil {
		return 0, 0, fmt.Errorf("journal %s: %w", path, unwrapPath(err))
	}
	if keep == size {
		return size, size, nil
	}
	if size-keep > maxTorn {
		return 0, 0, &RefusedError{Path: path, Reason: "its last line is not a gorun record"}
	}
	torn := make([]byte, size-keep)
	if _, err := f.ReadAt(torn, keep); err != nil {
		return 0, 0, fmt.Errorf("journal %s: %w", path, unwrapPath(err))
	}
	if !isFragment(torn, headerPrefix) && !isFragment(torn, recordPrefix) {
		return 0, 0, &RefusedError{Path: path, Reason: "its last line is not a gorun record"}
	}
	return keep, size, nil
}

// The first bytes of every header and record line, as Writer encodes them.
const (
	headerPrefix = `{"type":"run","run_id":"`
	recordPrefix = `{"type":"result","run_id":"`
)

// isFragment reports whether b, a last line without its newline, is what a write of a
// line beginning with prefix, cut short, leaves: the start of that prefix, or the
// prefix and then JSON that is valid as far as it goes.
func isFragment(b []byte, prefix string) bool {
	if len(b) <= len(prefix) {
		return strings.HasPrefix(prefix, string(b))
	}
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return false
	}
	var v any
	err := json.Unmarshal(b, &v)
	var syn *json.SyntaxError
	return err == nil || (errors.As(err, &syn) && syn.Error() == "unexpected end of JSON input")
}

// lastNewline returns the offset just past the last newline of f, or 0.
func lastNewline(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 4096)
	for off := size; off > 0; {
		n := min(int64(len(buf)), off)
		off -= n
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return off + int64(i) + 1, nil
		}
	}
	return 0, nil
}

// NewWriter writes the run's header to f, a journal named name, and starts the
// goroutine that fsyncs it (Close stops it).
func NewWriter(f File, name string, h Header) (*Writer, error) {
	w := &Writer{
		f: f, name: name, runID: h.RunID,
		kick: make(chan struct{}, 1), quit: make(chan struct{}), syncDone: make(chan struct{}),
	}
	h.Type = "run"
	if err := w.line(h); err != nil {
		f.Close()
		return nil, err
	}
	go w.syncLoop()
	return w, nil
}

// syncLoop fsyncs the journal SyncDelay after the first record written since the last
// fsync, until Close or an fsync error. It is the only goroutine that waits on the
// timer.
func (w *Writer) syncLoop() {
	defer close(w.syncDone)
	timer := time.NewTimer(SyncDelay)
	timer.Stop()
	for {
		select {
		case <-w.kick:
		case <-w.quit:
			return
		}
		timer.Reset(SyncDelay)
		select {
		case <-timer.C:
		case <-w.quit:
			timer.Stop()
			return // Close fsyncs
		}
		select { // the records written so far are in this fsync
		case <-w.kick:
		default:
		}
		if err := w.f.Sync(); err != nil {
			w.fail(fmt.Errorf("journal %s: fsync: %w", w.name, unwrapPath(err)))
			return
		}
	}
}

// fail keeps the first error.
func (w *Writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// Err returns the first write or fsync error, or nil.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Write appends the result of a finished task, as one write(2), and has it fsynced
// within SyncDelay. Its error, after the first failure, is always that first error.
func (w *Writer) Write(r jobs.Result) error {
	if err := w.Err(); err != nil {
		return err
	}
	if err := w.line(Record{Type: "result", RunID: w.runID, Key: r.Key, Result: r}); err != nil {
		return err
	}
	select {
	case w.kick <- struct{}{}:
	default: // an fsync is due already
	}
	return nil
}

func (w *Writer) line(v any) error {
	w.buf.Reset()
	enc := json.NewEncoder(&w.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // Encode ends the line
		return fmt.Errorf("journal %s: %w", w.name, err)
	}
	if _, err := w.f.Write(w.buf.Bytes()); err != nil {
		err = fmt.Errorf("journal %s: %w", w.name, unwrapPath(err))
		w.fail(err)
		return err
	}
	return nil
}

// Close stops the fsync goroutine, fsyncs the journal (also after a failed write:
// the records before it count) and closes it. Its error is the first write or fsync
// error, if any.
func (w *Writer) Close() error {
	close(w.quit)
	<-w.syncDone
	serr := w.f.Sync()
	if serr != nil {
		w.fail(fmt.Errorf("journal %s: fsync: %w", w.name, unwrapPath(serr)))
	}
	err := w.Err()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("journal %s: %w", w.name, unwrapPath(cerr))
	}
	return err
}

// unwrapPath drops an *fs.PathError's operation and path, which the messages above
// give themselves.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
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
	return ReadRuns(path, nil, fn)
}

// ReadRuns is Read that also calls onRun, when not nil, with the header of each run,
// in order, before that run's records.
func ReadRuns(path string, onRun func(Header), fn func(Record) error) error {
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
			var h Header
			if onRun != nil && json.Unmarshal(line, &h) == nil {
				onRun(h)
			}
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
	results, _, err := LatestRuns(path)
	return results, err
}

// LatestRuns is Latest with the headers of the runs in the journal, in order.
func LatestRuns(path string) ([]jobs.Result, []Header, error) {
	var order []string
	var runs []Header
	last := make(map[string]jobs.Result)
	err := ReadRuns(path, func(h Header) { runs = append(runs, h) }, func(r Record) error {
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
	return results, runs, err
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
	for _, r := range t.EnvFrom { // the names: the value is the machine's
		h.Write([]byte(r.Name + "=from_worker:" + r.From))
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
