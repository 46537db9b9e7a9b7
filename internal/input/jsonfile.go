package input

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/gorun/gorun/internal/jobs"
)

// parseJSON reads a task file written in plain JSON from r with a streaming JSON
// decoder, token by token, and checks it with the same code as the YAML reader: each
// task is checked and made a jobs.Spec as it is read, and what the file wrote of it is
// dropped then, so that memory holds the specs and never the file's text or a tree of
// it. It takes only what it reads exactly as the YAML reader does: an object with the
// known keys, each once and spelled exactly; strings, whole numbers and lists of
// strings where the schema wants them; env values that are strings or
// {"from_worker": NAME}. Anything else (YAML that is not JSON, null, a number written
// with a fraction, a duplicate key, invalid UTF-8, any error of the file's contents)
// makes it give up (false), and the caller reads the file with the YAML reader, which
// gives every error its file, line and column. It never returns an error of its own.
func parseJSON(name string, r io.Reader) (*File, bool) {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, _ := br.Peek(len(bom)); bytes.Equal(b, bom) {
		_, _ = br.Discard(len(bom))
	}
	jr := &jsonReader{dec: jsontext.NewDecoder(br), p: &fileParser{name: name}}
	if jr.dec.PeekKind() != '{' {
		return nil, false
	}
	f, ok := jr.file()
	if !ok {
		return nil, false
	}
	if _, err := jr.dec.ReadToken(); !errors.Is(err, io.EOF) {
		return nil, false // more than one value
	}
	return f, true
}

// jsonReader reads the parts of a task file from a JSON token stream; each method
// reports false for anything it does not take. The decoder refuses a key given twice
// in an object, and invalid UTF-8.
type jsonReader struct {
	dec *jsontext.Decoder
	p   *fileParser
}

func (r *jsonReader) delim(want jsontext.Kind) bool {
	tok, err := r.dec.ReadToken()
	return err == nil && tok.Kind() == want
}

// object reads a JSON object, calling field for each key, which must read the value.
func (r *jsonReader) object(field func(key string) bool) bool {
	if !r.delim('{') {
		return false
	}
	for r.dec.PeekKind() != '}' {
		key, ok := r.str()
		if !ok || !field(key) {
			return false
		}
	}
	return r.delim('}')
}

func (r *jsonReader) str() (string, bool) {
	tok, err := r.dec.ReadToken()
	if err != nil || tok.Kind() != '"' {
		return "", false
	}
	return tok.String(), true
}

func (r *jsonReader) strPtr() (*string, bool) {
	s, ok := r.str()
	return &s, ok
}

func (r *jsonReader) integer() (*int, bool) {
	tok, err := r.dec.ReadToken()
	if err != nil || tok.Kind() != '0' {
		return nil, false
	}
	i, err := strconv.Atoi(tok.String()) // a whole number, as written: no fraction, no exponent
	return &i, err == nil
}

func (r *jsonReader) strings() ([]string, bool) {
	if !r.delim('[') {
		return nil, false
	}
	list := []string{}
	for r.dec.PeekKind() != ']' {
		s, ok := r.str()
		if !ok {
			return nil, false
		}
		list = append(list, s)
	}
	return list, r.delim(']')
}

// file reads the whole file: its settings, and its tasks, each checked as it is read.
// The settings are checked once the file is read, since `defaults` may follow `tasks`.
func (r *jsonReader) file() (*File, bool) {
	var raw rawFile
	var specs specList
	tasks := false
	ok := r.object(func(key string) bool {
		if key == "tasks" {
			tasks = true
			var ok bool
			specs, ok = r.tasks()
			return ok
		}
		return r.headKey(key, &raw)
	})
	if !ok || !tasks {
		return nil, false
	}
	f, err := r.p.head(&raw)
	if err != nil {
		return nil, false // the YAML reader says where
	}
	f.specList = specs
	if r.p.check(f) != nil {
		return nil, false
	}
	return f, true
}

// headKey reads the value of key into raw when it is a run-wide key that may come
// before the tasks (version, workers, rate, defaults). It is false for any other key,
// or a value it does not take exactly so.
func (r *jsonReader) headKey(key string, raw *rawFile) bool {
	var ok bool
	switch key {
	case "version":
		raw.Version, ok = r.integer()
	case "workers":
		raw.Workers, ok = r.integer()
	case "rate":
		raw.Rate, ok = r.strPtr()
	case "defaults":
		raw.Defaults = &RawSettings{}
		ok = r.object(func(k string) bool { return r.setting(k, raw.Defaults) })
	}
	return ok
}

// tasks reads the tasks array, checking each task as it is read.
func (r *jsonReader) tasks() (specList, bool) {
	var specs specList
	if !r.delim('[') {
		return specs, false
	}
	for r.dec.PeekKind() != ']' {
		sp, ok := r.task(specs.Len())
		if !ok {
			return specs, false
		}
		specs.add(&sp)
	}
	return specs, r.delim(']')
}

// task reads the task at 0-based position i and checks it.
func (r *jsonReader) task(i int) (jobs.Spec, bool) {
	var t rawTask
	ok := r.object(func(key string) bool {
		var ok bool
		switch key {
		case "id":
			t.ID, ok = r.strPtr()
		case "run":
			t.Run, ok = r.strPtr()
		case "cmd":
			t.Cmd, ok = r.strings()
		case "needs":
			t.Needs, ok = r.strings()
		case "priority":
			t.Priority, ok = r.integer()
		case "estimate":
			t.Estimate, ok = r.strPtr()
		case "limits":
			t.Limits, ok = r.strings()
		default:
			ok = r.setting(key, &t.RawSettings)
		}
		return ok
	})
	if !ok {
		return jobs.Spec{}, false
	}
	sp, err := r.p.task(i, &t)
	return sp, err == nil
}

// setting reads the value of a per-task setting into s.
func (r *jsonReader) setting(key string, s *RawSettings) bool {
	var ok bool
	switch key {
	case "timeout":
		s.Timeout, ok = r.strPtr()
	case "retries":
		s.Retries, ok = r.integer()
	case "retry_delay":
		s.RetryDelay, ok = r.strPtr()
	case "shell":
		s.Shell, ok = r.strPtr()
	case "dir":
		s.Dir, ok = r.strPtr()
	case "env":
		s.Env = map[string]envValue{}
		ok = r.object(func(name string) bool {
			v, ok := r.envValue()
			s.Env[name] = v
			return ok
		})
	}
	return ok
}

// envValue reads a string, or {"from_worker": NAME} as the YAML decoder gives it.
func (r *jsonReader) envValue() (envValue, bool) {
	switch r.dec.PeekKind() {
	case '"':
		s, ok := r.str()
		return envValue{raw: s}, ok
	case '{':
		r.delim('{')
		if key, ok := r.str(); !ok || key != "from_worker" {
			return envValue{}, false
		}
		name, ok := r.str()
		if !ok || !r.delim('}') {
			return envValue{}, false
		}
		return envValue{raw: map[string]any{"from_worker": name}}, true
	}
	return envValue{}, false
}
