// Package jobs is gorun's model: what a task is (Task, the settings it resolves from,
// its command Template), how an attempt and a task end (Attempt, Status, Result,
// ErrTimeout), the graph of needs between tasks (Graph, Order), the Source that yields
// tasks, and InputError, the bad input that runs nothing. It reads no file and starts
// no process: package input makes tasks, package process runs them.
package jobs

import (
	"cmp"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultShell runs a task's `run` command line when neither the task nor the file's
// defaults name a shell.
const DefaultShell = "/bin/sh"

// ShellAlways, given as a shell, runs a task's `run` line with DefaultShell even when
// it is a simple command that gorun would otherwise start directly.
const ShellAlways = "always"

// Task is one unit of work with every setting resolved: the task's own fields, then the
// command line, then the file's defaults, then the built-in defaults.
// A Task is a plain value; nothing in it changes once it is built.
type Task struct {
	Index      int           // 1-based position in the input
	Line       int           // the input line it came from, for a stream of lines or an invalid JSON Lines line; else 0
	ID         string        // unique within a run; "task-N" when the input names none
	Named      bool          // the input gave the id
	Key        string        // identity in a journal; set by the pipeline when journaling
	Run        string        // shell command line; exactly one of Run and Argv is set
	Argv       []string      // program and arguments, run without a shell
	Template   Template      // when set, the command is Template applied to TemplateValues
	Item       string        // the input item of a template task; the bad line of an invalid one
	Values     []string      // with several input sources: one value each (Item joins them with spaces); a matrix's combination: a value per axis
	Invalid    *InputError   // when set, the input of this task was bad (where, and why): it never runs
	Shell      string        // the shell that runs Run
	Dir        string        // working directory; "" is gorun's own
	Env        []string      // KEY=VALUE pairs added to gorun's environment, later wins
	EnvFrom    []EnvRef      // variables read from the running machine's environment, after Env
	Timeout    time.Duration // 0: none
	Retries    int           // attempts after the first
	RetryDelay time.Duration // first backoff
	RetryOn    *RetryClass   // nil: retry any failure or timeout (see Retry)
	NoRetryOn  *RetryClass   // nil: none is excluded
	// Grace, when above 0, replaces the Runner's grace for this task: the time from
	// SIGTERM to SIGKILL. A remote attempt carries its submitter's grace so.
	Grace time.Duration
	// Needs are the ids of the tasks that must succeed before this one starts (a task
	// file's needs), for reports; the scheduler reads them from the Graph.
	Needs []string
	// Priority orders the tasks ready to start: higher first, input order within a
	// priority. 0 by default; may be negative.
	Priority int
	// Limits names the pools of the run (Limit) the task starts in.
	Limits []string
	// Labels are names and values the input gives the task (a task file's or a JSON
	// Lines line's `labels`), for the keys of limits ({host}); nil: none.
	Labels map[string]string
	// Estimate is the expected run time, used to rank tasks on a graph of needs by
	// the work that remains after them (critical path first); 0: not given.
	Estimate time.Duration
	// ShellAlways: Run goes to the shell even when it is a simple command, which gorun
	// otherwise starts directly (see process.SimpleArgv).
	ShellAlways bool
	// Resources are what each attempt holds while it runs; the zero value: nothing.
	Resources Resources
	// On are the labels the machine that runs it must have (a task file's `on:`);
	// nil: any.
	On map[string]string
}

// Args returns the argv that starts the task in worker slot (1-based): the template
// applied to the item, Argv itself, or the shell with `-c Run`.
func (t *Task) Args(slot int) []string {
	if t.Template != nil {
		return t.Template.Args(t.TemplateValues(), t.Index, slot)
	}
	if t.Argv != nil {
		return t.Argv
	}
	return ShellArgs(t.Shell, t.Run)
}

// ShellArgs returns the argv that runs script with shell: `shell -c script`, and
// `shell -c -- script` when script starts with - or +, which the shell would
// otherwise read as its own options.
func ShellArgs(shell, script string) []string {
	if strings.HasPrefix(script, "-") || strings.HasPrefix(script, "+") {
		return []string{shell, "-c", "--", script}
	}
	return []string{shell, "-c", script}
}

// IdentityDir returns the task's working directory as it counts for the task's
// identity (its journal key): a clean absolute path, a relative one resolved against
// gorun's own working directory, so that `dir: out` and `dir: /abs/out` are the same
// task when gorun runs in /abs. A task without a directory gives "", whatever gorun's
// working directory: keys of such tasks stay as earlier versions wrote them.
func (t *Task) IdentityDir() string {
	if t.Dir == "" {
		return ""
	}
	if abs, err := filepath.Abs(t.Dir); err == nil {
		return abs
	}
	return filepath.Clean(t.Dir)
}

// Command returns the task's command as a person reads it: the `run` line, the argv
// joined with spaces (words with blanks or quotes are quoted), the template with
// the item's values quoted in place, or the bad input line of an invalid task.
func (t *Task) Command() string {
	switch {
	case t.Invalid != nil:
		return t.Item
	case t.Template != nil:
		return t.Template.Command(t.TemplateValues(), t.Index)
	case t.Argv == nil:
		return t.Run
	}
	return JoinArgv(t.Argv)
}

// JoinArgv writes an argv as a shell would read it back, each word quoted as QuoteWord
// quotes it.
func JoinArgv(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(QuoteWord(a))
	}
	return b.String()
}

