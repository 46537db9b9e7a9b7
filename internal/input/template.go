package input

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gorun/gorun/internal/jobs"
)

// Repl is a replacement string of a command template: what it takes of the input
// (Kind), and of which input source's value (Pos, 1-based; 0: of the whole input).
type Repl struct {
	Kind ReplKind
	Pos  int
}

// ReplKind is what a replacement string takes of a value.
type ReplKind int

// The replacement strings, as GNU parallel spells them. Each of the first five also
// comes with a source's number, for that source's value: {1} {2.} {1/} {2//} {1/.}.
const (
	ReplItem      ReplKind = iota // {}    the input item (several sources: their values, space-separated)
	ReplNoExt                     // {.}   the item without its extension
	ReplBase                      // {/}   the item's basename
	ReplDir                       // {//}  the item's dirname ("." when it has none)
	ReplBaseNoExt                 // {/.}  the basename without its extension
	ReplSeq                       // {#}   the task's 1-based sequence number
	ReplSlot                      // {%}   the 1-based worker slot that runs it
	replCount
)

var replTokens = [replCount]string{"{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}"}

// matchRepl returns the replacement string that s starts with, if any: {}, {.},
// {/}, {//}, {/.}, {#}, {%}, and {N}, {N.}, {N/}, {N//}, {N/.} for a source N ≥ 1.
func matchRepl(s string) (Repl, int, bool) {
	if len(s) < 2 || s[0] != '{' {
		return Repl{}, 0, false
	}
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return Repl{}, 0, false
	}
	tok := s[:end+1]
	digits := 0
	for digits+1 < end && s[digits+1] >= '0' && s[digits+1] <= '9' {
		digits++
	}
	pos := 0
	if digits > 0 {
		n, err := strconv.Atoi(s[1 : 1+digits])
		if err != nil || n < 1 || s[1] == '0' {
			return Repl{}, 0, false
		}
		pos, tok = n, "{"+s[1+digits:end+1]
	}
	for r, t := range replTokens {
		if tok == t && (pos == 0 || ReplKind(r) <= ReplBaseNoExt) {
			return Repl{Kind: ReplKind(r), Pos: pos}, end + 1, true
		}
	}
	return Repl{}, 0, false
}

// Value returns what r stands for, for the input values (one per input source),
// sequence number and slot. A source beyond the values stands for "".
func (r Repl) Value(values []string, seq, slot int) string {
	var item string
	switch {
	case r.Pos > len(values):
	case r.Pos > 0:
		item = values[r.Pos-1]
	case len(values) == 1:
		item = values[0]
	default:
		item = strings.Join(values, " ")
	}
	switch r.Kind {
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
// A template of one word is a shell command line, read with a shell parser: each
// replacement string becomes what its place in the line needs (see compileShell),
// mostly a reference to a positional parameter ("${1}") whose value is passed to the
// shell as that parameter, so that no input can become shell code. With no
// replacement string, the item is appended as a last argument. A Template is
// immutable and safe for concurrent use.
type Template struct {
	source string       // as written, words joined with spaces
	shell  string       // the shell for a one-word template; "" for an argv template
	script []string     // shell mode: the command line, split where a value is written in (slotLiteral)
	params []shellParam // shell mode: what each positional parameter carries
	slots  []shellSlot  // shell mode: each placed replacement string, in order
	docs   []quotedDoc  // shell mode: the quoted heredocs a value is written into
	words  [][]part     // argv mode
	// appendValues: the template has no replacement string, so each input value is
	// appended as an argument of its own (argv mode) or a positional parameter
	// referenced at the end (shell mode, from the parameter after params).
	appendValues bool
}

type part struct {
	lit  string
	repl Repl
	isRe bool
}

// NewTemplate compiles words (what follows `--` on the command line). shell runs a
// one-word template; a one-word template that is not valid in the shell's language
// (bash for a shell named bash, else POSIX sh) is an error naming line and column.
func NewTemplate(words []string, shell string) (*Template, error) {
	if len(words) == 0 || words[0] == "" {
		return nil, fmt.Errorf("empty command template")
	}
	t := &Template{source: strings.Join(words, " ")}
	if len(words) == 1 {
		t.shell = shell
		if err := t.compileShell(words[0]); err != nil {
			return nil, err
		}
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
	t.appendValues = !found
	return t, nil
}

// MaxSource returns the highest input source a replacement string of the template
// names ({2} names 2), or 0 when none names one.
func (t *Template) MaxSource() int {
	most := 0
	for _, p := range t.params {
		most = max(most, p.repl.Pos)
	}
	for _, s := range t.slots {
		most = max(most, s.repl.Pos)
	}
	for _, parts := range t.words {
		for _, p := range parts {
			most = max(most, p.repl.Pos)
		}
	}
	return most
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

// Args returns the argv that runs the template for values (one per input source),
// the task's sequence number and its worker slot.
func (t *Template) Args(values []string, seq, slot int) []string {
	if t.shell != "" {
		return t.shellArgs(values, seq, slot)
	}
	args := make([]string, len(t.words), len(t.words)+len(values))
	for i, parts := range t.words {
		if len(parts) == 1 {
			if parts[0].isRe {
				args[i] = parts[0].repl.Value(values, seq, slot)
			} else {
				args[i] = parts[0].lit
			}
			continue
		}
		var b strings.Builder
		for _, p := range parts {
			if p.isRe {
				b.WriteString(p.repl.Value(values, seq, slot))
			} else {
				b.WriteString(p.lit)
			}
		}
		args[i] = b.String()
	}
	if t.appendValues {
		args = append(args, values...)
	}
	return args
}

// Command returns the command for values as a person reads it: in shell mode the
// template with each value written in its place, quoted as that place needs (so that
// a POSIX shell reads back the values), in argv mode the words joined.
func (t *Template) Command(values []string, seq int) string {
	if t.shell == "" {
		return jobs.JoinArgv(t.Args(values, seq, 0))
	}
	return t.shellCommand(values, seq)
}

// IsShell reports whether the template runs through a shell.
func (t *Template) IsShell() bool { return t.shell != "" }

// String returns the template as written.
func (t *Template) String() string { return t.source }
