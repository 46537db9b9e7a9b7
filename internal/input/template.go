package input

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gorun/gorun/internal/jobs"
)

// Repl is a replacement string of a command template.
type Repl int

// The replacement strings, as GNU parallel spells them.
const (
	ReplItem      Repl = iota // {}    the input item
	ReplNoExt                 // {.}   the item without its extension
	ReplBase                  // {/}   the item's basename
	ReplDir                   // {//}  the item's dirname ("." when it has none)
	ReplBaseNoExt             // {/.}  the basename without its extension
	ReplSeq                   // {#}   the task's 1-based sequence number
	ReplSlot                  // {%}   the 1-based worker slot that runs it
	replCount
)

var replTokens = [replCount]string{"{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}"}

// matchRepl returns the replacement string that s starts with, if any.
func matchRepl(s string) (Repl, int, bool) {
	if len(s) < 2 || s[0] != '{' {
		return 0, 0, false
	}
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return 0, 0, false
	}
	tok := s[:end+1]
	for r, t := range replTokens {
		if tok == t {
			return Repl(r), len(t), true
		}
	}
	return 0, 0, false
}

// Value returns what r stands for, for the input item, sequence number and slot.
func (r Repl) Value(item string, seq, slot int) string {
	switch r {
	case ReplNoExt:
		return dropExt(item)
	case ReplBase:
		return basename(item)
	case ReplDir:
		return dirname(item)
	case ReplBaseNoExt:
		return dropExt(basename(item))
	case ReplSeq:
		return strconv.Itoa(seq)
	case ReplSlot:
		if slot == 0 {
			return "{%}" // not known until the task starts
		}
		return strconv.Itoa(slot)
	}
	return item
}

// dropExt removes the extension of the last path element: "a/b.tar.gz" -> "a/b.tar".
// A name that starts with its only dot (".profile") has no extension.
func dropExt(s string) string {
	base := strings.LastIndexByte(s, '/') + 1
	if dot := strings.LastIndexByte(s[base:], '.'); dot > 0 {
		return s[:base+dot]
	}
	return s
}

func basename(s string) string {
	t := strings.TrimRight(s, "/")
	if t == "" {
		return s
	}
	return t[strings.LastIndexByte(t, '/')+1:]
}

func dirname(s string) string {
	t := strings.TrimRight(s, "/")
	i := strings.LastIndexByte(t, '/')
	switch {
	case t == "" && s != "":
		return "/"
	case i < 0:
		return "."
	case i == 0:
		return "/"
	}
	return strings.TrimRight(t[:i], "/")
}

// Template turns input items into commands, as xargs and GNU parallel do.
//
// A template of several words runs directly as an argv: each word is substituted on its
// own, and a replacement always stays inside its word, whatever bytes the item holds.
// A template of one word is a shell command line; the values are never written into
// it: each replacement string becomes a reference to a positional parameter ("${1}"),
// and the values are passed to the shell as those parameters, so no input can become
// shell code. With no replacement string, the item is appended as a last argument.
// A Template is immutable and safe for concurrent use.
type Template struct {
	source string   // as written, words joined with spaces
	shell  string   // the shell for a one-word template; "" for an argv template
	script string   // shell mode: the command line with parameter references
	params []Repl   // shell mode: the replacement each positional parameter holds
	words  [][]part // argv mode
}

type part struct {
	lit  string
	repl Repl
	isRe bool
}

// NewTemplate compiles words (what follows `--` on the command line). shell runs a
// one-word template.
func NewTemplate(words []string, shell string) (*Template, error) {
	if len(words) == 0 || words[0] == "" {
		return nil, fmt.Errorf("empty command template")
	}
	t := &Template{source: strings.Join(words, " ")}
	if len(words) == 1 {
		t.shell = shell
		t.compileShell(words[0])
		return t, nil
	}
	found := false
	for _, w := range words {
		parts := splitWord(w)
		for _, p := range parts {
			found = found || p.isRe
		}
		t.words = append(t.words, parts)
	}
	if !found {
		t.words = append(t.words, []part{{repl: ReplItem, isRe: true}})
	}
	return t, nil
}

