package jobs

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// IsJSONLFile reports whether path names a JSON Lines task stream by its extension.
func IsJSONLFile(path string) bool {
	return strings.EqualFold(filepath.Ext(path), ".jsonl")
}

// JSONLSource reads one task object per line (JSON Lines), as the lines arrive. A
// line takes the keys of a task in a task file; blank lines are skipped. A bad line
// is an *InputError naming the line; the tasks before it run.
type JSONLSource struct {
	lineReader
	settings Settings
	index    int
	seen     map[string]int // id -> line, to refuse duplicates
}

// NewJSONLSource reads task objects from r, naming it name in errors.
func NewJSONLSource(name string, r io.ReadCloser, s Settings) *JSONLSource {
	return &JSONLSource{lineReader: newLineReader(name, r, '\n'), settings: s, seen: map[string]int{}}
}

// Next implements Source.
func (j *JSONLSource) Next() (Task, error) {
	for {
		line, err := j.readLine()
		if err != nil {
			return Task{}, err
		}
		if strings.TrimSpace(string(line)) == "" {
			continue
		}
		j.index++
		sp, err := j.parse(line)
		if err != nil {
			return Task{}, err
		}
		t := Resolve(j.index, &sp, j.settings, &Defaults{})
		if first, dup := j.seen[t.ID]; dup {
			return Task{}, &InputError{File: j.name, Line: j.line, Key: "id",
				Msg: fmt.Sprintf("duplicate id %q (first used at line %d)", t.ID, first)}
		}
		j.seen[t.ID] = j.line
		return t, nil
	}
}

func (j *JSONLSource) parse(line []byte) (Spec, error) {
	p := &fileParser{name: j.name, single: true}
	onLine := func(err error) error {
		var ie *InputError
		if errors.As(err, &ie) {
			ie.Line = j.line
		}
		return err
	}
	af, err := parser.ParseBytes(line, 0)
	if err != nil {
		return Spec{}, onLine(p.yamlError(err))
	}
	if len(af.Docs) != 1 || af.Docs[0].Body == nil {
		return Spec{}, &InputError{File: j.name, Line: j.line, Msg: "want one task object on the line"}
	}
	p.root = af.Docs[0].Body
	var rt rawTask
	if err := yaml.NodeToValue(p.root, &rt, yaml.DisallowUnknownField(), yaml.Strict()); err != nil {
		return Spec{}, onLine(p.yamlError(err))
	}
	sp, err := p.task(j.index-1, &rt)
	return sp, onLine(err)
}
