package input

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/gorun/gorun/internal/jobs"
	"golang.org/x/time/rate"
)

// JSONStream runs a task file of plain JSON as it reads it: each task is read,
// checked and yielded as the run asks for it, so that the first task of a file of a
// million starts at once, and the tasks not yet started wait in the file, not in
// memory. OpenJSONStream streams only a file whose tasks need nothing of the whole
// file: no `needs`, `priority` or `estimate` (they order tasks by the whole graph),
// and every run-wide key (`defaults`, `workers`, `rate`, `limits`) before `tasks`.
//
// A bad task met on the way ends the source with its *InputError (file, line, column
// and key, as the whole-file check names them): the run starts nothing more, lets
// the running tasks end, and exits 2. `gorun validate` checks the whole file first.
type JSONStream struct {
	name   string
	fh     *os.File
	base   int64 // bytes of the file before the decoder's input: a byte-order mark
	dec    *jsontext.Decoder
	f      *File // the run-wide settings; no tasks
	r      *Resolver
	elem   *jsontext.Decoder // reads one task's bytes
	elemR  bytes.Reader
	n      int                 // tasks in the file
	index  int                 // tasks yielded
	seen   map[string]streamID // id -> where it was first used
	done   bool
	closed atomic.Bool
}

// streamID is where a task's id was first used: its 0-based position and offset.
type streamID struct {
	index  int32
	offset int64
}

// streamKeys are the keys of a task that need the whole file before any task starts:
// needs and the order of tasks, a matrix's combinations, and resources and labels
// checked against the run's capacity.
var streamKeys = [][]byte{[]byte(`"needs"`), []byte(`"priority"`), []byte(`"estimate"`),
	[]byte(`"matrix"`), []byte(`"resources"`), []byte(`"on"`)}

// OpenJSONStream opens the task file at path as a JSONStream, with its run-wide
// settings read, when it can run as it is read (see JSONStream); ok is false (and the
// error nil) when it cannot, or when its start is not plain JSON or has a problem:
// ReadFile then reads it whole, and names any problem.
func OpenJSONStream(path string, s jobs.Settings) (src *JSONStream, ok bool, err error) {
	fh, err := Open(path)
	if err != nil {
		return nil, false, err
	}
	defer func() {
		if !ok {
			fh.Close()
		}
	}()
	if !streamable(fh) {
		return nil, false, nil
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return nil, false, nil
	}
	n, ok := countTasks(fh)
	if !ok {
		return nil, false, nil
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return nil, false, nil
	}
	br := bufio.NewReaderSize(fh, 64<<10)
	j := &JSONStream{name: path, fh: fh, seen: map[string]streamID{}, n: n}
	if b, _ := br.Peek(len(bom)); bytes.Equal(b, bom) {
		_, _ = br.Discard(len(bom))
		j.base = int64(len(bom))
	}
	j.dec = jsontext.NewDecoder(br)
	j.elem = jsontext.NewDecoder(&j.elemR)
	if j.f, ok = j.head(); !ok {
		return nil, false, nil
	}
	j.r = NewResolver(j.f, s)
	return j, true, nil
}

// streamable reports whether the file r holds can run as it is read: it starts with
// `{`, none of streamKeys appears in it (a cautious byte scan, strings included), and it ends with
// `]}`, so that its last key is `tasks`, the one list among the run-wide keys.
func streamable(r io.Reader) bool {
	const overlap = 16
	buf := make([]byte, 1<<20)
	var tail []byte
	carry := 0
	for {
		n, err := io.ReadFull(r, buf[carry:])
		chunk := buf[:carry+n]
		if first := bytes.TrimLeft(trimBOM(chunk), " \t\r\n"); tail == nil && carry == 0 && (len(first) == 0 || first[0] != '{') {
			return false // not a JSON object: YAML, most likely
		}
		for _, k := range streamKeys {
			if bytes.Contains(chunk, k) {
				return false
			}
		}
		if t := bytes.TrimRight(chunk, " \t\r\n"); len(t) > 0 {
			tail = append(tail[:0], t[max(0, len(t)-overlap):]...)
		}
		if err != nil {
			break
		}
		carry = copy(buf, chunk[len(chunk)-overlap:])
	}
	tail = bytes.TrimSuffix(tail, []byte("}"))
	return bytes.HasSuffix(bytes.TrimRight(tail, " \t\r\n"), []byte("]"))
}