func splitWord(w string) []part {
	var parts []part
	lit := 0
	for i := 0; i < len(w); {
		r, n, ok := matchRepl(w[i:])
		if !ok {
			i++
			continue
		}
		if i > lit {
			parts = append(parts, part{lit: w[lit:i]})
		}
		parts = append(parts, part{repl: r, isRe: true})
		i += n
		lit = i
	}
	if lit < len(w) || len(parts) == 0 {
		parts = append(parts, part{lit: w[lit:]})
	}
	return parts
}

// compileShell replaces each replacement string of line by a reference to the
// positional parameter that carries its value, quoted for where it stands: "${N}"
// outside quotes, ${N} inside double quotes, and '"${N}"' inside single quotes (the
// single-quoted string is closed around it). Whatever the quoting, the value is only
// ever expanded as a parameter, never parsed as code.
func (t *Template) compileShell(line string) {
	var b strings.Builder
	param := map[Repl]int{}
	ref := func(r Repl) string {
		n, ok := param[r]
		if !ok {
			t.params = append(t.params, r)
			n = len(t.params)
			param[r] = n
		}
		return "${" + strconv.Itoa(n) + "}"
	}
	const (
		unquoted = iota
		single
		double
	)
	state := unquoted
	found := false
	for i := 0; i < len(line); {
		c := line[i]
		if r, n, ok := matchRepl(line[i:]); ok {
			found = true
			switch state {
			case unquoted:
				b.WriteString(`"` + ref(r) + `"`)
			case double:
				b.WriteString(ref(r))
			case single:
				b.WriteString(`'"` + ref(r) + `"'`)
			}
			i += n
			continue
		}
		b.WriteByte(c)
		i++
		switch {
		case c == '\\' && state != single && i < len(line):
			b.WriteByte(line[i])
			i++
		case c == '\'' && state == unquoted:
			state = single
		case c == '\'' && state == single:
			state = unquoted
		case c == '"' && state == unquoted:
			state = double
		case c == '"' && state == double:
			state = unquoted
		}
	}
	if !found {
		b.WriteString(` "` + ref(ReplItem) + `"`)
	}
	t.script = b.String()
}

// Args returns the argv that runs the template for item, the task's sequence number
// and its worker slot.
func (t *Template) Args(item string, seq, slot int) []string {
	if t.shell != "" {
		args := make([]string, 0, 4+len(t.params))
		args = append(args, t.shell, "-c", t.script, "gorun")
		for _, r := range t.params {
			args = append(args, r.Value(item, seq, slot))
		}
		return args
	}
	args := make([]string, len(t.words))
	for i, parts := range t.words {
		if len(parts) == 1 {
			if parts[0].isRe {
				args[i] = parts[0].repl.Value(item, seq, slot)
			} else {
				args[i] = parts[0].lit
			}
			continue
		}
		var b strings.Builder
		for _, p := range parts {
			if p.isRe {
				b.WriteString(p.repl.Value(item, seq, slot))
			} else {
				b.WriteString(p.lit)
			}
		}
		args[i] = b.String()
	}
	return args
}

// Command returns the command for item as a person reads it: in shell mode the
// template with each value single-quoted in place, in argv mode the words joined.
func (t *Template) Command(item string, seq int) string {
	if t.shell == "" {
		return jobs.JoinArgv(t.Args(item, seq, 0))
	}
	var b strings.Builder
	src := t.source
	found := false
	for i := 0; i < len(src); {
		if r, n, ok := matchRepl(src[i:]); ok {
			found = true
			b.WriteString(jobs.QuoteWord(r.Value(item, seq, 0)))
			i += n
			continue
		}
		b.WriteByte(src[i])
		i++
	}
	if !found {
		b.WriteString(" " + jobs.QuoteWord(item))
	}
	return b.String()
}

// IsShell reports whether the template runs through a shell.
func (t *Template) IsShell() bool { return t.shell != "" }

// Script returns the shell command line that a one-word template runs.
func (t *Template) Script() string { return t.script }

// String returns the template as written.
func (t *Template) String() string { return t.source }
