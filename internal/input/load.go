package input

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
	"github.com/gorun/gorun/internal/jobs"
	"golang.org/x/time/rate"
)

// FileVersion is the task-file version this gorun reads.
const FileVersion = 1

// File is a task file as written: run-wide settings, defaults and task specs.
// Nothing in it has been resolved against the command line yet.
type File struct {
	Name     string      // the path it was read from
	Workers  *int        // nil: not set
	Rate     *rate.Limit // nil: not set; rate.Inf: unlimited
	Defaults jobs.Defaults
	specList // the tasks as written: Spec, ID, and specList.Len (Len counts a matrix's combinations)
	// Needs are, by position in Tasks, the positions each task needs; nil when no task
	// has needs. A need of a matrix task's id is a need of each of its combinations.
	Needs  [][]int
	Limits []jobs.Limit // the pools the tasks may name, by name
	// matrices are the specs' matrices, by position in Specs (nil: a task without
	// one); nil when no task has one.
	matrices []*matrix

	// parser places an error of a task's resources or labels, found once the run's
	// capacity is known (CheckCapacity); nil when no task asks for any.
	parser *fileParser
}

// Tasks resolves every spec of f against the command-line settings s: a task per
// spec, and a task per combination of a spec with a `matrix`, in the file's order.
// Tasks that give no environment of their own share one copy of the defaults'
// environment, so that a large file does not hold it once per task (a Task's slices
// are never written to); the combinations of a matrix share its task's environment
// (unless it names an axis), its command template and its needs.
//
// The id of a task without one is task-N, N its position in the file (not in Tasks),
// so that adding a matrix does not rename the tasks after it. A large file without
// matrices is better run from NewFileSource, which resolves each task as it starts.
func (f *File) Tasks(s jobs.Settings) []jobs.Task {
	r := NewResolver(f, s)
	if f.matrices == nil {
		tasks := make([]jobs.Task, f.specList.Len())
		for i := range tasks {
			tasks[i] = r.Task(i)
		}
		return tasks
	}
	tasks := make([]jobs.Task, 0, f.Len())
	for i := range f.specList.Len() {
		sp := f.Spec(i)
		t := r.resolve(len(tasks), &sp)
		t.ID = f.ID(i)
		if m := f.matrix(i); m != nil {
			tasks = m.expand(tasks, t, &sp, s, &f.Defaults)
			continue
		}
		tasks = append(tasks, t)
	}
	return tasks
}

// Len returns the number of tasks of Tasks: a matrix task counts its combinations.
func (f *File) Len() int {
	if f.matrices == nil {
		return f.specList.Len()
	}
	n := 0
	for i := range f.specList.Len() {
		n += f.size(i)
	}
	return n
}

// Plain reports whether the tasks of f can run in file order as they come: no task
// needs another, gives a priority or an estimate, is a matrix, or asks for resources
// or labels.
func (f *File) Plain() bool {
	if f.Needs != nil || f.matrices != nil || f.parser != nil {
		return false
	}
	for i := range f.specList.Len() {
		if sp := f.Spec(i); sp.Priority != 0 || sp.Estimate != 0 {
			return false
		}
	}
	return true
}

// matrix returns the matrix of the spec at position i, or nil.
func (f *File) matrix(i int) *matrix {
	if f.matrices == nil {
		return nil
	}
	return f.matrices[i]
}

// size returns how many tasks the spec at position i makes.
func (f *File) size(i int) int {
	if m := f.matrix(i); m != nil {
		return m.size
	}
	return 1
}

// ReadFile reads and checks the task file at path: a file of plain JSON with a
// streaming JSON reader, straight from the file (parseJSON), and anything else, or
// JSON that reader gives up on, with the YAML reader, which reads JSON too. Every
// problem is an *InputError naming the file; a problem of its contents also names the
// line and column, and the key when there is one.
func ReadFile(path string) (*File, error) {
	fh, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if f, ok := parseJSON(path, fh); ok {
		return f, nil
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return nil, &jobs.InputError{File: path, Msg: unwrapPathError(err)}
	}
	data, err := io.ReadAll(fh)
	if err != nil {
		return nil, &jobs.InputError{File: path, Msg: unwrapPathError(err)}
	}
	return parseYAMLFile(path, data)
}

