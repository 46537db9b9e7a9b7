package input

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gorun/gorun/internal/jobs"
)

// NewKey compiles the key of a limit (jobs.Limit.Key): text with placeholders that
// stand for a task's values: {}, {.}, {/}, {//}, {/.} and {#} as in a command
// template (of the task's input item: a line of input), {id} (the task's id), {dir}
// (its working directory) and {NAME} for any other label name (a letter, then
// letters, digits, _ and -): the task's label NAME (jobs.Task.Labels), which a task
// file or a JSON Lines line gives. labels lists the label names the key reads, each
// once; a task without one of them is refused before it runs (see CheckLabels). {%}
// is an error: the slot is not known before the task starts.
func NewKey(src string) (key func(t *jobs.Task) string, labels []string, err error) {
	type piece struct {
		lit   string
		field string // "id", "dir", or "" for lit or repl
		label string // a label's name
		repl  Repl
		isRe  bool
	}
	var pieces []piece
	lit := 0
	for i := 0; i < len(src); {
		if src[i] != '{' {
			i++
			continue
		}
		end := strings.IndexByte(src[i:], '}')
		if end < 0 {
			return nil, nil, fmt.Errorf("invalid key %q: %q has no closing }", src, src[i:])
		}
		tok := src[i : i+end+1]
		p := piece{}
		switch r, _, ok := matchRepl(tok); {
		case tok == "{id}" || tok == "{dir}":
			p.field = tok[1 : len(tok)-1]
		case ok && r.Kind != ReplSlot:
			p.repl, p.isRe = r, true
		case IsLabelName(tok[1 : len(tok)-1]):
			p.label = tok[1 : len(tok)-1]
			if !slices.Contains(labels, p.label) {
				labels = append(labels, p.label)
			}
		default:
			return nil, nil, fmt.Errorf("invalid key %q: unknown placeholder %s (want {}, {.}, {/}, {//}, {/.}, {#}, {id}, {dir} or a label's {NAME})", src, tok)
		}
		if i > lit {
			pieces = append(pieces, piece{lit: src[lit:i]})
		}
		pieces = append(pieces, p)
		i += len(tok)
		lit = i
	}
	if lit < len(src) {
		pieces = append(pieces, piece{lit: src[lit:]})
	}
	return func(t *jobs.Task) string {
		var b strings.Builder
		for _, p := range pieces {
			switch {
			case p.isRe:
				b.WriteString(p.repl.Value(t.TemplateValues(), t.Index, 0))
			case p.field == "id":
				b.WriteString(t.ID)
			case p.field == "dir":
				b.WriteString(t.Dir)
			case p.label != "":
				b.WriteString(t.Labels[p.label])
			default:
				b.WriteString(p.lit)
			}
		}
		return b.String()
	}, labels, nil
}

// IsLabelName reports whether name may name a task's label: a letter, then letters,
// digits, _ and -, and neither id nor dir (a key's {id} and {dir}).
func IsLabelName(name string) bool {
	if name == "" || name == "id" || name == "dir" {
		return false
	}
	for i, c := range name {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '_' || c == '-')) {
			return false
		}
	}
	return true
}

// MissingLabel returns the first of labels that t has not, or "".
func MissingLabel(t *jobs.Task, labels []string) string {
	for _, l := range labels {
		if _, ok := t.Labels[l]; !ok {
			return l
		}
	}
	return ""
}
