package input

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// contextValues are the hostile values of the context table: those of hostile, and
// more that break a particular place (arithmetic, a heredoc).
var contextValues = append(append([]string{}, hostile...),
	"a[$(touch PWNED)]", "x[`touch PWNED`]", "EOF", "x\nEOF\ny", "", "~", "~root/x",
	"日本語 ✓", "-5", "+7", "007", "42", "9223372036854775807", "9223372036854775808",
	"1 + 1", "0x10", "$((1))", "\\", "}", "${PWNED:-x}",
)

// isInteger reports whether v is what arithmetic takes: a decimal integer of 64 bits.
func isInteger(v string) bool {
	_, err := strconv.ParseInt(v, 10, 64)
	return err == nil
}

// shellContext is a place a replacement string can stand in a one-word template, with
// what the command prints for a value, or "" and refuse for a value that must not run.
type shellContext struct {
	name   string
	line   string
	bash   bool // bash syntax only
	want   func(v string) string
	refuse func(v string) bool
}

func bracketed(v string) string { return "[" + v + "]" }

func arith(f func(n int64) int64) func(string) string {
	return func(v string) string {
		n, _ := strconv.ParseInt(v, 10, 64)
		return "[" + strconv.FormatInt(f(n), 10) + "]"
	}
}

func notInteger(v string) bool { return !isInteger(v) }

var shellContexts = []shellContext{
	{name: "word", line: `printf '[%s]' {}`, want: bracketed},
	{name: "part of a word", line: `printf '%s' [{}]`, want: bracketed},
	{name: "double quotes", line: `printf '[%s]' "{}"`, want: bracketed},
	{name: "single quotes", line: `printf '%s' '[{}]'`, want: bracketed},
	{name: "ANSI-C quotes", line: `printf '%s' $'[{}]'`, bash: true, want: bracketed},
	{name: "assignment", line: `x={}; printf '[%s]' "$x"`, want: bracketed},
	{name: "after a parameter", line: `x=[; printf '%s' $x{}]`, want: bracketed},
	{name: "arithmetic", line: `printf '[%s]' $(( {} * 2 ))`, want: arith(func(n int64) int64 { return n * 2 }), refuse: notInteger},
	{name: "arithmetic in double quotes", line: `printf '[%s]' "$(( {} + 1 ))"`, want: arith(func(n int64) int64 { return n + 1 }), refuse: notInteger},
	{name: "arithmetic command", line: `(( x = {} )); printf '[%s]' "$x"`, bash: true, want: arith(func(n int64) int64 { return n }), refuse: notInteger},
	{name: "let", line: `let x={}; printf '[%s]' "$x"`, bash: true, want: arith(func(n int64) int64 { return n }), refuse: notInteger},
	{name: "array index", line: `a[{}%5+5]=x; printf '[%s]' "${#a[@]}"`, bash: true, want: func(string) string { return "[1]" }, refuse: notInteger},
	{name: "array index read", line: `a=(x); printf '[%s]' "${a[{}]}"`, bash: true, want: func(v string) string {
		if n, _ := strconv.ParseInt(v, 10, 64); n == 0 || n == -1 {
			return "[x]"
		}
		return "[]"
	}, refuse: notInteger},
	{name: "[[ -eq ]]", line: `[[ {} -eq 42 ]] && printf '[42]' || printf '[%s]' no`, bash: true, want: func(v string) string {
		if n, _ := strconv.ParseInt(v, 10, 64); n == 42 {
			return "[42]"
		}
		return "[no]"
	}, refuse: notInteger},
	{name: "[[ == ]]", line: `[[ "x{}" == x{} ]] && printf '[%s]' "{}"`, bash: true, want: bracketed},
	{name: "heredoc", line: "cat <<EOF\n[{}]\nEOF", want: func(v string) string { return "[" + v + "]\n" }},
	{name: "heredoc <<-", line: "cat <<-EOF\n\t[{}]\n\tEOF", want: func(v string) string { return "[" + v + "]\n" }},
	{name: "quoted heredoc", line: "cat <<'EOF'\n[{}]\nEOF", want: func(v string) string { return "[" + v + "]\n" },
		refuse: func(v string) bool { return strings.Contains(v, "\nEOF\n") }},
	{name: "quoted heredoc, a line of its own", line: "cat <<\"EOF\"\n{}\nEOF\nprintf '[%s]' after", want: func(v string) string { return v + "\n[after]" },
		refuse: func(v string) bool {
			return v == "EOF" || strings.HasPrefix(v, "EOF\n") || strings.Contains(v, "\nEOF\n") || strings.HasSuffix(v, "\nEOF")
		}},
	{name: "default", line: `printf '[%s]' ${unset_x:-{}}`, want: bracketed},
	{name: "default in double quotes", line: `printf '[%s]' "${unset_x:-{}}"`, want: bracketed},
	{name: "alternate in double quotes", line: `x=1; printf '[%s]' "${x:+{}}"`, want: bracketed},
	{name: "prefix pattern", line: `x={}tail; printf '[%s]' ${x#{}}`, want: func(string) string { return "[tail]" }},
	{name: "prefix pattern in double quotes", line: `x={}tail; printf '[%s]' "${x#{}}"`, want: func(string) string { return "[tail]" }},
	{name: "command substitution", line: `printf '[%s]' "$(printf '%s' {})"`, want: func(v string) string { return "[" + strings.TrimRight(v, "\n") + "]" }},
	{name: "backquotes", line: "printf '[%s]' \"`printf '%s' {}`\"", want: func(v string) string { return "[" + strings.TrimRight(v, "\n") + "]" }},
}

