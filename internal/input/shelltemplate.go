package input

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gorun/gorun/internal/jobs"
	"mvdan.cc/sh/v3/syntax"
)

// slotKind is where a replacement string of a one-word template stands in the shell
// command line, which decides how its value reaches the shell.
type slotKind int

const (
	slotWord    slotKind = iota // a word or part of one, outside quotes: "${N}"
	slotPattern                 // a pattern or replacement of ${x#…} ${x/…/…}, even inside "…": "${N}"
	slotDouble                  // inside "…" (a ${x:-…} default in "…" too): ${N}
	slotHeredoc                 // the body of a heredoc with an unquoted delimiter: ${N}
	slotSingle                  // inside '…': '"${N}"'
	slotANSI                    // inside bash's $'…': '"${N}"$'
	slotArith                   // arithmetic ($((…)), ((…)), let, an array index, ${x:…:…}, [[ -eq ]]): ${N}, a decimal integer
	slotLiteral                 // the body of a heredoc with a quoted delimiter: the value itself
)

// shellSlot is one replacement string of a one-word template that the shell parser
// placed: its bytes in the template, what it stands for, and where it stands.
type shellSlot struct {
	start, end int
	repl       Repl
	kind       slotKind
	param      int  // the positional parameter that carries the value; 0 for slotLiteral
	doc        int  // slotLiteral: the index of its heredoc in Template.docs
	nested     bool // slotDouble: in the word of a ${x:-…} inside "…"
	backquoted bool // inside `…`, which reads backslashes first
}

// quotedDoc is a heredoc with a quoted delimiter (<<'EOF') whose body has a value
// written in: a value must not hold a line that ends the body early.
type quotedDoc struct {
	start, end int    // the body in the template
	delim      string // the delimiter, quotes removed
	dashTabs   bool   // <<-: leading tabs of each body line are removed
}

// bodyEnd returns where the body of d ends in line: at the start of its first line
// that the shell reads as the delimiter, or at the end of line.
func (d quotedDoc) bodyEnd(line string) int {
	for at := d.start; at < len(line); {
		next := strings.IndexByte(line[at:], '\n')
		if next < 0 {
			next = len(line) - at
		}
		if d.isDelim(line[at : at+next]) {
			return at
		}
		at += next + 1
	}
	return len(line)
}

// isDelim reports whether the shell reads a body line l as d's delimiter.
func (d quotedDoc) isDelim(l string) bool {
	if d.dashTabs {
		l = strings.TrimLeft(l, "\t")
	}
	return l == d.delim
}

// shellLang returns the language the parser reads a template in for shell: bash for
// a shell named bash, the MirBSD Korn shell for mksh, POSIX sh for any other.
func shellLang(shell string) syntax.LangVariant {
	switch filepath.Base(shell) {
	case "bash":
		return syntax.LangBash
	case "mksh":
		return syntax.LangMirBSDKorn
	}
	return syntax.LangPOSIX
}

// langName names a language in messages.
func langName(lang syntax.LangVariant) string {
	switch lang {
	case syntax.LangBash:
		return "bash"
	case syntax.LangMirBSDKorn:
		return "mksh"
	}
	return "POSIX sh"
}

// placeholder is what stands for the i-th replacement string while the template is
// parsed: a parameter expansion, which the parser accepts in every place where a
// value can go (a word, quotes, arithmetic, a heredoc body, a ${x:-…} default) and
// which never joins the text around it into one name, as a bare name would.
func placeholder(prefix string, i int) string { return "${" + prefix + strconv.Itoa(i) + "_}" }

