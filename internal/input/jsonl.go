package input

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/gorun/gorun/internal/jobs"
)

// IsJSONLFile reports whether path names a JSON Lines task file by its extension.
func IsJSONLFile(path string) bool {
	return strings.EqualFold(filepath.Ext(path), ".jsonl")
}

// JSONLSource reads one task object per line (JSON Lines), as the lines arrive. A
// line takes the keys of a task in a task file; blank lines are skipped, and so is a
// UTF-8 byte-order mark at the start of the stream.
//
// A bad line does not stop the stream: it becomes a task with Invalid set (its
// error names the line and column), which never runs, and the lines after it go on.
// ReadJSONL reads a file instead, checking every line before any task runs.
type JSONLSource struct {
	lineReader
	settings jobs.Settings
	strict   bool // a bad line is an error that ends the source, not an invalid task
	index    int
	seen     map[string]int // id -> line, to refuse duplicates

	lineR bytes.Reader      // the line being read as plain JSON
	lineD *jsontext.Decoder // reads lineR; nil until the first line
}

// NewJSONLSource reads task objects from the stream r, naming it name in errors.
// Closing the source closes r.
func NewJSONLSource(name string, r io.ReadCloser, s jobs.Settings) *JSONLSource {
	return &JSONLSource{lineReader: newLineReader(name, r, '\n'), settings: s, seen: map[string]int{}}
}

// ReadJSONL reads and checks every line of r, a JSON Lines task file named name, and
// closes r. The first bad line is an *InputError with name, line and column, and no
// task is returned: nothing of a bad file runs.
func ReadJSONL(name string, r io.ReadCloser, s jobs.Settings) ([]jobs.Task, error) {
	src := NewJSONLSource(name, r, s)
	src.strict = true
	defer src.Close()
	var tasks []jobs.Task
	for {
		t, err := src.Next()
		if errors.Is(err, io.EOF) {
			return tasks, nil
		}
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, t)
	}
}

// maxInvalidItem bounds how much of a bad line an invalid task keeps, to show.
const maxInvalidItem = 1 << 10

// Next implements Source.
func (j *JSONLSource) Next() (jobs.Task, error) {
	for {
		line, err := j.readLine()
		if err != nil {
			return jobs.Task{}, err
		}
		if strings.TrimSpace(string(line)) == "" {
			continue
		}
		j.index++
		t, err := j.task(line)
		var ie *jobs.InputError
		if err != nil && !j.strict && errors.As(err, &ie) {
			return j.invalid(line, ie), nil
		}
		return t, err
	}
}

// task reads the task on line, the j.line-th line of the input.
func (j *JSONLSource) task(line []byte) (jobs.Task, error) {
	sp, p, err := j.parse(line)
	if err != nil {
		return jobs.Task{}, err
	}
	t := jobs.Resolve(j.index, &sp, j.settings, &jobs.Defaults{})
	if label := MissingLabel(&t, j.settings.Labels); label != "" {
		p = j.placed(line, p)
		return jobs.Task{}, j.onLine(p.errAt("$.labels", "labels", "no label %q, which --limit-by reads", label))
	}
	if first, dup := j.seen[t.ID]; dup {
		p = j.placed(line, p)
		return jobs.Task{}, j.onLine(p.errAt("$.id", "id", "duplicate id %q (first used at line %d)", t.ID, first))
	}
	j.seen[t.ID] = j.line
	return t, nil
}

// invalid returns the task that stands for a bad line: it never runs, and its result
// says what was wrong.
func (j *JSONLSource) invalid(line []byte, err *jobs.InputError) jobs.Task {
	item := string(line)
	if len(item) > maxInvalidItem {
		cut := maxInvalidItem
		for cut > 0 && !utf8.RuneStart(item[cut]) {
			cut--
		}
		item = item[:cut] + "…"
	}
	return jobs.Task{Index: j.index, Line: j.line, ID: jobs.DefaultID(j.index), Item: item, Invalid: err}
}

// onLine moves an error found in a line read alone to the line's place in the input.
func (j *JSONLSource) onLine(err error) error {
	var ie *jobs.InputError
	if errors.As(err, &ie) {
		ie.Line = j.line
		ie.Col = max(ie.Col, 1)
	}
	return err
}

// parse reads the task on line: its spec, and the parser that places its errors.
//
// A line of plain JSON whose keys and values the JSON reader of task files takes is
// read by that reader (a tenth of the YAML reader's time, which was a fifth of gorun's
// own CPU a task in a run of JSON Lines); anything else (YAML's other forms, a key or
// value it does not take, any error) by the YAML reader, so that results and errors
// are the YAML reader's own. A parser from the JSON reader has no syntax tree: see
// placed.
func (j *JSONLSource) parse(line []byte) (jobs.Spec, *fileParser, error) {
	if sp, p, ok := j.plainJSON(line); ok {
		return sp, p, nil
	}
	return j.parseYAML(line)
}

// plainJSON reads line, when it is one plain JSON task object, with the JSON reader;
// ok is false for any other line.
func (j *JSONLSource) plainJSON(line []byte) (sp jobs.Spec, p *fileParser, ok bool) {
	if j.lineD == nil {
		j.lineD = jsontext.NewDecoder(&j.lineR)
	}
	j.lineR.Reset(line)
	j.lineD.Reset(&j.lineR)
	p = &fileParser{name: j.name, single: true}
	jr := &jsonReader{dec: j.lineD, p: p}
	if sp, ok = jr.task(j.index - 1); !ok {
		return jobs.Spec{}, nil, false
	}
	if _, err := j.lineD.ReadToken(); !errors.Is(err, io.EOF) {
		return jobs.Spec{}, nil, false // more than one value on the line
	}
	return sp, p, true
}

// placed returns p, or, when p came from the JSON reader and has no syntax tree to
// place an error in, the YAML reader's parser of the same line.
func (j *JSONLSource) placed(line []byte, p *fileParser) *fileParser {
	if p.root != nil {
		return p
	}
	if _, yp, err := j.parseYAML(line); err == nil {
		return yp
	}
	return p
}

// parseYAML reads line with the YAML reader.
func (j *JSONLSource) parseYAML(line []byte) (jobs.Spec, *fileParser, error) {
	p := &fileParser{name: j.name, single: true}
	af, err := parseYAML(j.name, line)
	if err != nil {
		return jobs.Spec{}, p, j.onLine(p.yamlError(err))
	}
	if len(af.Docs) != 1 || af.Docs[0].Body == nil {
		col := 1
		if len(af.Docs) > 1 {
			_, col = nodePos(af.Docs[1])
		}
		return jobs.Spec{}, p, &jobs.InputError{File: j.name, Line: j.line, Col: col, Msg: "want one task object on the line"}
	}
	p.root = af.Docs[0].Body
	var rt rawTask
	if err := p.decodeNode(p.root, &rt); err != nil {
		return jobs.Spec{}, p, j.onLine(p.yamlError(err))
	}
	sp, err := p.task(j.index-1, &rt)
	return sp, p, j.onLine(err)
}