// TestShellContexts runs every value of the injection table in every place of a
// one-word template through real sh and bash: the command prints exactly the value
// (or what the place makes of it), a value that a place cannot take fails the task
// and runs nothing, no value ever runs as code, and the command line that Command
// shows prints the same when a shell reads it.
func TestShellContexts(t *testing.T) {
	for _, shell := range []string{"/bin/sh", "bash"} {
		if _, err := exec.LookPath(shell); err != nil {
			t.Fatalf("%s: %v", shell, err)
		}
		for _, c := range shellContexts {
			if c.bash && shell != "bash" {
				continue
			}
			tmpl, err := NewTemplate([]string{c.line}, shell)
			if err != nil {
				t.Fatalf("%s, %s: %v", shell, c.name, err)
			}
			for _, v := range contextValues {
				values := []string{v}
				dir := t.TempDir()
				args := tmpl.Args(values, 1, 1)
				cmd := exec.Command(args[0], args[1:]...)
				cmd.Dir = dir
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, runErr := cmd.Output()
				checkErr := tmpl.Check(values, 1)
				refused := c.refuse != nil && c.refuse(v)
				switch {
				case refused && checkErr == nil:
					t.Errorf("%s, %s, %q: Check took the value, want an error", shell, c.name, v)
				case !refused && checkErr != nil:
					t.Errorf("%s, %s, %q: Check: %v", shell, c.name, v, checkErr)
				case refused && runErr == nil:
					t.Errorf("%s, %s, %q: the refused value ran and printed %q", shell, c.name, v, out)
				case !refused && runErr != nil:
					t.Errorf("%s, %s, %q: %v: %s", shell, c.name, v, runErr, stderr.String())
				case !refused && string(out) != c.want(v):
					t.Errorf("%s, %s: got %q, want %q", shell, c.name, out, c.want(v))
				}
				if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
					t.Errorf("%s, %s, %q: the value ran as shell code", shell, c.name, v)
				}
				if refused {
					continue
				}
				if strings.Contains(c.name, "heredoc") && strings.Contains(v, "\nEOF\n") {
					continue // Command cannot show a line of an unquoted heredoc that is its delimiter
				}
				shown := tmpl.Command(values, 1)
				cmd = exec.Command(shell, "-c", shown)
				cmd.Dir = dir
				if again, err := cmd.Output(); err != nil || string(again) != string(out) {
					t.Errorf("%s, %s, %q: Command %q printed %q (%v), the task %q", shell, c.name, v, shown, again, err, out)
				}
				if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
					t.Errorf("%s, %s, %q: Command %q ran the value as shell code", shell, c.name, v, shown)
				}
			}
		}
	}
}

