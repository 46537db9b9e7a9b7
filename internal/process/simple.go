package process

import (
	"strings"
	"sync"
	"unicode/utf8"

	"mvdan.cc/sh/v3/syntax"
)

// SimpleArgv reports whether line, a command line for POSIX sh (`sh -c line`), is a
// simple command that gorun may run directly, and returns the argv the shell would
// build for it. It is one when the shell would do nothing with it but remove quotes
// and start a program:
//
//   - one command: no list (`;`, `&&`, `||`, `&`), no pipe, no `!`, no compound
//     command or reserved word, no comment, no redirection, no assignment;
//   - every word made of plain characters, single quotes and double quotes, with
//     backslash escapes: no `$` of any kind (parameters, `$(…)`, `$((…))`, `$'…'`),
//     no backquotes, no unquoted `*`, `?`, `[` (patterns) and no unquoted `~`;
//   - valid UTF-8 without control characters other than tab and newline;
//   - the command is not a shell builtin (`cd`, `exit`, `export`, `printf`, `test`,
//     …), whose behaviour as a program of the same name can differ, with three
//     exceptions that behave the same for the arguments let through: `true` and
//     `false` without arguments, and `echo` when no argument starts with `-` or holds
//     a backslash.
//
// The line is read with a real shell parser (mvdan.cc/sh/v3/syntax, POSIX mode), so
// quoting is understood, not guessed. Anything else, including a line the parser
// rejects, is not simple, and runs through the shell as written. SimpleArgv is safe
// for concurrent use.
func SimpleArgv(line string) ([]string, bool) {
	if strings.ContainsAny(line, "$`") && !quotedOnly(line) {
		return nil, false // an expansion: no need to parse
	}
	if strings.IndexFunc(line, isControl) >= 0 || !utf8.ValidString(line) {
		return nil, false // the parser reads a carriage return as a blank, sh does not; and sh reads bytes
	}
	p := parsers.Get().(*syntax.Parser)
	defer parsers.Put(p)
	f, err := p.Parse(strings.NewReader(line), "")
	if err != nil || len(f.Stmts) != 1 || len(f.Last) != 0 {
		return nil, false
	}
	st := f.Stmts[0]
	if st.Negated || st.Background || st.Coprocess || st.Disown || st.Semicolon.IsValid() ||
		len(st.Redirs) != 0 || len(st.Comments) != 0 {
		return nil, false
	}
	call, ok := st.Cmd.(*syntax.CallExpr)
	if !ok || len(call.Assigns) != 0 || len(call.Args) == 0 {
		return nil, false
	}
	argv := make([]string, len(call.Args))
	for i, w := range call.Args {
		s, ok := plainWord(w)
		if !ok {
			return nil, false
		}
		argv[i] = s
	}
	if !directOK(argv) {
		return nil, false
	}
	return argv, true
}

// parsers keeps POSIX parsers for reuse: a Parser is not safe for concurrent use, and
// making one per line costs more than the parse.
var parsers = sync.Pool{New: func() any {
	return syntax.NewParser(syntax.Variant(syntax.LangPOSIX), syntax.KeepComments(true))
}}

// isControl reports whether r is a control character other than tab and newline.
func isControl(r rune) bool { return (r < ' ' && r != '\t' && r != '\n') || r == 0x7f }

// quotedOnly reports whether every `$` and backquote of line lies inside single
// quotes, where the shell reads them as plain characters; the parser decides the rest.
func quotedOnly(line string) bool {
	inSingle, inDouble := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inSingle:
			inSingle = c != '\''
		case c == '\\':
			i++ // the next character is escaped (inside double quotes too, for $ and `)
		case c == '\'' && !inDouble:
			inSingle = true
		case c == '"':
			inDouble = !inDouble
		case c == '$' || c == '`':
			return false
		}
	}
	return true
}

// plainWord returns the word the shell makes of w when it would only remove quotes:
// when w is made of literals without unquoted pattern characters or tilde,
// single-quoted strings, and double-quoted strings of literals. Quote removal follows
// POSIX (2.2 Quoting): an unquoted backslash keeps the next character and drops a
// newline; inside double quotes it does so only before $ ` " \ and newline.
func plainWord(w *syntax.Word) (string, bool) {
	var b strings.Builder
	for _, part := range w.Parts {
		switch x := part.(type) {
		case *syntax.Lit:
			if unquotedSpecial(x.Value) {
				return "", false
			}
			unescape(&b, x.Value, "")
		case *syntax.SglQuoted:
			if x.Dollar {
				return "", false
			}
			b.WriteString(x.Value)
		case *syntax.DblQuoted:
			if x.Dollar {
				return "", false
			}
			for _, dp := range x.Parts {
				lit, ok := dp.(*syntax.Lit)
				if !ok {
					return "", false
				}
				unescape(&b, lit.Value, "$`\"\\\n")
			}
		default:
			return "", false
		}
	}
	return b.String(), true
}

// unescape writes raw with its backslashes removed: every backslash when only is "",
// else those before a character of only. A backslash before a newline goes with it.
func unescape(b *strings.Builder, raw, only string) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 == len(raw) {
			b.WriteByte(c)
			continue
		}
		next := raw[i+1]
		switch {
		case next == '\n':
			i++
		case only == "" || strings.IndexByte(only, next) >= 0:
			b.WriteByte(next)
			i++
		default:
			b.WriteByte(c)
		}
	}
}

// unquotedSpecial reports whether the raw text of an unquoted literal holds a
// character the shell would expand: a pattern character (*, ?, [) or a tilde, unless
// escaped with a backslash. A tilde anywhere counts, to stay on the safe side.
func unquotedSpecial(raw string) bool {
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '\\':
			i++
		case '*', '?', '[', '~':
			return true
		}
	}
	return false
}

// directOK reports whether argv, a simple command's words, may run as a program: its
// name is no reserved word and no builtin of a POSIX shell (dash, bash or busybox
// sh), except true and false without arguments and echo with arguments that every
// echo prints the same.
func directOK(argv []string) bool {
	name := argv[0]
	if name == "" || strings.ContainsRune(name, '\n') {
		return false
	}
	if strings.ContainsRune(name, '/') {
		return true // a path: never a builtin, and never looked up in PATH
	}
	switch name {
	case "true", "false":
		return len(argv) == 1
	case "echo":
		for _, a := range argv[1:] {
			if strings.HasPrefix(a, "-") || strings.ContainsRune(a, '\\') {
				return false
			}
		}
		return true
	}
	_, special := shellWords[name]
	return !special
}

// shellWords are the reserved words and builtins of common POSIX shells (dash, bash in
// POSIX mode, busybox ash, mksh), plus the POSIX utilities a shell may build in. A
// command so named may mean something else to the shell than the program of that name.
var shellWords = func() map[string]struct{} {
	m := make(map[string]struct{})
	for _, w := range strings.Fields(`
		! { } [[ ]] case do done elif else esac fi for function if in select then time until while coproc
		. : [ alias bg bind break builtin caller cd chdir command compgen complete compopt continue
		declare dirs disown echo enable eval exec exit export false fc fg getopts hash help history
		jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly return set
		shift shopt source suspend test times trap true type typeset ulimit umask unalias unset wait
		newgrp nameref print whence autoload`) {
		m[w] = struct{}{}
	}
	return m
}()