// countTasks reads the JSON r holds, checking only its syntax (one object, no key
// twice in an object, valid UTF-8), and returns the number of items of its `tasks`;
// false when it is not plain JSON. With it, a stream meets no syntax error on the
// way, and its length is known.
func countTasks(r io.Reader) (n int, ok bool) {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, _ := br.Peek(len(bom)); bytes.Equal(b, bom) {
		_, _ = br.Discard(len(bom))
	}
	dec := jsontext.NewDecoder(br)
	jr := &jsonReader{dec: dec}
	if !jr.delim('{') {
		return 0, false
	}
	for dec.PeekKind() == '"' {
		key, _ := jr.str()
		if key != "tasks" {
			if dec.SkipValue() != nil {
				return 0, false
			}
			continue
		}
		if !jr.delim('[') {
			return 0, false
		}
		for dec.PeekKind() != ']' {
			if dec.SkipValue() != nil {
				return 0, false
			}
			n++
		}
		if !jr.delim(']') {
			return 0, false
		}
	}
	if !jr.delim('}') {
		return 0, false
	}
	_, err := dec.ReadToken()
	return n, errors.Is(err, io.EOF)
}

// head reads the run-wide keys up to the start of the tasks list, and checks them.
func (j *JSONStream) head() (*File, bool) {
	jr := &jsonReader{dec: j.dec, p: &fileParser{name: j.name}}
	if !jr.delim('{') {
		return nil, false
	}
	var raw rawFile
	for j.dec.PeekKind() == '"' {
		key, _ := jr.str()
		if key == "tasks" {
			if !jr.delim('[') {
				return nil, false
			}
			f, err := jr.p.head(&raw)
			return f, err == nil
		}
		if !jr.headKey(key, &raw) {
			return nil, false
		}
	}
	return nil, false
}

// Next implements Source: the next task of the file, checked; io.EOF at the end of
// the tasks; an *InputError for a bad task, after which the source ends.
func (j *JSONStream) Next() (jobs.Task, error) {
	if j.done || j.closed.Load() {
		return jobs.Task{}, io.EOF
	}
	t, err := j.next()
	if err != nil {
		j.done = true
		if j.closed.Load() {
			return jobs.Task{}, io.EOF
		}
	}
	return t, err
}

func (j *JSONStream) next() (jobs.Task, error) {
	if j.dec.PeekKind() == ']' {
		j.done = true
		jr := &jsonReader{dec: j.dec}
		if !jr.delim(']') || !jr.delim('}') {
			return jobs.Task{}, j.errAtOffset(j.dec.InputOffset(), "", "want the end of the file after the tasks")
		}
		if _, err := j.dec.ReadToken(); !errors.Is(err, io.EOF) {
			return jobs.Task{}, j.errAtOffset(j.dec.InputOffset(), "", "want the end of the file after the tasks")
		}
		return jobs.Task{}, io.EOF
	}
	v, err := j.dec.ReadValue()
	if err != nil {
		return jobs.Task{}, j.syntaxError(err)
	}
	start := j.dec.InputOffset() - int64(len(v))
	i := j.index
	j.elemR.Reset(v)
	j.elem.Reset(&j.elemR)
	jr := &jsonReader{dec: j.elem, p: &fileParser{name: j.name}}
	sp, ok := jr.task(i)
	if !ok { // what the YAML reader makes of it: a task the JSON reader does not take, or the error
		var err error
		if sp, err = j.yamlTask(v, start, i); err != nil {
			return jobs.Task{}, err
		}
	}
	if sp.Needs != nil || sp.Priority != 0 || sp.Estimate != 0 || sp.MilliCPU != nil || sp.Memory != nil || sp.GPU != nil || sp.On != nil {
		return jobs.Task{}, j.errAtOffset(start, fmt.Sprintf("task %d", i+1),
			"needs, priority, estimate, matrix, resources and on are read with the whole file: write their keys without escapes")
	}
	id := sp.ID
	if id == "" {
		id = jobs.DefaultID(i + 1)
	}
	if first, dup := j.seen[id]; dup {
		line, _ := j.lineCol(first.offset)
		return jobs.Task{}, j.errAtOffset(start, fmt.Sprintf("task %d: id", i+1),
			"duplicate id %q (first used by task %d at line %d)", id, first.index+1, line)
	}
	j.seen[id] = streamID{index: int32(i), offset: start}
	for k, name := range sp.Limits {
		l := j.limit(name)
		if l == nil {
			return jobs.Task{}, j.errIn(v, start, fmt.Sprintf("$.limits[%d]", k), fmt.Sprintf("task %q: limits", id),
				"unknown pool %q: name one of the file's `limits:`", name)
		}
		for _, label := range l.Labels {
			if _, ok := sp.Labels[label]; !ok {
				return jobs.Task{}, j.errIn(v, start, fmt.Sprintf("$.limits[%d]", k), fmt.Sprintf("task %q: limits", id),
					"pool %q is keyed by %s, but the task has no label %q: give it `labels: {%s: ...}`", name, l.KeySource, label, label)
			}
		}
	}
	j.index++
	return j.r.resolve(i, &sp), nil
}

