package input

import (
	"io"

	"github.com/gorun/gorun/internal/jobs"
)

// specChunk is how many tasks one block of a file's task list holds: the list grows
// a block at a time, never copying what it holds.
const specChunk = 4096

// spec is one task of a task file as memory holds it until it runs: most tasks give an
// id and a command only, and take every setting from the file's defaults, which all
// tasks share. A task that gives more (needs, a priority, pools, settings of its own)
// keeps its whole jobs.Spec behind more.
type spec struct {
	id, run string
	argv    []string
	more    *jobs.Spec // nil: the task gives only id, run or argv
}

// specList is the tasks of a task file, in blocks of specChunk.
type specList struct {
	blocks [][]spec
	n      int
}

// add appends sp.
func (l *specList) add(sp *jobs.Spec) {
	if l.n%specChunk == 0 {
		l.blocks = append(l.blocks, make([]spec, 0, specChunk))
	}
	s := spec{id: sp.ID, run: sp.Run, argv: sp.Argv}
	if !plainSpec(sp) {
		cp := *sp
		cp.ID, cp.Run, cp.Argv = "", "", nil // kept once, in s
		s.more = &cp
	}
	b := &l.blocks[len(l.blocks)-1]
	*b = append(*b, s)
	l.n++
}

// plainSpec reports whether sp gives nothing but its id and command.
func plainSpec(sp *jobs.Spec) bool {
	d := &sp.Defaults
	return sp.Needs == nil && sp.Priority == 0 && sp.Estimate == 0 && sp.Limits == nil &&
		d.Timeout == nil && d.Retries == nil && d.RetryDelay == nil && d.RetryOn == nil && d.NoRetryOn == nil &&
		d.Shell == nil && d.Dir == nil && d.Env == nil && d.EnvFrom == nil && sp.Labels == nil &&
		d.MilliCPU == nil && d.Memory == nil && d.GPU == nil && d.On == nil
}

// Len returns the number of tasks.
func (l *specList) Len() int { return l.n }

// Spec returns the task at 0-based position i as the file wrote it.
func (l *specList) Spec(i int) jobs.Spec {
	s := &l.blocks[i/specChunk][i%specChunk]
	var sp jobs.Spec
	if s.more != nil {
		sp = *s.more
	}
	sp.ID, sp.Run, sp.Argv = s.id, s.run, s.argv
	return sp
}

// rawID returns the id the task at 0-based position i gives; "" for none.
func (l *specList) rawID(i int) string { return l.blocks[i/specChunk][i%specChunk].id }

// ID returns the id of the task at 0-based position i: its own, or the default.
func (l *specList) ID(i int) string {
	if id := l.blocks[i/specChunk][i%specChunk].id; id != "" {
		return id
	}
	return jobs.DefaultID(i + 1)
}

// Resolver makes the tasks of a task file, one at a time, with every setting
// resolved against the command line's settings; the tasks that give no environment of
// their own share one copy of the defaults' environment (a Task's slices are never
// written to). A large file is so never held as a list of Tasks.
type Resolver struct {
	f       *File
	s       jobs.Settings
	noEnv   jobs.Defaults // the file's defaults without their environment
	env     []string      // of the tasks without an environment of their own
	envFrom []jobs.EnvRef
}

// NewResolver returns the Resolver of f's tasks under the command-line settings s.
func NewResolver(f *File, s jobs.Settings) *Resolver {
	r := &Resolver{f: f, s: s, noEnv: f.Defaults}
	r.noEnv.Env, r.noEnv.EnvFrom = nil, nil
	shared := jobs.Resolve(1, &jobs.Spec{Run: "-"}, s, &f.Defaults)
	r.env, r.envFrom = shared.Env, shared.EnvFrom
	return r
}

// Len returns the number of tasks.
func (r *Resolver) Len() int { return r.f.Len() }

// Task returns the task at 0-based position i.
func (r *Resolver) Task(i int) jobs.Task {
	sp := r.f.Spec(i)
	return r.resolve(i, &sp)
}

// resolve returns the task at 0-based position i, whose spec is sp.
func (r *Resolver) resolve(i int, sp *jobs.Spec) jobs.Task {
	if len(sp.Env) > 0 || len(sp.EnvFrom) > 0 {
		return jobs.Resolve(i+1, sp, r.s, &r.f.Defaults)
	}
	t := jobs.Resolve(i+1, sp, r.s, &r.noEnv)
	t.Env, t.EnvFrom = r.env, r.envFrom
	return t
}

// FileSource yields the tasks of a task file whose tasks need none of each other, in
// file order, resolving each as it is asked for: the tasks wait in the file's compact
// form, not as Tasks.
type FileSource struct {
	r    *Resolver
	next int
}

// NewFileSource returns a Source over the tasks of f under the command-line settings s.
func NewFileSource(f *File, s jobs.Settings) *FileSource {
	return &FileSource{r: NewResolver(f, s)}
}

// Next implements Source.
func (s *FileSource) Next() (jobs.Task, error) {
	if s.next >= s.r.Len() {
		return jobs.Task{}, io.EOF
	}
	s.next++
	return s.r.Task(s.next - 1), nil
}

// Len returns the number of tasks.
func (s *FileSource) Len() int { return s.r.Len() }

// Task returns the task at 0-based position i, whatever Next has yielded.
func (s *FileSource) Task(i int) jobs.Task { return s.r.Task(i) }

// Close implements Source; the remaining tasks are still yielded, to be skipped.
func (s *FileSource) Close() error { return nil }