// TestShellTemplateScript pins the command line a one-word template runs, place by
// place.
func TestShellTemplateScript(t *testing.T) {
	for _, tt := range []struct {
		shell, line, want string
		params            []string // for the values "v" and "8"
	}{
		{"/bin/sh", `echo {} "{}" '{}'`, `echo "${1}" "${1}" ''"${1}"''`, []string{"v 8"}},
		{"/bin/sh", `echo {} $(( {2} + {2} )) {2}`, `echo "${1}" $(( ${2} + ${2} )) "${3}"`, []string{"v 8", "8", "8"}},
		{"/bin/sh", "cat <<EOF\n{}\nEOF", "cat <<EOF\n${1}\nEOF", []string{"v 8"}},
		{"/bin/sh", "cat <<'EOF'\n{1}\nEOF", "cat <<'EOF'\nv\nEOF", nil},
		{"/bin/sh", `echo ${x:-{}} "${x:-{}}" ${x%{}}`, `echo ${x:-"${1}"} "${x:-${1}}" ${x%"${1}"}`, []string{"v 8"}},
		{"bash", `echo $'{}' a[{2}]`, `echo $''"${1}"$'' a["${2}"]`, []string{"v 8", "8"}},
		{"bash", `a[{2}]=1; echo "${a[{2}]}" ${x:{2}:1}`, `a[${1}]=1; echo "${a[${1}]}" ${x:${1}:1}`, []string{"8"}},
		{"/bin/sh", `echo \{} # {}`, `echo \{} # {} "$@"`, []string{}},
		{"/bin/sh", `echo $x{}{}`, `echo $x"${1}""${1}"`, []string{"v 8"}},
		{"/bin/sh", "echo `echo {}`", "echo `echo \"${1}\"`", []string{"v 8"}},
		{"/bin/sh", "{}=1 env", `"${1}"=1 env`, []string{"v 8"}},
	} {
		tmpl, err := NewTemplate([]string{tt.line}, tt.shell)
		if err != nil {
			t.Fatalf("%q: %v", tt.line, err)
		}
		args := tmpl.Args([]string{"v", "8"}, 1, 1)
		if got := args[2]; got != tt.want {
			t.Errorf("%s %q: got script %q, want %q", tt.shell, tt.line, got, tt.want)
		}
		if tt.params == nil {
			tt.params = []string{}
		}
		if tt.line == `echo \{} # {}` {
			tt.params = []string{"v", "8"} // no replacement string: the values are appended
		}
		if got := args[4:]; strings.Join(got, "|") != strings.Join(tt.params, "|") {
			t.Errorf("%s %q: got parameters %q, want %q", tt.shell, tt.line, got, tt.params)
		}
	}
}

// TestShellTemplateErrors: a template the parser rejects names the line and column
// of the template as written; a value a place cannot take names the replacement
// string and the value.
func TestShellTemplateErrors(t *testing.T) {
	for _, tt := range []struct{ shell, line, want string }{
		{"/bin/sh", `echo {} {.} "{/}`, `the template is not valid POSIX sh: 1:13: reached EOF without closing quote ` + "`\"`"},
		{"/bin/sh", "echo {}\necho {} |", "the template is not valid POSIX sh: 2:9: `|` must be followed by a statement"},
		{"/bin/sh", "echo {} ${x:1}", "the template is not valid POSIX sh: 1:12: not in POSIX sh: slicing (give --shell bash for bash)"},
		{"/usr/bin/bash", "echo {} $((", "the template is not valid bash: 1:9: `$((` must be followed by an expression"},
	} {
		_, err := NewTemplate([]string{tt.line}, tt.shell)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s %q: got error %v, want %q", tt.shell, tt.line, err, tt.want)
		}
	}
	tmpl, err := NewTemplate([]string{"echo $(( {2} ))"}, "/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	want := `{2} stands in arithmetic, and its value "1e3" is not a decimal integer of 64 bits`
	if err := tmpl.Check([]string{"x", "1e3"}, 1); err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	// Args of such values runs nothing of the template: it fails with the reason.
	args := tmpl.Args([]string{"x", "1e3"}, 1, 1)
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err == nil || string(out) != "gorun: "+want+"\n" {
		t.Errorf("got %q (%v), want a failure saying %q", out, err, want)
	}
	if got := tmpl.MaxSource(); got != 2 {
		t.Errorf("MaxSource: got %d, want 2", got)
	}
}

// FuzzShellTemplate compiles one-word templates in sh and in bash: compiling never
// panics, a template it refuses gets a one-line error, and a value never appears in
// the command line the shell parses, except in the body of a quoted heredoc, where
// nothing is expanded.
func FuzzShellTemplate(f *testing.F) {
	for _, c := range shellContexts {
		f.Add(c.line, "v", c.bash)
	}
	for _, v := range contextValues {
		f.Add("echo {} $(( {} )) \"${x:-{}}\"", v, true)
	}
	f.Add("cat <<'E'\n{}\nE\ncat <<-\"F\"\n\t{2}\nF", "E", false)
	f.Add("echo ${{}} $\\{} {} # {}", "x", false)
	f.Fuzz(func(t *testing.T, line, value string, bash bool) {
		shell := "/bin/sh"
		if bash {
			shell = "/bin/bash"
		}
		tmpl, err := NewTemplate([]string{line}, shell)
		if err != nil {
			if line != "" && strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: an error of several lines: %q", line, err)
			}
			return
		}
		value = "\x01" + value + "\x01" // never in a line the fuzzer did not put it in
		values := []string{value, value}
		_ = tmpl.Command(values, 1)
		checkErr := tmpl.Check(values, 1)
		args := tmpl.Args(values, 1, 1)
		if strings.Contains(line, "\x01") || checkErr != nil {
			return
		}
		for _, s := range tmpl.slots {
			if s.kind == slotLiteral {
				return
			}
		}
		script := args[2]
		if script == "--" {
			script = args[3]
		}
		if strings.Contains(script, "\x01") {
			t.Fatalf("%q: the value is in the command line %q", line, script)
		}
	})
}