// compileShell reads line with a real shell parser (mvdan.cc/sh/v3/syntax, in the
// language of t.shell) and finds where each replacement string stands. Then it writes
// the command line the shell runs, each replacement string replaced according to its
// place (see slotKind): a value goes in as a positional parameter, never as code;
// only in a quoted heredoc body, where nothing is expanded, is the value itself
// written in, and Check refuses a value with a line that would end that body. A
// replacement string the parser finds nowhere a value can go (in a comment, after a
// backslash, as a parameter's name in ${{}}) is left as written. A line the parser
// rejects is an error naming its line and column.
func (t *Template) compileShell(line string) error {
	prefix := "gorunR"
	for strings.Contains(line, prefix) {
		prefix += "x"
	}
	// The line with a placeholder for each replacement string, and where each was.
	var ph strings.Builder
	type found struct {
		start, end, phStart, phEnd int
		repl                       Repl
	}
	var reps []found
	for i := 0; i < len(line); {
		r, n, ok := matchRepl(line[i:])
		if !ok {
			ph.WriteByte(line[i])
			i++
			continue
		}
		p := placeholder(prefix, len(reps))
		reps = append(reps, found{start: i, end: i + n, phStart: ph.Len(), phEnd: ph.Len() + len(p), repl: r})
		ph.WriteString(p)
		i += n
	}
	// origin maps an offset in the placeholder text back to one in line.
	origin := func(off int) int {
		shift := 0
		for _, f := range reps {
			if off < f.phStart {
				break
			}
			if off < f.phEnd {
				return f.start
			}
			shift = f.phEnd - f.end
		}
		return off - shift
	}
	lang := shellLang(t.shell)
	parser := syntax.NewParser(syntax.Variant(lang))
	file, err := parser.Parse(strings.NewReader(ph.String()), "")
	if err != nil {
		return parseError(line, lang, origin, err)
	}

	kinds := placeSlots(file, ph.String(), prefix)
	param := map[Repl]int{}      // the parameter of a value as it is
	arithParam := map[Repl]int{} // the parameter of a value as a canonical integer
	docs := map[*syntax.Redirect]int{}
	for _, f := range reps {
		place, ok := kinds[f.phStart]
		if !ok {
			continue // not a place for a value: left as written
		}
		s := shellSlot{start: f.start, end: f.end, repl: f.repl, kind: place.kind, nested: place.nested, backquoted: place.backquoted}
		switch place.kind {
		case slotLiteral:
			d, ok := docs[place.doc]
			if !ok {
				d = len(t.docs)
				docs[place.doc] = d
				delim, _ := unquotedDelim(place.doc.Word)
				doc := quotedDoc{start: origin(int(place.doc.Hdoc.Pos().Offset())), delim: delim, dashTabs: place.doc.Op == syntax.DashHdoc}
				doc.end = doc.bodyEnd(line)
				t.docs = append(t.docs, doc)
			}
			s.doc = d
		case slotArith:
			s.param = t.paramFor(arithParam, f.repl, true)
		default:
			s.param = t.paramFor(param, f.repl, false)
		}
		t.slots = append(t.slots, s)
	}
	if len(t.slots) == 0 {
		t.appendValues = true
	}
	// The command line, split where a value is written in.
	var b strings.Builder
	last := 0
	for _, s := range t.slots {
		b.WriteString(line[last:s.start])
		last = s.end
		ref := "${" + strconv.Itoa(s.param) + "}"
		switch s.kind {
		case slotWord, slotPattern:
			b.WriteString(`"` + ref + `"`)
		case slotDouble, slotHeredoc, slotArith:
			b.WriteString(ref)
		case slotSingle:
			b.WriteString(`'"` + ref + `"'`)
		case slotANSI:
			b.WriteString(`'"` + ref + `"$'`)
		case slotLiteral:
			t.script = append(t.script, b.String())
			b.Reset()
		}
	}
	b.WriteString(line[last:])
	if t.appendValues {
		b.WriteString(` "$@"`) // every value, each one word, after the others
	}
	t.script = append(t.script, b.String())
	return nil
}

// paramFor returns the positional parameter that carries r's value, numbering a new
// one on first use. An arithmetic value has a parameter of its own, which carries the
// value as a canonical integer.
func (t *Template) paramFor(seen map[Repl]int, r Repl, arith bool) int {
	if n, ok := seen[r]; ok {
		return n
	}
	t.params = append(t.params, shellParam{repl: r, arith: arith})
	seen[r] = len(t.params)
	return len(t.params)
}

// shellParam is what a positional parameter of a shell template carries.
type shellParam struct {
	repl  Repl
	arith bool // the value as a decimal integer without leading zeros
}

// parseError words a parser error with the line and column in the template as
// written.
func parseError(line string, lang syntax.LangVariant, origin func(int) int, err error) error {
	var pe syntax.ParseError
	var le syntax.LangError
	var off int
	var msg string
	switch {
	case errors.As(err, &pe):
		off, msg = int(pe.Pos.Offset()), pe.Text
	case errors.As(err, &le):
		off, msg = int(le.Pos.Offset()), "not in "+langName(lang)+": "+le.Feature
		if le.LangUsed == syntax.LangPOSIX {
			msg += " (give --shell bash for bash)"
		}
	default:
		return fmt.Errorf("the template is not valid %s: %w", langName(lang), err)
	}
	off = min(origin(off), len(line))
	ln := 1 + strings.Count(line[:off], "\n")
	col := 1 + off - (strings.LastIndexByte(line[:off], '\n') + 1)
	return fmt.Errorf("the template is not valid %s: %d:%d: %s", langName(lang), ln, col, msg)
}