// QuoteWord returns s as one shell word: as it is when it holds nothing a shell reads
// specially, else single-quoted.
func QuoteWord(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`|&;<>()*?[]#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Template makes the command of a task from its input item: a command template given
// on the command line, applied to each line of input. Its methods are safe for
// concurrent use.
type Template interface {
	// Args returns the argv for values (one per input source), the task's 1-based
	// number seq, in worker slot.
	Args(values []string, seq, slot int) []string
	// Command returns the command for values as a person reads it.
	Command(values []string, seq int) string
}

// TemplateValues returns the values a template task applies its template to: one per
// input source (Values), or the one Item.
func (t *Task) TemplateValues() []string {
	if t.Values != nil {
		return t.Values
	}
	return []string{t.Item}
}

// Settings are the per-task settings given outside the task file: on the command line,
// in GORUN_* variables or in a config file. A nil field is not set, and the file's
// defaults or the built-in defaults apply.
type Settings struct {
	Shell      *string // a shell, or ShellAlways
	Timeout    *time.Duration
	Retries    *int
	RetryDelay *time.Duration
	RetryOn    *RetryClass
	// Labels are the labels every task must give (Task.Labels): those the command
	// line's --limit-by reads. A task without one of them is bad input.
	Labels []string
}

// Defaults are the per-task settings a task file gives under `defaults`, or a task
// gives itself. A nil field is not set.
type Defaults struct {
	Timeout    *time.Duration
	Retries    *int
	RetryDelay *time.Duration
	RetryOn    *RetryClass
	NoRetryOn  *RetryClass
	Shell      *string
	Dir        *string
	Env        map[string]string
	EnvFrom    map[string]string // variable -> the variable of the running machine it is read from
	// MilliCPU, Memory and GPU are the resources asked for, each on its own: a
	// task's own beats the defaults' one by one.
	MilliCPU *int64
	Memory   *uint64
	GPU      *int
	On       map[string]string // labels; a task's own add to the defaults' (and win)
}

// Spec is a task as written in the input, before defaults are applied.
type Spec struct {
	ID       string
	Run      string
	Argv     []string
	Needs    []string // ids of the tasks that must succeed first
	Priority int
	Estimate time.Duration
	Limits   []string
	Labels   map[string]string
	Defaults
}

// Resolve builds the Task at 1-based index from its spec: each setting comes from the
// spec, else from s, else from the file's defaults d, else from the built-in default.
// Environment maps merge instead: defaults, then the task's own.
func Resolve(index int, sp *Spec, s Settings, d *Defaults) Task {
	t := Task{
		Index:      index,
		ID:         sp.ID,
		Run:        sp.Run,
		Argv:       sp.Argv,
		Shell:      pick(sp.Shell, s.Shell, d.Shell, DefaultShell),
		Dir:        pick(sp.Dir, nil, d.Dir, ""),
		Timeout:    pick(sp.Timeout, s.Timeout, d.Timeout, 0),
		Retries:    pick(sp.Retries, s.Retries, d.Retries, 0),
		RetryDelay: pick(sp.RetryDelay, s.RetryDelay, d.RetryDelay, time.Second),
		Needs:      sp.Needs,
		RetryOn:    cmp.Or(sp.RetryOn, s.RetryOn, d.RetryOn),
		NoRetryOn:  cmp.Or(sp.NoRetryOn, d.NoRetryOn),
		Priority:   sp.Priority,
		Estimate:   sp.Estimate,
		Limits:     sp.Limits,
		Labels:     sp.Labels,
	}
	if t.Shell == ShellAlways {
		t.Shell, t.ShellAlways = DefaultShell, true
	}
	if t.ID == "" {
		t.ID = DefaultID(index)
	} else {
		t.Named = true
	}
	t.Env, t.EnvFrom = mergeEnvFrom(d, &sp.Defaults)
	t.Resources = Resources{
		MilliCPU: pick(sp.MilliCPU, nil, d.MilliCPU, 0),
		Memory:   pick(sp.Memory, nil, d.Memory, 0),
		GPU:      pick(sp.GPU, nil, d.GPU, 0),
	}
	switch {
	case len(sp.On) == 0:
		t.On = d.On // shared: a Task's maps are never written to
	case len(d.On) == 0:
		t.On = sp.On
	default:
		t.On = maps.Clone(d.On)
		maps.Copy(t.On, sp.On)
	}
	return t
}

// DefaultID is the id of the task at 1-based index when the input names none.
func DefaultID(index int) string {
	return "task-" + strconv.Itoa(index)
}

func pick[T any](task, settings, defaults *T, builtin T) T {
	for _, p := range []*T{task, settings, defaults} {
		if p != nil {
			return *p
		}
	}
	return builtin
}

func mergeEnv(envs ...map[string]string) []string {
	n := 0
	for _, m := range envs {
		n += len(m)
	}
	if n == 0 {
		return nil
	}
	env := make([]string, 0, n)
	for _, m := range envs {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			env = append(env, k+"="+m[k])
		}
	}
	return env
}