// Open opens the input file at path for reading. A file that cannot be opened, or a
// directory, is an *InputError naming path, with the reason once
// ("tasks.yaml: is a directory").
func Open(path string) (*os.File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &jobs.InputError{File: path, Msg: unwrapPathError(err)}
	}
	if st, err := fh.Stat(); err == nil && st.IsDir() {
		fh.Close()
		return nil, &jobs.InputError{File: path, Msg: "is a directory: want a task file or a file of commands"}
	}
	return fh, nil
}

func unwrapPathError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// IsTaskFile reports whether path names a task file by its extension.
func IsTaskFile(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// RawSettings are per-task settings as a task file writes them, under `defaults` or in
// a task. It is exported only because the YAML decoder needs it so; use Defaults.
type RawSettings struct {
	Timeout    *string             `yaml:"timeout"`
	Retries    *int                `yaml:"retries"`
	RetryDelay *string             `yaml:"retry_delay"`
	Shell      *string             `yaml:"shell"`
	Dir        *string             `yaml:"dir"`
	Env        map[string]envValue `yaml:"env"`
	RetryOn    []any               `yaml:"retry_on"`
	NoRetryOn  []any               `yaml:"no_retry_on"`
	Resources  *rawResources       `yaml:"resources"`
	On         map[string]string   `yaml:"on"`
}

// rawResources is `resources:` as written: cpu a number (0.5), memory a size (4GiB)
// or a number of bytes, gpu a whole number.
type rawResources struct {
	CPU    any  `yaml:"cpu"`
	Memory any  `yaml:"memory"`
	GPU    *int `yaml:"gpu"`
}

type rawTask struct {
	ID          *string           `yaml:"id"`
	Run         *string           `yaml:"run"`
	Cmd         []string          `yaml:"cmd"`
	Needs       []string          `yaml:"needs"`
	Priority    *int              `yaml:"priority"`
	Limits      []string          `yaml:"limits"`
	Estimate    *string           `yaml:"estimate"`
	Labels      map[string]string `yaml:"labels"`
	Matrix      *rawMatrix        `yaml:"matrix"`
	RawSettings `yaml:",inline"`
}

// rawLimit is a pool of `limits:` as written.
type rawLimit struct {
	Concurrency *int    `yaml:"concurrency"`
	Rate        *string `yaml:"rate"`
	Burst       *int    `yaml:"burst"`
	Key         *string `yaml:"key"`
}

type rawFile struct {
	Version  *int                 `yaml:"version"`
	Workers  *int                 `yaml:"workers"`
	Rate     *string              `yaml:"rate"`
	Limits   map[string]*rawLimit `yaml:"limits"`
	Defaults *RawSettings         `yaml:"defaults"`
	Tasks    *[]rawTask           `yaml:"tasks"`
}

// Parse checks and converts the task file named name with contents data. A UTF-8
// byte-order mark at its start is ignored, and so are empty documents (a `---` at the
// start or the end). Every problem is an *InputError with the file, line and column:
// 1:1 for an empty file, the second document's start when there are two.
//
// A file of plain JSON is read by a JSON decoder first (parseJSON), which is many
// times faster and smaller than the YAML reader; whatever that reader does not take
// exactly as the YAML reader would, errors included, goes to the YAML reader.
func Parse(name string, data []byte) (*File, error) {
	if f, ok := parseJSON(name, bytes.NewReader(data)); ok {
		return f, nil
	}
	return parseYAMLFile(name, data)
}

// parseYAMLFile is Parse with the YAML reader, which reads JSON too.
func parseYAMLFile(name string, data []byte) (*File, error) {
	return parseYAMLFileWith(&fileParser{name: name}, data)
}

// parseYAMLFileWith is parseYAMLFile with the parser p.
func parseYAMLFileWith(p *fileParser, data []byte) (*File, error) {
	name := p.name
	if !p.slow {
		if f, ok := (&fileParser{name: name}).parseItems(data); ok {
			return f, nil
		}
	}
	af, err := parseYAML(name, data)
	if err != nil {
		return nil, p.yamlError(err)
	}
	var docs []*ast.DocumentNode
	for _, d := range af.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	switch {
	case len(docs) == 0:
		return nil, &jobs.InputError{File: name, Line: 1, Col: 1, Msg: "empty task file: want `version: 1` and `tasks:`"}
	case len(docs) > 1:
		line, col := nodePos(docs[1])
		return nil, &jobs.InputError{File: name, Line: line, Col: col, Msg: "a task file holds one document; this is a second one"}
	}
	p.root = docs[0].Body
	var raw rawFile
	if err := p.decodeFile(p.root, &raw); err != nil {
		return nil, p.yamlError(err)
	}
	return p.convert(&raw)
}

// nodePos returns the line and column where n starts: its document header, or its
// first token; 1, 1 when it has none.
func nodePos(n ast.Node) (line, col int) {
	if d, ok := n.(*ast.DocumentNode); ok {
		if d.Start != nil && d.Start.Position != nil {
			return d.Start.Position.Line, d.Start.Position.Column
		}
		if d.Body != nil {
			n = d.Body
		}
	}
	switch m := n.(type) {
	case *ast.MappingNode: // its token is the first `:`; its first key is where it starts
		if len(m.Values) > 0 && m.Values[0].Key != nil {
			n = m.Values[0].Key
		}
	case *ast.MappingValueNode:
		if m.Key != nil {
			n = m.Key
		}
	}
	if n != nil {
		if tk := n.GetToken(); tk != nil && tk.Position != nil && tk.Position.Line > 0 {
			return tk.Position.Line, max(tk.Position.Column, 1)
		}
	}
	return 1, 1
}

type fileParser struct {
	name    string
	root    ast.Node
	single  bool // the root is one task (a JSON Lines line), not a task file
	element bool // the root is one task of a task file read as a stream (JSONStream)
	slow    bool // decode the whole file with the YAML library (decodeFile), to check its quick way
	// text is the file's text when it was read item by item (parseItems) and its tasks
	// ask for resources or labels: an error of CheckCapacity is placed in the whole
	// file's tree, parsed then (wholeRoot).
	text []byte
}

// errAt returns an InputError positioned at the node that path ($-rooted, goccy syntax)
// selects, or at the start of the document when that node cannot be found.
func (p *fileParser) errAt(path, key, format string, args ...any) error {
	e := &jobs.InputError{File: p.name, Key: key, Msg: fmt.Sprintf(format, args...)}
	root := p.wholeRoot()
	e.Line, e.Col = nodePos(root)
	if yp, err := yaml.PathString(path); err == nil {
		if n, err := yp.FilterNode(root); err == nil && n != nil {
			if tk := n.GetToken(); tk != nil && tk.Position != nil && tk.Position.Line > 0 {
				e.Line, e.Col = tk.Position.Line, max(tk.Position.Column, 1)
			}
		}
	}
	return e
}

// wholeRoot returns the root of the file's tree: p.root, or, for a file read item by
// item whose text p keeps, the root of its whole tree, parsed now (once).
func (p *fileParser) wholeRoot() ast.Node {
	if p.text == nil {
		return p.root
	}
	text := p.text
	p.text = nil
	af, err := parseYAML(p.name, text)
	if err != nil {
		return p.root
	}
	for _, d := range af.Docs {
		if d != nil && d.Body != nil {
			p.root = d.Body
			break
		}
	}
	return p.root
}

func (p *fileParser) convert(raw *rawFile) (*File, error) {
	f, err := p.head(raw)
	if err != nil {
		return nil, err
	}
	if raw.Tasks == nil {
		line, col := nodePos(p.root)
		return nil, &jobs.InputError{File: p.name, Line: line, Col: col, Key: "tasks", Msg: "missing: a task file lists its tasks under `tasks:`"}
	}
	fromMatrices := 0 // tasks the matrices make
	for i := range *raw.Tasks {
		if err := p.addTask(f, &(*raw.Tasks)[i], &fromMatrices); err != nil {
			return nil, err
		}
	}
	f.padMatrices()
	return f, p.check(f)
}

// addTask converts rt, the next task of the file, and adds it to f. fromMatrices
// counts the tasks the file's matrices make so far.
func (p *fileParser) addTask(f *File, rt *rawTask, fromMatrices *int) error {
	i := f.specList.Len()
	sp, err := p.task(i, rt)
	if err != nil {
		return err
	}
	f.add(&sp)
	if rt.Matrix == nil {
		return nil
	}
	m, err := p.matrix(i, f.ID(i), rt, &sp)
	if err != nil {
		return err
	}
	if *fromMatrices += m.size; *fromMatrices > MaxMatrixTasks {
		return p.errAt(fmt.Sprintf("$.tasks[%d].matrix", i), fmt.Sprintf("task %q: matrix", f.ID(i)),
			"the file's matrices make more than %d tasks", MaxMatrixTasks)
	}
	f.matrices = append(f.matrices, make([]*matrix, i+1-len(f.matrices))...)
	f.matrices[i] = m
	return nil
}

// padMatrices gives f.matrices, once a task has a matrix, one entry per spec.
func (f *File) padMatrices() {
	if f.matrices != nil {
		f.matrices = append(f.matrices, make([]*matrix, f.specList.Len()-len(f.matrices))...)
	}
}

// head converts the run-wide settings of raw: everything but its tasks.
func (p *fileParser) head(raw *rawFile) (*File, error) {
	f := &File{Name: p.name, Workers: raw.Workers}
	if raw.Version != nil && *raw.Version != FileVersion {
		return nil, p.errAt("$.version", "version", "unsupported version %d (this gorun reads version %d)", *raw.Version, FileVersion)
	}
	if raw.Workers != nil && *raw.Workers < 1 {
		return nil, p.errAt("$.workers", "workers", "must be at least 1, got %d", *raw.Workers)
	}
	if raw.Rate != nil {
		r, err := ParseRate(*raw.Rate)
		if err != nil {
			return nil, p.errAt("$.rate", "rate", "%v", err)
		}
		f.Rate = &r
	}
	for _, name := range slices.Sorted(maps.Keys(raw.Limits)) {
		l, err := p.limit(name, raw.Limits[name])
		if err != nil {
			return nil, err
		}
		f.Limits = append(f.Limits, l)
	}
	if raw.Defaults != nil {
		d, err := p.defaults("$.defaults", "defaults.", raw.Defaults)
		if err != nil {
			return nil, err
		}
		f.Defaults = d
	}
	return f, nil
}

// check checks what holds between the tasks of f, each checked on its own: unique
// ids (a matrix's combinations' too), known pools and the labels their keys read,
// and needs that name tasks of the file without a cycle. It keeps p in f when a task
// asks for resources or labels, for CheckCapacity.
func (p *fileParser) check(f *File) error {
	var ids map[string]idPos
	if f.matrices != nil {
		var err error
		if ids, err = p.checkMatrixIDs(f); err != nil {
			return err
		}
	} else if err := p.checkIDs(f); err != nil {
		return err
	}
	if err := p.taskLimits(f); err != nil {
		return err
	}
	if askResources(f) {
		f.parser = p
	}
	return p.needs(f, ids)
}

// limit converts the pool name of `limits:`.
func (p *fileParser) limit(name string, r *rawLimit) (jobs.Limit, error) {
	path, where := "$.limits."+name, "limits."+name
	l := jobs.Limit{Name: name, Burst: 1}
	switch {
	case strings.TrimSpace(name) == "" || strings.ContainsAny(name, ",\n\r\t "):
		return l, p.errAt(path, "limits", "invalid pool name %q: want a word without blanks or commas", name)
	case r == nil || (r.Concurrency == nil && r.Rate == nil):
		return l, p.errAt(path, where, "give `concurrency`, `rate` or both")
	}
	if r.Concurrency != nil {
		if *r.Concurrency < 1 {
			return l, p.errAt(path+".concurrency", where+".concurrency", "must be at least 1, got %d", *r.Concurrency)
		}
		l.Concurrency = *r.Concurrency
	}
	if r.Rate != nil {
		rt, err := ParseRate(*r.Rate)
		if err != nil {
			return l, p.errAt(path+".rate", where+".rate", "%v", err)
		}
		l.Rate = rt
	}
	if r.Burst != nil {
		if *r.Burst < 1 {
			return l, p.errAt(path+".burst", where+".burst", "must be at least 1, got %d", *r.Burst)
		}
		l.Burst = *r.Burst
	}
	if r.Key != nil {
		key, labels, err := NewKey(*r.Key)
		if err != nil {
			return l, p.errAt(path+".key", where+".key", "%v", err)
		}
		l.Key, l.KeySource, l.Labels = key, *r.Key, labels
	}
	return l, nil
}

// taskLimits refuses a task that names a pool `limits:` does not define, or a pool
// whose key reads a label the task has not.
func (p *fileParser) taskLimits(f *File) error {
	for i := range f.specList.Len() {
		sp := f.Spec(i)
		for j, name := range sp.Limits {
			k := slices.IndexFunc(f.Limits, func(l jobs.Limit) bool { return l.Name == name })
			if k < 0 {
				return p.errAt(fmt.Sprintf("$.tasks[%d].limits[%d]", i, j), fmt.Sprintf("task %q: limits", f.ID(i)),
					"unknown pool %q: name one of the file's `limits:`", name)
			}
			for _, label := range f.Limits[k].Labels {
				if _, ok := sp.Labels[label]; !ok {
					return p.errAt(fmt.Sprintf("$.tasks[%d].limits[%d]", i, j), fmt.Sprintf("task %q: limits", f.ID(i)),
						"pool %q is keyed by %s, but the task has no label %q: give it `labels: {%s: ...}`", name, f.Limits[k].KeySource, label, label)
				}
			}
		}
	}
	return nil
}

// needs resolves the tasks' needs to positions in Tasks, and refuses unknown ids, a
// task that needs itself, and cycles. ids are the positions of the ids (checkIDs).
//
// A need of a matrix task's id is a need of each of its combinations; a need of one
// combination's id (build[os=linux]) is of that one. A cycle between tasks is a cycle
// between their combinations too (a matrix task's needs are each combination's), so
// cycles are looked for between the tasks as written.
func (p *fileParser) needs(f *File, ids map[string]idPos) error {
	specs := f.specList.Len()
	hasNeeds := false
	for i := range specs {
		hasNeeds = hasNeeds || len(f.Spec(i).Needs) > 0
	}
	if !hasNeeds {
		return nil
	}
	if ids == nil { // no matrix: each id is one spec's
		ids = make(map[string]idPos, specs)
		for i := range specs {
			ids[f.ID(i)] = idPos{spec: i, combo: -1}
		}
	}
	bySpec := make([][]int, specs) // the specs each spec needs, for cycles
	byTask := make([][]int, specs) // the positions in Tasks each spec's tasks need
	start := make([]int, specs)    // the position in Tasks of each spec's first task
	for i := 1; i < specs; i++ {
		start[i] = start[i-1] + f.size(i-1)
	}
	edges := 0
	for i := range specs {
		needs := f.Spec(i).Needs
		if len(needs) == 0 {
			continue
		}
		seenSpec, seenTask := map[int]bool{}, map[int]bool{}
		for j, id := range needs {
			path := fmt.Sprintf("$.tasks[%d].needs[%d]", i, j)
			where := fmt.Sprintf("task %q: needs", f.ID(i))
			n, ok := ids[id]
			switch {
			case !ok:
				return p.errAt(path, where, "unknown task %q", id)
			case n.spec == i && f.matrix(i) != nil:
				return p.errAt(path, where, "a matrix task cannot need its own combinations")
			case n.spec == i:
				return p.errAt(path, where, "a task cannot need itself")
			}
			if !seenSpec[n.spec] {
				seenSpec[n.spec] = true
				bySpec[i] = append(bySpec[i], n.spec)
			}
			first, count := start[n.spec]+max(n.combo, 0), f.size(n.spec)
			if n.combo >= 0 {
				count = 1
			}
			for k := first; k < first+count; k++ {
				if !seenTask[k] {
					seenTask[k] = true
					byTask[i] = append(byTask[i], k)
				}
			}
		}
		if edges += len(byTask[i]) * f.size(i); f.matrices != nil && edges > MaxMatrixNeeds {
			return p.errAt(fmt.Sprintf("$.tasks[%d].needs", i), fmt.Sprintf("task %q: needs", f.ID(i)),
				"the needs between the combinations of the file's matrices are more than %d", MaxMatrixNeeds)
		}
	}
	if cycle := findCycle(bySpec); cycle != nil {
		names := make([]string, len(cycle))
		for k, i := range cycle {
			names[k] = f.ID(i)
		}
		return p.errAt(fmt.Sprintf("$.tasks[%d].needs", cycle[0]), fmt.Sprintf("task %q: needs", names[0]),
			"cycle: %s", strings.Join(names, " → "))
	}
	if f.matrices == nil {
		f.Needs = byTask
		return nil
	}
	f.Needs = make([][]int, f.Len())
	for i := range specs {
		for k := range f.size(i) {
			f.Needs[start[i]+k] = byTask[i] // shared: never written to
		}
	}
	return nil
}

// findCycle returns a cycle of needs (its first position repeated at the end), or nil.
func findCycle(needs [][]int) []int {
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]int, len(needs))
	var path []int
	var visit func(i int) []int
	visit = func(i int) []int {
		state[i] = onPath
		path = append(path, i)
		for _, n := range needs[i] {
			switch state[n] {
			case onPath:
				for k, x := range path {
					if x == n {
						return append(append([]int{}, path[k:]...), n)
					}
				}
			case unseen:
				if c := visit(n); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[i] = done
		return nil
	}
	for i := range needs {
		if state[i] == unseen {
			if c := visit(i); c != nil {
				return c
			}
		}
	}
	return nil
}

func (p *fileParser) task(i int, rt *rawTask) (jobs.Spec, error) {
	path := "$.tasks[" + strconv.Itoa(i) + "]" // not fmt: this runs once a task, and a file may hold millions
	if p.single || p.element {
		path = "$"
	}
	where := "task " + strconv.Itoa(i+1) + ": "
	var sp jobs.Spec
	if rt.ID != nil {
		id := *rt.ID
		if strings.TrimSpace(id) == "" || strings.ContainsAny(id, "\n\r\t") {
			return sp, p.errAt(path+".id", where+"id", "must be a non-empty single line, got %q", id)
		}
		sp.ID = id
		where = "task " + strconv.Quote(id) + ": "
	}
	switch {
	case rt.Run != nil && rt.Cmd != nil:
		return sp, p.errAt(path+".cmd", where+"cmd", "give either `run` (a shell command line) or `cmd` (an argv), not both")
	case rt.Run == nil && rt.Cmd == nil:
		return sp, p.errAt(path, where+"run", "missing: give `run` (a shell command line) or `cmd` (an argv)")
	case rt.Run != nil && strings.TrimSpace(*rt.Run) == "":
		return sp, p.errAt(path+".run", where+"run", "empty command")
	case rt.Cmd != nil && (len(rt.Cmd) == 0 || rt.Cmd[0] == ""):
		return sp, p.errAt(path+".cmd", where+"cmd", "empty argv: want [program, args...]")
	}
	if rt.Run != nil {
		sp.Run = *rt.Run
	} else {
		sp.Argv = rt.Cmd
	}
	sp.Needs = rt.Needs
	if rt.Priority != nil {
		sp.Priority = *rt.Priority
	}
	if est, err := p.duration(path, where, "estimate", rt.Estimate); err != nil {
		return sp, err
	} else if est != nil {
		sp.Estimate = *est
	}
	for _, name := range slices.Sorted(maps.Keys(rt.Labels)) {
		if !IsLabelName(name) {
			return sp, p.errAt(path+".labels", where+"labels", "invalid label name %q: want a letter, then letters, digits, _ or -, and not id or dir", name)
		}
	}
	sp.Labels = rt.Labels
	sp.Limits = rt.Limits
	if p.single && len(rt.Limits) > 0 {
		return sp, p.errAt(path+".limits", where+"limits", "limits are pools of a task file's `limits:`, not of a stream")
	}
	if p.single && rt.Matrix != nil {
		return sp, p.errAt(path+".matrix", where+"matrix", "matrix is for task files (.yaml, .yml, .json), not a stream")
	}
	if p.single && (rt.Resources != nil || rt.On != nil) {
		key := "resources"
		if rt.Resources == nil {
			key = "on"
		}
		return sp, p.errAt(path+"."+key, where+key, "resources and labels are for task files (.yaml, .yml, .json), not a stream")
	}
	if p.single && len(rt.Needs) > 0 {
		return sp, p.errAt(path+".needs", where+"needs", "needs is for task files (.yaml, .yml, .json), not a stream")
	}
	d, err := p.defaults(path, where, &rt.RawSettings)
	sp.Defaults = d
	return sp, err
}

// defaults converts the settings a task or the `defaults` block gives. path selects
// the mapping that holds them; where prefixes the key in errors.
func (p *fileParser) defaults(path, where string, r *RawSettings) (jobs.Defaults, error) {
	d := jobs.Defaults{Retries: r.Retries, Shell: r.Shell, Dir: r.Dir}
	var err error
	if d.Timeout, err = p.duration(path, where, "timeout", r.Timeout); err != nil {
		return d, err
	}
	if d.RetryDelay, err = p.duration(path, where, "retry_delay", r.RetryDelay); err != nil {
		return d, err
	}
	if d.RetryOn, err = p.retryClass(path, where, "retry_on", r.RetryOn); err != nil {
		return d, err
	}
	if d.NoRetryOn, err = p.retryClass(path, where, "no_retry_on", r.NoRetryOn); err != nil {
		return d, err
	}
	if r.Retries != nil && *r.Retries < 0 {
		return d, p.errAt(path+".retries", where+"retries", "must be 0 or more, got %d", *r.Retries)
	}
	if r.Shell != nil && strings.TrimSpace(*r.Shell) == "" {
		return d, p.errAt(path+".shell", where+"shell", "empty shell")
	}
	if err := p.resources(path, where, r, &d); err != nil {
		return d, err
	}
	for _, k := range slices.Sorted(maps.Keys(r.Env)) {
		if !validVarName(k) {
			return d, p.errAt(path+".env", where+"env", "invalid variable name %q", k)
		}
		value, ref, bad := envOf(r.Env[k])
		switch {
		case bad != "":
			return d, p.errAt(path+".env."+k, where+"env."+k, "%s", bad)
		case ref:
			if d.EnvFrom == nil {
				d.EnvFrom = map[string]string{}
			}
			d.EnvFrom[k] = value
		default:
			if d.Env == nil {
				d.Env = map[string]string{}
			}
			d.Env[k] = value
		}
	}
	return d, nil
}

// retryClass converts a list of `retry_on` or `no_retry_on`: exit codes, `timeout`,
// `signal`. nil when the list is not given.
func (p *fileParser) retryClass(path, where, key string, items []any) (*jobs.RetryClass, error) {
	if items == nil {
		return nil, nil
	}
	c := &jobs.RetryClass{}
	for i, it := range items {
		var err error
		switch v := it.(type) {
		case uint64:
			err = c.Add(strconv.FormatUint(v, 10))
		case int64:
			err = c.Add(strconv.FormatInt(v, 10))
		case string:
			err = c.Add(v)
		default:
			err = fmt.Errorf("want an exit code (0 to 255), timeout or signal, got %s", describeValue(it))
		}
		if err != nil {
			return nil, p.errAt(fmt.Sprintf("%s.%s[%d]", path, key, i), where+key, "%v", err)
		}
	}
	return c, nil
}

// describeValue names a decoded YAML value in an error.
func describeValue(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%q", fmt.Sprint(v))
}

func (p *fileParser) duration(path, where, key string, s *string) (*time.Duration, error) {
	if s == nil {
		return nil, nil
	}
	d, err := ParseDuration(*s)
	if err != nil {
		return nil, p.errAt(path+"."+key, where+key, "%v", err)
	}
	return &d, nil
}

// checkIDs refuses an id used twice: the first task whose id an earlier task used,
// naming that earlier one. It sorts the positions of the named tasks by id instead of
// keeping a map of ids: 4 bytes a task where a map takes some 40, which is most of
// what a file of a million tasks would need at its peak.
func (p *fileParser) checkIDs(f *File) error {
	var named []int32
	for i := range f.Len() {
		if f.rawID(i) != "" {
			named = append(named, int32(i))
		}
	}
	slices.SortFunc(named, func(a, b int32) int {
		return cmp.Or(strings.Compare(f.rawID(int(a)), f.rawID(int(b))), cmp.Compare(a, b))
	})
	later, first := -1, -1 // the earliest task to repeat an id, and the task that used it first
	for k := 0; k < len(named); {
		id := f.rawID(int(named[k]))
		e := k + 1
		for e < len(named) && f.rawID(int(named[e])) == id {
			e++
		}
		// The tasks of this id, by position; a task without an id whose default id
		// is this one joins them.
		a, b := int(named[k]), -1
		if e-k > 1 {
			b = int(named[k+1])
		}
		if u, ok := defaultIDPos(id, f.Len()); ok && f.rawID(u) == "" {
			switch {
			case u < a:
				a, b = u, a
			case b < 0 || u < b:
				b = u
			}
		}
		if b >= 0 && (later < 0 || b < later) {
			later, first = b, a
		}
		k = e
	}
	if later < 0 {
		return nil
	}
	at := p.errAt(fmt.Sprintf("$.tasks[%d]", first), "", "").(*jobs.InputError)
	return p.errAt(fmt.Sprintf("$.tasks[%d]", later), fmt.Sprintf("task %d: id", later+1),
		"duplicate id %q (first used by task %d at line %d)", f.ID(later), first+1, at.Line)
}

// defaultIDPos returns the 0-based position of the task whose default id is id, when
// there is one among n tasks.
func defaultIDPos(id string, n int) (int, bool) {
	num, ok := strings.CutPrefix(id, "task-")
	if !ok {
		return 0, false
	}
	k, err := strconv.Atoi(num)
	if err != nil || k < 1 || k > n || jobs.DefaultID(k) != id {
		return 0, false
	}
	return k - 1, true
}

// idPos is where an id stands: a task of the file (spec, its position in Specs), and
// for the id of one combination of a matrix, the combination (combo; else -1).
type idPos struct{ spec, combo int }

// checkIDs refuses an id given twice, the id of a combination of a matrix included,
// and returns where each id stands.
func (p *fileParser) checkMatrixIDs(f *File) (map[string]idPos, error) {
	seen := make(map[string]idPos, f.Len())
	add := func(id string, i, combo int) error {
		if first, dup := seen[id]; dup {
			line := p.errAt(fmt.Sprintf("$.tasks[%d]", first.spec), "", "").(*jobs.InputError).Line
			return p.errAt(fmt.Sprintf("$.tasks[%d]", i), fmt.Sprintf("task %d: id", i+1),
				"duplicate id %q (first used by task %d at line %d)", id, first.spec+1, line)
		}
		seen[id] = idPos{spec: i, combo: combo}
		return nil
	}
	for i := range f.specList.Len() {
		if err := add(f.ID(i), i, -1); err != nil {
			return nil, err
		}
		if m := f.matrix(i); m != nil {
			for c, id := range m.ids {
				if err := add(id, i, c); err != nil {
					return nil, err
				}
			}
		}
	}
	return seen, nil
}

// yamlError turns an error of the YAML library into a one-line InputError, positioned
// at the token the library names, else at the start of the document.
func (p *fileParser) yamlError(err error) error {
	var ie *jobs.InputError
	if errors.As(err, &ie) {
		return ie
	}
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil || ye.GetToken().Position == nil || ye.GetToken().Position.Line < 1 {
		line, col := nodePos(p.root)
		return &jobs.InputError{File: p.name, Line: line, Col: col, Msg: firstLine(err.Error())}
	}
	tk := ye.GetToken()
	e := &jobs.InputError{File: p.name, Line: tk.Position.Line, Col: max(tk.Position.Column, 1), Msg: firstLine(ye.GetMessage())}
	var te *yaml.TypeError
	var ue *yaml.UnknownFieldError
	switch {
	case errors.As(err, &ue):
		e.Msg = fmt.Sprintf("unknown key %q", tk.Value)
	case errors.As(err, &te):
		e.Key = keyOf(tk)
		e.Msg = fmt.Sprintf("want %s, got %s", describeType(te.DstType), describeToken(tk))
	default:
		e.Key = keyOf(tk)
		if strings.Contains(e.Msg, "not allowed in this context") {
			e.Msg += " (check the indentation)"
		}
	}
	e.Msg = strings.ReplaceAll(e.Msg, "\t", `\t`)
	return e
}

// keyOf returns the mapping key a value token belongs to, or "" when it has none.
func keyOf(tk *token.Token) string {
	for t := tk.Prev; t != nil; t = t.Prev {
		if t.Type == token.MappingValueType {
			if t.Prev != nil {
				return t.Prev.Value
			}
			return ""
		}
		if t.Position != nil && tk.Position != nil && t.Position.Line < tk.Position.Line {
			return ""
		}
	}
	return ""
}

func describeToken(tk *token.Token) string {
	switch tk.Type {
	case token.SequenceStartType, token.SequenceEntryType:
		return "a list"
	case token.MappingStartType:
		return "a mapping"
	}
	return fmt.Sprintf("%q", tk.Value)
}

func describeType(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64:
		return "a whole number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
