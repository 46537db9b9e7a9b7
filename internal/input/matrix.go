package input

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/gorun/gorun/internal/jobs"
)

// MaxMatrixTasks bounds the tasks that the matrices of one task file make, all
// together: every combination is a task held in memory (a larger sweep streams from
// `gorun exec -- TEMPLATE ::: …`).
const MaxMatrixTasks = 100_000

// MaxMatrixNeeds bounds the needs between single tasks that a task file's `needs`
// make once matrices are expanded: a matrix of 1,000 that needs a matrix of 1,000 is a
// million.
const MaxMatrixNeeds = 1 << 22

// rawMatrix is a task's `matrix:` as written: its axes, in the order written. The YAML
// reader fills it from the node (keeping the order and the positions, which a Go map
// would lose); the streaming JSON reader leaves a file with a matrix to it. A value
// that is not an axis of values is recorded in bad, for the parser to report where it
// stands.
type rawMatrix struct {
	axes []rawAxis
	bad  *rawBad
}

type rawAxis struct {
	name      string
	line, col int // of the name
	values    []rawValue
}

type rawValue struct {
	text      string
	line, col int
}

type rawBad struct {
	line, col int
	key, msg  string // key: "matrix", or "matrix.AXIS", "matrix.AXIS[N]"
}

// UnmarshalYAML implements the YAML decoder's NodeUnmarshaler.
func (m *rawMatrix) UnmarshalYAML(n ast.Node) error {
	var pairs []*ast.MappingValueNode
	switch x := n.(type) {
	case *ast.MappingNode:
		pairs = x.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{x}
	default:
		m.badAt(n, "matrix", "want a mapping of axes to lists of values, like {os: [linux, darwin]}, got %s", describeNode(n))
		return nil
	}
	for _, pv := range pairs {
		ax := rawAxis{name: scalarText(pv.Key)}
		ax.line, ax.col = nodePos(pv.Key)
		key := "matrix." + ax.name
		seq, ok := pv.Value.(*ast.SequenceNode)
		if !ok {
			m.badAt(pv.Value, key, "want a list of values, like [a, b], got %s", describeNode(pv.Value))
			return nil
		}
		for j, v := range seq.Values {
			switch v.(type) {
			case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode, *ast.LiteralNode:
			default:
				m.badAt(v, fmt.Sprintf("%s[%d]", key, j), "want a string, number or boolean, got %s", describeNode(v))
				return nil
			}
			rv := rawValue{text: scalarText(v)}
			rv.line, rv.col = nodePos(v)
			ax.values = append(ax.values, rv)
		}
		m.axes = append(m.axes, ax)
	}
	if len(pairs) == 0 {
		m.badAt(n, "matrix", "no axes: want a mapping of axes to lists of values, like {os: [linux, darwin]}")
	}
	return nil
}

func (m *rawMatrix) badAt(n ast.Node, key, format string, args ...any) {
	line, col := nodePos(n)
	m.bad = &rawBad{line: line, col: col, key: key, msg: fmt.Sprintf(format, args...)}
}

// scalarText returns a scalar as its text: a string's value, a number or boolean as
// written (1.50 stays 1.50).
func scalarText(n ast.Node) string {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value
	case *ast.LiteralNode:
		if x.Value != nil {
			return x.Value.Value
		}
		return ""
	case nil:
		return ""
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return n.String()
}

// describeNode names what a YAML node is, in an error.
func describeNode(n ast.Node) string {
	switch n.(type) {
	case *ast.SequenceNode:
		return "a list"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.NullNode, nil:
		return "null"
	case *ast.AliasNode, *ast.AnchorNode:
		return "an anchor or alias (write the values out)"
	case *ast.TagNode:
		return "a tagged value"
	}
	return fmt.Sprintf("%q", scalarText(n))
}

// matrix is a task's matrix, checked: its axes, and what of the task each
// combination changes. A combination is a number c in [0, size); its value of the
// last axis varies fastest, as in GNU parallel's `::: a b ::: x y` (a x, a y, b x,
// b y). Everything but the ids and the values of each combination is shared by the
// tasks it makes.
type matrix struct {
	names  []string
	values [][]string // by axis
	size   int        // combinations
	ids    []string   // by combination: ID[x=a,y=1]
	combos []string   // the values of combination c at [c*len(names) : (c+1)*len(names)]

	run  *Template     // `run` with {NAME} as a positional parameter; nil when it names no axis
	argv *argvTemplate // `cmd` with {NAME} in its words; nil when it names no axis
	// envRefs: the task's own env names an axis, so each combination has its own
	// environment; otherwise they all share the task's.
	envRefs bool
	dirRefs []axisRef // the references of the task's own dir
}

