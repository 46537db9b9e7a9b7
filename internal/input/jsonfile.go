package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"
)

// parseJSON reads a task file written in plain JSON with encoding/json, token by token,
// into the same raw form the YAML reader decodes to, and checks it with the same code.
// It takes only what it reads exactly as the YAML reader does: an object with the
// known keys, each once and spelled exactly; strings, whole numbers and lists of
// strings where the schema wants them; env values that are strings or
// {"from_worker": NAME}; a matrix of lists of strings, numbers and booleans. Anything else (YAML that is not JSON, null, a number written
// with a fraction, a duplicate key, invalid UTF-8, any error of the file's contents)
// makes it give up (false), and the caller reads the file with the YAML reader, which
// gives every error its file, line and column. It never returns an error of its own.
func parseJSON(name string, data []byte) (*File, bool) {
	data = trimBOM(data)
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !utf8.Valid(data) {
		return nil, false
	}
	r := &jsonReader{dec: json.NewDecoder(bytes.NewReader(trimmed))}
	r.dec.UseNumber()
	raw, ok := r.file()
	if !ok {
		return nil, false
	}
	if _, err := r.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false // more than one value
	}
	p := &fileParser{name: name}
	f, err := p.convert(raw)
	if err != nil {
		return nil, false // the YAML reader says where
	}
	return f, true
}

// jsonReader reads the parts of a task file from a JSON token stream; each method
// reports false for anything it does not take.
type jsonReader struct{ dec *json.Decoder }

func (r *jsonReader) delim(want json.Delim) bool {
	tok, err := r.dec.Token()
	d, ok := tok.(json.Delim)
	return err == nil && ok && d == want
}

// object reads a JSON object, calling field for each key, which must read the value;
// a key given twice is refused.
func (r *jsonReader) object(field func(key string) bool) bool {
	if !r.delim('{') {
		return false
	}
	seen := map[string]bool{}
	for r.dec.More() {
		tok, err := r.dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok || seen[key] || !field(key) {
			return false
		}
		seen[key] = true
	}
	return r.delim('}')
}

func (r *jsonReader) str() (*string, bool) {
	tok, err := r.dec.Token()
	s, ok := tok.(string)
	return &s, err == nil && ok
}

func (r *jsonReader) integer() (*int, bool) {
	tok, err := r.dec.Token()
	n, ok := tok.(json.Number)
	if err != nil || !ok {
		return nil, false
	}
	i, err := strconv.Atoi(n.String()) // a whole number, as written: no fraction, no exponent
	return &i, err == nil
}

func (r *jsonReader) strings() ([]string, bool) {
	if !r.delim('[') {
		return nil, false
	}
	list := []string{}
	for r.dec.More() {
		s, ok := r.str()
		if !ok {
			return nil, false
		}
		list = append(list, *s)
	}
	return list, r.delim(']')
}

func (r *jsonReader) file() (*rawFile, bool) {
	var raw rawFile
	ok := r.object(func(key string) bool {
		var ok bool
		switch key {
		case "version":
			raw.Version, ok = r.integer()
		case "workers":
			raw.Workers, ok = r.integer()
		case "rate":
			raw.Rate, ok = r.str()
		case "defaults":
			raw.Defaults = &RawSettings{}
			ok = r.object(func(k string) bool { return r.setting(k, raw.Defaults) })
		case "tasks":
			raw.Tasks, ok = r.tasks()
		}
		return ok
	})
	return &raw, ok
}

func (r *jsonReader) tasks() (*[]rawTask, bool) {
	if !r.delim('[') {
		return nil, false
	}
	tasks := []rawTask{}
	for r.dec.More() {
		var t rawTask
		ok := r.object(func(key string) bool {
			var ok bool
			switch key {
			case "id":
				t.ID, ok = r.str()
			case "run":
				t.Run, ok = r.str()
			case "cmd":
				t.Cmd, ok = r.strings()
			case "needs":
				t.Needs, ok = r.strings()
			case "matrix":
				t.Matrix, ok = r.matrix()
			default:
				ok = r.setting(key, &t.RawSettings)
			}
			return ok
		})
		if !ok {
			return nil, false
		}
		tasks = append(tasks, t)
	}
	return &tasks, r.delim(']')
}

// matrix reads a task's matrix: an object of lists of strings, numbers and booleans,
// each number as written (1.50 stays 1.50, as the YAML reader keeps it). The axes
// keep the order of the keys in the file.
func (r *jsonReader) matrix() (*rawMatrix, bool) {
	m := &rawMatrix{}
	ok := r.object(func(name string) bool {
		if !r.delim('[') {
			return false
		}
		ax := rawAxis{name: name}
		for r.dec.More() {
			tok, err := r.dec.Token()
			if err != nil {
				return false
			}
			var text string
			switch v := tok.(type) {
			case string:
				text = v
			case json.Number:
				text = v.String()
			case bool:
				text = strconv.FormatBool(v)
			default: // null, a list, an object
				return false
			}
			ax.values = append(ax.values, rawValue{text: text})
		}
		m.axes = append(m.axes, ax)
		return r.delim(']')
	})
	return m, ok
}

// setting reads the value of a per-task setting into s.
func (r *jsonReader) setting(key string, s *RawSettings) bool {
	var ok bool
	switch key {
	case "timeout":
		s.Timeout, ok = r.str()
	case "retries":
		s.Retries, ok = r.integer()
	case "retry_delay":
		s.RetryDelay, ok = r.str()
	case "shell":
		s.Shell, ok = r.str()
	case "dir":
		s.Dir, ok = r.str()
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
	if !r.dec.More() {
		return envValue{}, false
	}
	tok, err := r.dec.Token()
	if err != nil {
		return envValue{}, false
	}
	switch x := tok.(type) {
	case string:
		return envValue{raw: x}, true
	case json.Delim:
		if x != '{' {
			return envValue{}, false
		}
		tok, err := r.dec.Token()
		if key, ok := tok.(string); err != nil || !ok || key != "from_worker" {
			return envValue{}, false
		}
		name, ok := r.str()
		if !ok || !r.delim('}') {
			return envValue{}, false
		}
		return envValue{raw: map[string]any{"from_worker": *name}}, true
	}
	return envValue{}, false
}