// limit returns the pool of the file's `limits:` named name, or nil.
func (j *JSONStream) limit(name string) *jobs.Limit {
	for k := range j.f.Limits {
		if j.f.Limits[k].Name == name {
			return &j.f.Limits[k]
		}
	}
	return nil
}

// yamlTask reads the task at 0-based position i, written v at offset start, with the
// YAML reader: its spec, or its error placed in the file.
func (j *JSONStream) yamlTask(v []byte, start int64, i int) (jobs.Spec, error) {
	p := &fileParser{name: j.name, element: true}
	af, err := parseYAML(j.name, v)
	if err != nil {
		return jobs.Spec{}, j.shift(p.yamlError(err), start)
	}
	if len(af.Docs) != 1 || af.Docs[0].Body == nil { // one JSON object, as the decoder read it
		return jobs.Spec{}, j.errAtOffset(start, "", "want a task object")
	}
	p.root = af.Docs[0].Body
	var rt rawTask
	if err := p.decodeNode(p.root, &rt); err != nil {
		return jobs.Spec{}, j.shift(p.yamlError(err), start)
	}
	if rt.Matrix != nil {
		return jobs.Spec{}, j.errAtOffset(start, fmt.Sprintf("task %d", i+1),
			"needs, priority, estimate, matrix, resources and on are read with the whole file: write their keys without escapes")
	}
	sp, err := p.task(i, &rt)
	return sp, j.shift(err, start)
}

// errIn returns the error at path within the task written v at offset start.
func (j *JSONStream) errIn(v []byte, start int64, path, key, format string, args ...any) error {
	p := &fileParser{name: j.name, element: true}
	if af, err := parseYAML(j.name, v); err == nil && len(af.Docs) > 0 {
		p.root = af.Docs[0].Body
	}
	return j.shift(p.errAt(path, key, format, args...), start)
}

// shift moves an error positioned in a task read alone, which starts at offset start
// of the decoder's input, to its place in the file.
func (j *JSONStream) shift(err error, start int64) error {
	var ie *jobs.InputError
	if !errors.As(err, &ie) || ie.Line < 1 {
		return err
	}
	line, col := j.lineCol(start)
	if ie.Line == 1 {
		ie.Col += col - 1
	}
	ie.Line += line - 1
	return ie
}

// syntaxError turns an error of the decoder into an *InputError at its place.
func (j *JSONStream) syntaxError(err error) error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		msg := se.Err.Error()
		if errors.Is(se.Err, io.ErrUnexpectedEOF) {
			msg = "unexpected end of file"
		}
		return j.errAtOffset(se.ByteOffset, "", "%s", msg)
	}
	if err == nil || errors.Is(err, io.EOF) {
		return j.errAtOffset(j.dec.InputOffset(), "", "unexpected end of file")
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &jobs.InputError{File: j.name, Msg: err.Error()}
}

// errAtOffset returns an *InputError at offset off of the decoder's input.
func (j *JSONStream) errAtOffset(off int64, key, format string, args ...any) error {
	line, col := j.lineCol(off)
	return &jobs.InputError{File: j.name, Line: line, Col: col, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// lineCol returns the 1-based line and column (in characters) of offset off of the
// decoder's input, reading the file up to it: it is asked only for an error.
func (j *JSONStream) lineCol(off int64) (line, col int) {
	line = 1
	var lineStart []byte // the current line up to off
	r := bufio.NewReader(io.NewSectionReader(j.fh, j.base, off))
	for {
		b, err := r.ReadSlice('\n')
		if err == nil {
			line++
			lineStart = lineStart[:0]
			continue
		}
		lineStart = append(lineStart, b...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			break
		}
	}
	return line, utf8.RuneCount(lineStart) + 1
}

// Close implements Source: it closes the file; the tasks not yet read are not
// yielded.
func (j *JSONStream) Close() error {
	if j.closed.Swap(true) {
		return nil
	}
	return j.fh.Close()
}

// Len returns the number of tasks in the file.
func (j *JSONStream) Len() int { return j.n }

// Workers returns the file's `workers`; nil when not set.
func (j *JSONStream) Workers() *int { return j.f.Workers }

// Rate returns the file's `rate`; nil when not set.
func (j *JSONStream) Rate() *rate.Limit { return j.f.Rate }

// Limits returns the file's pools (`limits`).
func (j *JSONStream) Limits() []jobs.Limit { return j.f.Limits }