// place is where the parser found a placeholder.
type place struct {
	kind       slotKind
	doc        *syntax.Redirect // slotLiteral: the heredoc
	nested     bool             // see shellSlot
	backquoted bool
}

// placeSlots walks the syntax tree of text and returns, by offset, where each
// placeholder (a ${prefixN_} expansion) stands.
func placeSlots(file *syntax.File, text, prefix string) map[int]place {
	type ctx struct {
		kind       slotKind // the quoting around: slotWord, slotDouble, slotHeredoc or slotArith
		arith      bool     // inside arithmetic, at any depth of quoting
		nested     bool     // in the word of a ${…} inside "…"
		backquoted bool     // inside `…`
	}
	places := map[int]place{}
	role := map[syntax.Node]ctx{} // a child whose place its parent decides
	stack := []ctx{{kind: slotWord}}
	isPlaceholder := func(pe *syntax.ParamExp) bool {
		return !pe.Short && pe.Param != nil && strings.HasPrefix(pe.Param.Value, prefix) &&
			pe.Index == nil && pe.Exp == nil && pe.Repl == nil && pe.Slice == nil &&
			!pe.Excl && !pe.Length && !pe.Width && pe.Names == 0 && pe.Flags == nil && len(pe.Modifiers) == 0
	}
	literal := func(value string, at int, p place) {
		for i := 0; ; {
			j := strings.Index(value[i:], "${"+prefix)
			if j < 0 {
				return
			}
			places[at+i+j] = p
			i += j + 2
		}
	}
	arith := ctx{kind: slotArith, arith: true}
	syntax.Walk(file, func(n syntax.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		c := stack[len(stack)-1]
		if r, ok := role[n]; ok {
			c = r
		}
		switch n := n.(type) {
		case *syntax.CmdSubst:
			c = ctx{kind: slotWord, backquoted: c.backquoted || n.Backquotes} // a command of its own
		case *syntax.ProcSubst:
			c = ctx{kind: slotWord, backquoted: c.backquoted}
		case *syntax.DblQuoted:
			if !c.arith {
				c.kind = slotDouble
			}
		case *syntax.ArithmExp, *syntax.ArithmCmd, *syntax.LetClause:
			c = arith
		case *syntax.ForClause:
			if loop, ok := n.Loop.(*syntax.CStyleLoop); ok {
				role[loop] = arith
			}
		case *syntax.Assign:
			if n.Index != nil {
				role[n.Index] = arith
			}
		case *syntax.ArrayElem:
			if n.Index != nil {
				role[n.Index] = arith
			}
		case *syntax.BinaryTest: // [[ x -eq y ]] evaluates x and y as arithmetic
			switch n.Op {
			case syntax.TsEql, syntax.TsNeq, syntax.TsLeq, syntax.TsGeq, syntax.TsLss, syntax.TsGtr:
				role[n.X], role[n.Y] = arith, arith
			}
		case *syntax.Redirect:
			if n.Hdoc != nil && (n.Op == syntax.Hdoc || n.Op == syntax.DashHdoc) {
				if _, quoted := unquotedDelim(n.Word); quoted {
					from := int(n.Hdoc.Pos().Offset())
					to := max(from, min(int(n.Hdoc.End().Offset()), len(text)))
					literal(text[from:to], from, place{kind: slotLiteral, doc: n, backquoted: c.backquoted})
					role[n.Hdoc] = ctx{kind: slotLiteral, backquoted: c.backquoted} // nothing inside is expanded
				} else {
					role[n.Hdoc] = ctx{kind: slotHeredoc, backquoted: c.backquoted}
				}
			}
		case *syntax.SglQuoted:
			if c.kind != slotLiteral && !c.arith { // quotes inside arithmetic: no place for a value
				kind, at := slotSingle, int(n.Left.Offset())+1
				if n.Dollar {
					kind, at = slotANSI, at+1
				}
				literal(n.Value, at, place{kind: kind, backquoted: c.backquoted})
			}
		case *syntax.ParamExp:
			if isPlaceholder(n) {
				if c.kind != slotLiteral {
					places[int(n.Pos().Offset())] = place{kind: c.kind, nested: c.nested, backquoted: c.backquoted}
				}
				break
			}
			if n.Index != nil {
				role[n.Index] = arith
			}
			if n.Slice != nil {
				if n.Slice.Offset != nil {
					role[n.Slice.Offset] = arith
				}
				if n.Slice.Length != nil {
					role[n.Slice.Length] = arith
				}
			}
			pattern := ctx{kind: slotPattern, arith: c.arith, backquoted: c.backquoted}
			if c.arith {
				pattern.kind = slotArith
			}
			if n.Repl != nil {
				role[n.Repl.Orig] = pattern
				if n.Repl.With != nil {
					role[n.Repl.With] = pattern
				}
			}
			if n.Exp != nil && n.Exp.Word != nil {
				switch n.Exp.Op {
				case syntax.AlternateUnset, syntax.AlternateUnsetOrNull, syntax.DefaultUnset, syntax.DefaultUnsetOrNull,
					syntax.ErrorUnset, syntax.ErrorUnsetOrNull, syntax.AssignUnset, syntax.AssignUnsetOrNull:
					// a default is expanded as the text around it is
					if c.kind == slotDouble {
						d := c
						d.nested = true
						role[n.Exp.Word] = d
					}
				default:
					role[n.Exp.Word] = pattern
				}
			}
		}
		stack = append(stack, c)
		return true
	})
	return places
}

