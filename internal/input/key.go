package input

import (
	"fmt"
	"strings"

	"github.com/gorun/gorun/internal/jobs"
)

// NewKey compiles the key of a limit (jobs.Limit.Key): text with placeholders that
// stand for a task's values: {}, {.}, {/}, {//}, {/.} and {#} as in a command
// template (of the task's input item: a line of input), {id} (the task's id) and
// {dir} (its working directory). Any other {name} is an error, and so is {%}: the
// slot is not known before the task starts.
func NewKey(src string) (func(t *jobs.Task) string, error) {
	type piece struct {
		lit   string
		field string // "id", "dir", or "" for lit or repl
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
			return nil, fmt.Errorf("invalid key %q: %q has no closing }", src, src[i:])
		}
		tok := src[i : i+end+1]
		p := piece{}
		switch r, _, ok := matchRepl(tok); {
		case tok == "{id}" || tok == "{dir}":
			p.field = tok[1 : len(tok)-1]
		case ok && r.Kind != ReplSlot:
			p.repl, p.isRe = r, true
		default:
			return nil, fmt.Errorf("invalid key %q: unknown placeholder %s (want {}, {.}, {/}, {//}, {/.}, {#}, {id} or {dir})", src, tok)
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
			default:
				b.WriteString(p.lit)
			}
		}
		return b.String()
	}, nil
}