// axisRef is a reference {NAME} in a string: its bytes [start, end), and its axis
// (-1: no axis has that name).
type axisRef struct {
	start, end int
	name       string
	axis       int
}

// axisRefs returns the references {NAME} in s, NAME an identifier (see validAxisName),
// that do not follow a $ or a backslash: ${NAME} is the shell's, and \{NAME} is kept
// as written.
func axisRefs(s string, names []string) []axisRef {
	var refs []axisRef
	for i := 0; i < len(s); i++ {
		if s[i] != '{' || (i > 0 && (s[i-1] == '$' || s[i-1] == '\\')) {
			continue
		}
		end := strings.IndexByte(s[i+1:], '}')
		if end < 0 {
			break
		}
		name := s[i+1 : i+1+end]
		if !validAxisName(name) {
			continue
		}
		r := axisRef{start: i, end: i + end + 2, name: name, axis: -1}
		for k, n := range names {
			if n == name {
				r.axis = k
			}
		}
		refs = append(refs, r)
		i = r.end - 1
	}
	return refs
}

// validAxisName reports whether name can name an axis: letters, digits and _, not
// starting with a digit. No such name is a replacement string of a command template
// ({}, {.}, {1}, {#} …), so {NAME} never reads as one.
func validAxisName(name string) bool {
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for _, c := range []byte(name) {
		if c != '_' && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// substitute returns s with each reference to an axis replaced by that axis's value
// in values.
func substitute(s string, refs []axisRef, values []string) string {
	if len(refs) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, r := range refs {
		b.WriteString(s[last:r.start])
		b.WriteString(values[r.axis])
		last = r.end
	}
	b.WriteString(s[last:])
	return b.String()
}

// matrix checks the matrix of the task at position i, whose spec sp is converted, and
// compiles what each combination changes. id is the task's id, given or default.
func (p *fileParser) matrix(i int, id string, rt *rawTask, sp *jobs.Spec) (*matrix, error) {
	path := fmt.Sprintf("$.tasks[%d]", i)
	where := fmt.Sprintf("task %q: ", id)
	raw := rt.Matrix
	at := func(line, col int, key, format string, args ...any) error {
		if line == 0 { // a node without a position: the matrix's key
			return p.errAt(path+".matrix", where+key, format, args...)
		}
		return &jobs.InputError{File: p.name, Line: line, Col: col, Key: where + key, Msg: fmt.Sprintf(format, args...)}
	}
	if raw.bad != nil {
		return nil, at(raw.bad.line, raw.bad.col, raw.bad.key, "%s", raw.bad.msg)
	}
	if len(raw.axes) == 0 {
		return nil, p.errAt(path+".matrix", where+"matrix", "no axes: want a mapping of axes to lists of values, like {os: [linux, darwin]}")
	}
	m := &matrix{size: 1}
	for _, ax := range raw.axes {
		key := "matrix." + ax.name
		if !validAxisName(ax.name) {
			return nil, at(ax.line, ax.col, "matrix", "invalid axis name %q: want letters, digits and _, not starting with a digit", ax.name)
		}
		if len(ax.values) == 0 {
			return nil, at(ax.line, ax.col, key, "empty list: an axis needs at least one value")
		}
		seen := make(map[string]int, len(ax.values))
		values := make([]string, len(ax.values))
		for j, v := range ax.values {
			vkey := fmt.Sprintf("%s[%d]", key, j)
			if strings.ContainsAny(v.text, "\n\r") {
				return nil, at(v.line, v.col, vkey, "a value is one line (it is part of the task's id), got %q", v.text)
			}
			if first, dup := seen[v.text]; dup {
				return nil, at(v.line, v.col, vkey, "duplicate value %q (also %s[%d])", v.text, ax.name, first)
			}
			seen[v.text] = j
			values[j] = v.text
		}
		if m.size > MaxMatrixTasks/len(values) {
			return nil, at(ax.line, ax.col, key, "more than %d combinations", MaxMatrixTasks)
		}
		m.size *= len(values)
		m.names = append(m.names, ax.name)
		m.values = append(m.values, values)
	}

	// Every {NAME} of the task's own run, cmd, env and dir names an axis.
	check := func(s, path, key string) ([]axisRef, error) {
		refs := axisRefs(s, m.names)
		for _, r := range refs {
			if r.axis < 0 {
				hint := ""
				if key == "run" {
					hint = fmt.Sprintf(" (braces the shell should keep need a blank inside: { %s })", r.name)
				}
				return nil, p.errAt(path, where+key, "unknown axis {%s}: the matrix has %s%s", r.name, m.axisList(), hint)
			}
		}
		return refs, nil
	}
	if sp.Argv == nil {
		refs, err := check(sp.Run, path+".run", "run")
		if err != nil {
			return nil, err
		}
		if m.run, err = p.matrixRun(sp.Run, refs, path, where); err != nil {
			return nil, err
		}
	} else {
		words := make([][]argPart, len(sp.Argv))
		found := false
		for j, w := range sp.Argv {
			refs, err := check(w, fmt.Sprintf("%s.cmd[%d]", path, j), "cmd")
			if err != nil {
				return nil, err
			}
			found = found || len(refs) > 0
			words[j] = splitArg(w, refs)
		}
		if found {
			m.argv = &argvTemplate{words: words}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(sp.Env)) { // the first error is always the same
		refs, err := check(sp.Env[k], path+".env."+k, "env."+k)
		if err != nil {
			return nil, err
		}
		m.envRefs = m.envRefs || len(refs) > 0
	}
	if sp.Dir != nil {
		var err error
		if m.dirRefs, err = check(*sp.Dir, path+".dir", "dir"); err != nil {
			return nil, err
		}
	}

	n := len(m.names)
	m.ids = make([]string, m.size)
	m.combos = make([]string, m.size*n)
	idx := make([]int, n)
	var b strings.Builder
	for c := range m.size {
		rest := c
		for k := n - 1; k >= 0; k-- { // the last axis varies fastest
			idx[k] = rest % len(m.values[k])
			rest /= len(m.values[k])
		}
		b.Reset()
		b.WriteString(id)
		for k := range n {
			if k == 0 {
				b.WriteByte('[')
			} else {
				b.WriteByte(',')
			}
			b.WriteString(m.names[k])
			b.WriteByte('=')
			b.WriteString(m.values[k][idx[k]])
			m.combos[c*n+k] = m.values[k][idx[k]]
		}
		b.WriteByte(']')
		m.ids[c] = b.String()
	}
	if err := m.checkRun(raw, at, func(format string, args ...any) error {
		return p.errAt(path+".run", where+"run", format, args...)
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// checkRun refuses, before anything runs, a value that its place in the run line
// cannot take: a value of an axis that stands in arithmetic must be a decimal
// integer (reported at the value), and no combination may end a quoted heredoc
// early (reported at run, naming the combination).
func (m *matrix) checkRun(raw *rawMatrix, at func(line, col int, key, format string, args ...any) error, atRun func(format string, args ...any) error) error {
	if m.run == nil {
		return nil
	}
	for _, src := range m.run.ArithSources() {
		ax := raw.axes[src-1]
		for j, v := range ax.values {
			if _, err := arithValue(v.text); err != nil {
				return at(v.line, v.col, fmt.Sprintf("matrix.%s[%d]", ax.name, j), "{%s} stands in arithmetic in run, and %v", ax.name, err)
			}
		}
	}
	if !m.run.HasQuotedHeredoc() {
		return nil
	}
	for c := range m.size {
		if err := m.run.Check(m.valuesOf(c), 0); err != nil {
			msg := err.Error()
			for k, name := range m.names { // the run line as compiled names axes by number
				if tok := "{" + strconv.Itoa(k+1) + "} "; strings.HasPrefix(msg, tok) {
					msg = "{" + name + "} " + msg[len(tok):]
				}
			}
			return atRun("combination %s: %s", m.ids[c], msg)
		}
	}
	return nil
}

// matrixRun compiles a matrix task's run line for the shell, as a command template of
// one word: each {NAME} becomes the replacement string of its axis's position ({2} for
// the second axis), which the template turns into a quoted reference to a positional
// parameter that carries the value: a value is never read as shell code. GNU
// parallel's own replacement strings ({}, {1}, {.}, {#} …) have no meaning in a task
// file and would take the values, so a matrix task's run may not hold them.
func (p *fileParser) matrixRun(run string, refs []axisRef, path, where string) (*Template, error) {
	if plain, err := NewTemplate([]string{run}, jobs.DefaultShell); err == nil && !plain.appendValues {
		tok := firstRepl(run)
		return nil, p.errAt(path+".run", where+"run",
			"%s is a replacement string of `gorun exec -- TEMPLATE`, not of a matrix task: write an axis, {NAME} (for a literal %s, quote part of it: {''})", tok, tok)
	}
	if len(refs) == 0 {
		return nil, nil
	}
	var b strings.Builder
	last := 0
	for _, r := range refs {
		b.WriteString(run[last:r.start])
		b.WriteString("{" + strconv.Itoa(r.axis+1) + "}")
		last = r.end
	}
	b.WriteString(run[last:])
	t, err := NewTemplate([]string{b.String()}, jobs.DefaultShell)
	if err != nil {
		return nil, p.errAt(path+".run", where+"run", "%v", err)
	}
	return t, nil
}

// firstRepl returns the first replacement string of a command template in s.
func firstRepl(s string) string {
	for i := range len(s) {
		if _, n, ok := matchRepl(s[i:]); ok {
			return s[i : i+n]
		}
	}
	return "{}"
}

func (m *matrix) axisList() string {
	refs := make([]string, len(m.names))
	for k, n := range m.names {
		refs[k] = "{" + n + "}"
	}
	return strings.Join(refs, ", ")
}

// values returns the values of combination c, one per axis.
func (m *matrix) valuesOf(c int) []string {
	n := len(m.names)
	return m.combos[c*n : (c+1)*n : (c+1)*n]
}

// expand appends to tasks the task of every combination: base (the task resolved
// from sp) with the combination's id and values, its run or cmd applied to them and,
// when they name an axis, its own env and dir.
func (m *matrix) expand(tasks []jobs.Task, base jobs.Task, sp *jobs.Spec, s jobs.Settings, d *jobs.Defaults) []jobs.Task {
	var tmpl jobs.Template
	switch {
	case m.run != nil:
		t := *m.run // the same script, run by the task's shell
		t.shell = base.Shell
		tmpl = &t
	case m.argv != nil:
		tmpl = m.argv
	}
	for c := range m.size {
		values := m.valuesOf(c)
		t := base
		if m.envRefs {
			own := jobs.Resolve(base.Index, m.specOf(sp, values), s, d)
			t.Env, t.EnvFrom = own.Env, own.EnvFrom
		}
		if len(m.dirRefs) > 0 {
			t.Dir = substitute(*sp.Dir, m.dirRefs, values)
		}
		t.Index = len(tasks) + 1
		t.ID = m.ids[c]
		t.Values = values
		if tmpl != nil {
			t.Template, t.Run, t.Argv = tmpl, "", nil
		}
		tasks = append(tasks, t)
	}
	return tasks
}

// specOf returns sp with the axes in its own env replaced by values.
func (m *matrix) specOf(sp *jobs.Spec, values []string) *jobs.Spec {
	c := *sp
	c.Env = make(map[string]string, len(sp.Env))
	for k, v := range sp.Env {
		c.Env[k] = substitute(v, axisRefs(v, m.names), values)
	}
	return &c
}

// argvTemplate is a matrix task's cmd: each word is literal text and references to
// axes, replaced within the word. It implements jobs.Template.
type argvTemplate struct{ words [][]argPart }

type argPart struct {
	lit  string
	axis int // -1: lit
}

func splitArg(w string, refs []axisRef) []argPart {
	if len(refs) == 0 {
		return []argPart{{lit: w, axis: -1}}
	}
	var parts []argPart
	last := 0
	for _, r := range refs {
		if r.start > last {
			parts = append(parts, argPart{lit: w[last:r.start], axis: -1})
		}
		parts = append(parts, argPart{axis: r.axis})
		last = r.end
	}
	if last < len(w) {
		parts = append(parts, argPart{lit: w[last:], axis: -1})
	}
	return parts
}

// Args implements jobs.Template: the argv for the values of a combination.
func (a *argvTemplate) Args(values []string, _, _ int) []string {
	args := make([]string, len(a.words))
	for i, parts := range a.words {
		if len(parts) == 1 {
			args[i] = parts[0].text(values)
			continue
		}
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.text(values))
		}
		args[i] = b.String()
	}
	return args
}

func (p argPart) text(values []string) string {
	if p.axis < 0 {
		return p.lit
	}
	return values[p.axis]
}

// Command implements jobs.Template: the argv as a shell reads it back.
func (a *argvTemplate) Command(values []string, _ int) string {
	return jobs.JoinArgv(a.Args(values, 0, 0))
}