// unquotedDelim returns the delimiter of a heredoc as the shell compares body lines
// with it (quotes and backslashes removed), and whether any part of it was quoted,
// which keeps the body from being expanded.
func unquotedDelim(w *syntax.Word) (string, bool) {
	var b strings.Builder
	quoted := false
	for _, part := range w.Parts {
		switch p := part.(type) {
		case *syntax.Lit:
			if strings.Contains(p.Value, `\`) {
				quoted = true
				for i := 0; i < len(p.Value); i++ {
					if p.Value[i] == '\\' && i+1 < len(p.Value) {
						i++
					}
					b.WriteByte(p.Value[i])
				}
			} else {
				b.WriteString(p.Value)
			}
		case *syntax.SglQuoted:
			quoted = true
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			quoted = true
			for _, q := range p.Parts {
				if l, ok := q.(*syntax.Lit); ok {
					b.WriteString(l.Value)
				}
			}
		}
	}
	return b.String(), quoted
}

// ArithSources returns the input sources (1-based, in order, each once) whose
// values stand in arithmetic somewhere in the template: every value of theirs must be
// a decimal integer. It lets a task file check a matrix axis before anything runs.
func (t *Template) ArithSources() []int {
	var srcs []int
	for _, s := range t.slots {
		if s.kind == slotArith && s.repl.Pos > 0 && !slices.Contains(srcs, s.repl.Pos) {
			srcs = append(srcs, s.repl.Pos)
		}
	}
	return srcs
}

// HasQuotedHeredoc reports whether a value is written into a quoted heredoc body,
// where Check must see each combination of values.
func (t *Template) HasQuotedHeredoc() bool { return len(t.docs) > 0 }

// Check reports whether the values (one per input source) and sequence number may
// run in the template: a value that stands in arithmetic must be a decimal integer,
// and a value written into a quoted heredoc body must not hold a line that ends it.
// A task whose values fail the check must not run: Args gives it a command that
// fails with the same message.
func (t *Template) Check(values []string, seq int) error {
	for _, s := range t.slots {
		if s.kind == slotArith {
			if _, err := arithValue(s.repl.Value(values, seq, 1)); err != nil {
				return fmt.Errorf("%s stands in arithmetic, and %w", t.source[s.start:s.end], err)
			}
		}
	}
	for d, doc := range t.docs {
		var body strings.Builder
		last, token := doc.start, ""
		for _, s := range t.slots {
			if s.kind == slotLiteral && s.doc == d {
				body.WriteString(t.source[last:s.start])
				body.WriteString(s.repl.Value(values, seq, 1))
				last, token = s.end, t.source[s.start:s.end]
			}
		}
		body.WriteString(t.source[last:doc.end])
		// The body ends with the newline before the delimiter's line.
		for l := range strings.SplitSeq(strings.TrimSuffix(body.String(), "\n"), "\n") {
			if doc.isDelim(l) {
				return fmt.Errorf("%s stands in a heredoc quoted as <<'%s', and its value would end it with a line %q", token, doc.delim, l)
			}
		}
	}
	return nil
}

// arithValue returns v as the shell's arithmetic reads it safely: a decimal integer
// with an optional sign, that fits in 64 bits, written without leading zeros (which
// would make it octal). Anything else could be an expression: in bash, even a[$(cmd)]
// runs cmd.
func arithValue(v string) (string, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return "", fmt.Errorf("its value %q is not a decimal integer of 64 bits", v)
	}
	return strconv.FormatInt(n, 10), nil
}

// shellArgs returns the argv that runs a shell template for values.
func (t *Template) shellArgs(values []string, seq, slot int) []string {
	if err := t.Check(values, seq); err != nil {
		// Never reached for a task made by a source, which Check marks invalid; still,
		// such values must not run: the task fails with the reason.
		return append(jobs.ShellArgs(t.shell, `printf 'gorun: %s\n' "$1" >&2; exit 2`), "gorun", err.Error())
	}
	script := t.script[0]
	if len(t.script) > 1 {
		var b strings.Builder
		i := 0
		for _, s := range t.slots {
			if s.kind == slotLiteral {
				b.WriteString(t.script[i])
				b.WriteString(s.repl.Value(values, seq, slot))
				i++
			}
		}
		b.WriteString(t.script[i])
		script = b.String()
	}
	args := make([]string, 0, 4+len(t.params)+len(values))
	args = append(args, jobs.ShellArgs(t.shell, script)...)
	args = append(args, "gorun")
	for _, p := range t.params {
		v := p.repl.Value(values, seq, slot)
		if n, err := arithValue(v); p.arith && err == nil {
			v = n
		}
		args = append(args, v)
	}
	if t.appendValues {
		args = append(args, values...)
	}
	return args
}

// shellCommand returns the command line of a shell template for values as a person
// reads it: each value written in its place, quoted as that place needs.
func (t *Template) shellCommand(values []string, seq int) string {
	var b strings.Builder
	last := 0
	for _, s := range t.slots {
		b.WriteString(t.source[last:s.start])
		last = s.end
		v := s.repl.Value(values, seq, 0)
		// After $name, a value that goes on with name characters would lengthen the name.
		glued := s.start > 0 && isNameByte(t.source[s.start-1]) && v != "" && isNameByte(v[0])
		shown := b.Len()
		switch s.kind {
		case slotWord:
			if glued {
				b.WriteString(`'` + strings.ReplaceAll(v, `'`, `'\''`) + `'`)
			} else {
				b.WriteString(jobs.QuoteWord(v))
			}
		case slotPattern:
			b.WriteString(`"` + escapeDouble(v) + `"`)
		case slotDouble:
			switch {
			case s.nested: // bash reads quotes inside ${x:-…} even within "…"
				b.WriteString(`"` + escapeDouble(v) + `"`)
			case glued:
				b.WriteString(`""` + escapeDouble(v))
			default:
				b.WriteString(escapeDouble(v))
			}
		case slotHeredoc:
			b.WriteString(escapeHeredoc(v))
		case slotSingle:
			b.WriteString(strings.ReplaceAll(v, `'`, `'\''`))
		case slotANSI:
			b.WriteString(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v))
		case slotArith:
			if n, err := arithValue(v); err == nil {
				v = n
			}
			b.WriteString(v)
		case slotLiteral:
			b.WriteString(v)
		}
		if s.backquoted { // `…` takes \ \` and \$ as escapes before it parses its command
			text := b.String()
			b.Reset()
			b.WriteString(text[:shown])
			b.WriteString(escapeHeredoc(text[shown:]))
		}
	}
	b.WriteString(t.source[last:])
	if t.appendValues {
		for _, v := range values {
			b.WriteString(" " + jobs.QuoteWord(v))
		}
	}
	return b.String()
}

func isNameByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// escapeDouble escapes v for the inside of double quotes.
func escapeDouble(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(v)
}

// escapeHeredoc escapes v for the body of a heredoc with an unquoted delimiter.
func escapeHeredoc(v string) string {
	return strings.NewReplacer(`\`, `\\`, "$", `\$`, "`", "\\`").Replace(v)
}
