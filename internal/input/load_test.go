package input

import (
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"golang.org/x/time/rate"
)

func TestParseGoodFile(t *testing.T) {
	src := `version: 1
workers: 4
rate: 2/s
defaults:
  timeout: 30s
  retries: 2
  retry_delay: 1s
  shell: /bin/bash
  env: {LANG: C.UTF-8, A: from-defaults}
tasks:
  - id: fetch
    run: echo fetch
  - cmd: [go, build, ./...]
    timeout: 5m
    retries: 0
    env: {A: from-task, CGO_ENABLED: "0"}
    dir: ./src
`
	f, err := Parse("tasks.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *f.Workers, 4; got != want {
		t.Errorf("workers: got %d, want %d", got, want)
	}
	if got, want := *f.Rate, rate.Limit(2); got != want {
		t.Errorf("rate: got %v, want %v", got, want)
	}
	tasks := f.Tasks(jobs.Settings{})
	if len(tasks) != 2 {
		t.Fatalf("got %d tasks, want 2", len(tasks))
	}
	a, b := tasks[0], tasks[1]
	if a.ID != "fetch" || a.Timeout != 30*time.Second || a.Retries != 2 || a.Shell != "/bin/bash" {
		t.Errorf("task 1 did not take the defaults: %+v", a)
	}
	if got, want := strings.Join(a.Args(1), "|"), "/bin/bash|-c|echo fetch"; got != want {
		t.Errorf("task 1 args: got %q, want %q", got, want)
	}
	if b.ID != "task-2" || b.Timeout != 5*time.Minute || b.Retries != 0 || b.Dir != "./src" {
		t.Errorf("task 2 did not keep its own settings: %+v", b)
	}
	if got, want := strings.Join(b.Args(1), "|"), "go|build|./..."; got != want {
		t.Errorf("task 2 args: got %q, want %q", got, want)
	}
	if got, want := strings.Join(b.Env, " "), "A=from-defaults LANG=C.UTF-8 A=from-task CGO_ENABLED=0"; got != want {
		t.Errorf("task 2 env: got %q, want %q (defaults first, task later wins)", got, want)
	}
}

func TestPrecedence(t *testing.T) {
	d := func(s string) *time.Duration { v, _ := time.ParseDuration(s); return &v }
	n := func(i int) *int { return &i }
	tests := []struct {
		name     string
		task     jobs.Defaults
		settings jobs.Settings
		defaults jobs.Defaults
		want     time.Duration
		retries  int
	}{
		{"built-in", jobs.Defaults{}, jobs.Settings{}, jobs.Defaults{}, 0, 0},
		{"file defaults", jobs.Defaults{}, jobs.Settings{}, jobs.Defaults{Timeout: d("3s"), Retries: n(1)}, 3 * time.Second, 1},
		{"flag beats defaults", jobs.Defaults{}, jobs.Settings{Timeout: d("2s"), Retries: n(4)}, jobs.Defaults{Timeout: d("3s"), Retries: n(1)}, 2 * time.Second, 4},
		{"task beats flag", jobs.Defaults{Timeout: d("1s"), Retries: n(0)}, jobs.Settings{Timeout: d("2s"), Retries: n(4)}, jobs.Defaults{Timeout: d("3s")}, time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := jobs.Spec{Run: "true", Defaults: tt.task}
			got := jobs.Resolve(1, &sp, tt.settings, &tt.defaults)
			if got.Timeout != tt.want || got.Retries != tt.retries {
				t.Errorf("got timeout %v retries %d, want %v and %d", got.Timeout, got.Retries, tt.want, tt.retries)
			}
		})
	}
}

func TestParseBadFiles(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown key", "version: 1\ntasks:\n  - id: a\n    run: x\n  - id: b\n    rn: y\n",
			`f.yaml:6:5: unknown key "rn"`},
		{"unknown top-level key", "version: 1\nworker: 3\ntasks: []\n",
			`f.yaml:2:1: unknown key "worker"`},
		{"bad indent", "version: 1\ntasks:\n  - id: a\n    run: x\n   timeout: 3s\n",
			`f.yaml:5:4: `},
		{"tab indent", "version: 1\ntasks:\n\t- id: a\n", `f.yaml:3:1: `},
		{"duplicate id", "version: 1\ntasks:\n  - id: a\n    run: x\n  - id: b\n    run: y\n  - id: a\n    run: z\n",
			`f.yaml:7:7: task 3: id: duplicate id "a" (first used by task 1 at line 3)`},
		{"id collides with a default id", "version: 1\ntasks:\n  - run: x\n  - id: task-1\n    run: y\n",
			`f.yaml:4:7: task 2: id: duplicate id "task-1" (first used by task 1 at line 3)`},
		{"run and cmd", "version: 1\ntasks:\n  - id: a\n    run: x\n    cmd: [y]\n",
			`f.yaml:5:10: task "a": cmd: give either`},
		{"neither run nor cmd", "version: 1\ntasks:\n  - id: a\n    timeout: 1s\n",
			`f.yaml:3:7: task "a": run: missing`},
		{"bad duration", "version: 1\ntasks:\n  - id: a\n    run: x\n    timeout: 5 minutes\n",
			`f.yaml:5:14: task "a": timeout: invalid duration "5 minutes"`},
		{"negative duration", "version: 1\ndefaults:\n  retry_delay: -1s\ntasks: []\n",
			`f.yaml:3:16: defaults.retry_delay: invalid duration "-1s": must not be negative`},
		{"bad count", "version: 1\nworkers: many\ntasks: []\n",
			`f.yaml:2:10: workers: want a whole number, got "many"`},
		{"zero workers", "version: 1\nworkers: 0\ntasks: []\n",
			`f.yaml:2:10: workers: must be at least 1, got 0`},
		{"negative retries", "version: 1\ntasks:\n  - run: x\n    retries: -2\n",
			`f.yaml:4:14: task 1: retries: must be 0 or more, got -2`},
		{"bad priority", "version: 1\ntasks:\n  - run: x\n    priority: high\n",
			`f.yaml:4:15: priority: want a whole number, got "high"`},
		{"bad estimate", "version: 1\ntasks:\n  - id: a\n    run: x\n    estimate: 3 hours\n",
			`f.yaml:5:15: task "a": estimate: invalid duration "3 hours"`},
		{"estimate in defaults", "version: 1\ndefaults:\n  estimate: 1s\ntasks: []\n",
			`f.yaml:3:3: unknown key "estimate"`},
		{"bad retry_on item", "version: 1\ntasks:\n  - id: a\n    run: x\n    retry_on: [75, oops]\n",
			`f.yaml:5:20: task "a": retry_on: want an exit code (0 to 255), timeout or signal, got "oops"`},
		{"retry_on code out of range", "version: 1\ndefaults:\n  no_retry_on: [1, 300]\ntasks: []\n",
			`f.yaml:3:20: defaults.no_retry_on: want an exit code (0 to 255), timeout or signal, got "300"`},
		{"retry_on a mapping item", "version: 1\ntasks:\n  - run: x\n    retry_on: [{a: 1}]\n",
			`f.yaml:4:`},
		{"retry_on not a list", "version: 1\ntasks:\n  - run: x\n    retry_on: 75\n",
			`f.yaml:4:15: `},
		{"unknown pool", "version: 1\nlimits: {api: {rate: 2/s}}\ntasks:\n  - id: a\n    run: x\n    limits: [api, db]\n",
			`f.yaml:6:19: task "a": limits: unknown pool "db": name one of the file's ` + "`limits:`"},
		{"pool without bounds", "version: 1\nlimits:\n  api: {burst: 3}\ntasks: []\n",
			`f.yaml:3:8: limits.api: give ` + "`concurrency`, `rate` or both"},
		{"pool concurrency 0", "version: 1\nlimits:\n  api: {concurrency: 0}\ntasks: []\n",
			`f.yaml:3:22: limits.api.concurrency: must be at least 1, got 0`},
		{"pool bad rate", "version: 1\nlimits:\n  api: {rate: often}\ntasks: []\n",
			`f.yaml:3:15: limits.api.rate: invalid rate "often"`},
		{"pool unknown key", "version: 1\nlimits:\n  api: {rate: 1/s, rte: 2}\ntasks: []\n",
			`f.yaml:3:20: unknown key "rte"`},
		{"pool bad key template", "version: 1\nlimits:\n  api: {rate: 1/s, key: '{1x}'}\ntasks: []\n",
			`f.yaml:3:25: limits.api.key: invalid key "{1x}": unknown placeholder {1x}`},
		{"pool keyed by a label the task lacks", "version: 1\nlimits:\n  api: {rate: 1/s, key: '{host}'}\ntasks:\n  - {id: a, run: x, limits: [api], labels: {host: h1}}\n  - {id: b, run: x, limits: [api], labels: {hots: h1}}\n",
			`f.yaml:6:30: task "b": limits: pool "api" is keyed by {host}, but the task has no label "host": give it ` + "`labels: {host: ...}`"},
		{"bad label name", "version: 1\ntasks:\n  - {id: a, run: x, labels: {'a b': h1}}\n",
			`f.yaml:3:29: task "a": labels: invalid label name "a b": want a letter, then letters, digits, _ or -, and not id or dir`},
		{"label named id", "version: 1\ntasks:\n  - {id: a, run: x, labels: {id: h1}}\n",
			`f.yaml:3:29: task "a": labels: invalid label name "id"`},
		{"bad rate", "version: 1\nrate: fast\ntasks: []\n",
			`f.yaml:2:7: rate: invalid rate "fast"`},
		{"env from_worker with another key", "version: 1\ntasks:\n  - run: x\n    env:\n      T: {from_worker: A, value: b}\n",
			`f.yaml:5:10: task 1: env.T: want a string, or {from_worker: VARIABLE}`},
		{"env from_worker empty", "version: 1\ntasks:\n  - run: x\n    env:\n      T: {from_worker: ''}\n",
			`f.yaml:5:10: task 1: env.T: want a string, or {from_worker: VARIABLE}`},
		{"env from_worker bad name", "version: 1\ntasks:\n  - run: x\n    env:\n      T: {from_worker: A=B}\n",
			`f.yaml:5:10: task 1: env.T: from_worker: invalid variable name "A=B"`},
		{"cmd not a list", "version: 1\ntasks:\n  - cmd: ls -l\n",
			`f.yaml:3:10: cmd: `},
		{"empty cmd", "version: 1\ntasks:\n  - cmd: []\n",
			`f.yaml:3:10: task 1: cmd: empty argv`},
		{"duplicate key", "version: 1\ntasks:\n  - run: x\n    run: y\n",
			`f.yaml:4:5: `},
		{"wrong version", "version: 2\ntasks: []\n",
			`f.yaml:1:10: version: unsupported version 2`},
		{"no tasks", "version: 1\n", `f.yaml:1:1: tasks: missing`},
		{"empty file", "", `f.yaml:1:1: empty task file`},
		{"only comments and separators", "# nothing\n---\n---\n", `f.yaml:1:1: empty task file`},
		{"second document", "version: 1\ntasks:\n  - run: echo hi\n---\nversion: 1\n",
			`f.yaml:4:1: a task file holds one document; this is a second one`},
		{"second document without a marker line", "version: 1\ntasks: []\n--- {tasks: []}\n",
			`f.yaml:3:1: a task file holds one document`},
		{"flow nesting", "version: 1\ntasks: " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n",
			`f.yaml:2:`},
		{"block nesting", "version: 1\ntasks:\n" + strings.Repeat("- ", 100) + "x\n",
			`f.yaml:3:`},
		{"a tag the decoder chokes on", "tasks:\n  - id: a\n    needs: !00\n0000\n",
			`f.yaml:3:12: malformed YAML the parser cannot read`},
		{"bom and unknown key", "\ufeffversion: 1\nbogus: 2\ntasks: []\n", `f.yaml:2:1: unknown key "bogus"`},
		{"json unknown key", "{\"version\": 1,\n \"tasks\": [{\"run\": \"a\"},\n {\"bogus\": 1}]}",
			`f.yaml:3:3: unknown key "bogus"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.src))
			var ie *jobs.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("got error %v, want an *InputError", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.want) {
				t.Errorf("got  %q\nwant prefix %q", msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
		})
	}
}

// TestTrailingEmptyDocument: a `---` at the end (or the start) is what YAML tools
// leave behind; it is an empty document, ignored.
func TestTrailingEmptyDocument(t *testing.T) {
	for _, src := range []string{
		"version: 1\ntasks:\n  - run: echo hi\n---\n",
		"version: 1\ntasks:\n  - run: echo hi\n---\n# the end\n---\n",
		"---\nversion: 1\ntasks:\n  - run: echo hi\n",
		"---\nversion: 1\ntasks:\n  - run: echo hi\n...\n",
	} {
		f, err := Parse("f.yaml", []byte(src))
		if err != nil {
			t.Errorf("%q: got %v, want the one task", src, err)
			continue
		}
		if f.Len() != 1 || f.Spec(0).Run != "echo hi" {
			t.Errorf("%q: got %d tasks, want the one task", src, f.Len())
		}
	}
}

func TestByteOrderMark(t *testing.T) {
	f, err := Parse("f.yaml", []byte("\ufeffversion: 1\ntasks:\n  - run: echo hi\n"))
	if err != nil || f.Len() != 1 || f.Spec(0).Run != "echo hi" {
		t.Fatalf("got %+v, %v, want the task without the mark", f, err)
	}
	f, err = Parse("f.json", []byte("\ufeff{\"tasks\": [{\"run\": \"echo hi\"}]}"))
	if err != nil || f.Len() != 1 {
		t.Fatalf("JSON: got %+v, %v, want the task", f, err)
	}
}

// TestDeepNestingFailsFast: input nested far deeper than a task file needs is refused
// at the limit, with its position, before the parser spends memory on it (100,000
// levels in 500 KB took it past 19 GB).
func TestDeepNestingFailsFast(t *testing.T) {
	const n = 250_000
	tests := []struct{ name, src, want string }{
		{"flow lists", strings.Repeat("[", n) + strings.Repeat("]", n), "f.yaml:1:65: "},
		{"flow mappings", strings.Repeat("{a: ", n) + strings.Repeat("}", n), "f.yaml:1:257: "},
		{"block lists on a line", strings.Repeat("- ", n) + "x\n", "f.yaml:1:129: "},
		{"under a task file", "version: 1\ntasks:\n  - env: " + strings.Repeat("[", n), "f.yaml:3:73: "},
		{"in a JSON Lines line", `{"run": "x", "env": ` + strings.Repeat(`{"a": `, n), "f.yaml:1:"},
		{"block mappings by indentation", deepBlockMapping(2000), "f.yaml:65:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := Parse("f.yaml", []byte(tt.src))
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			var ie *jobs.InputError
			if !errors.As(err, &ie) || !strings.HasPrefix(err.Error(), tt.want) || !strings.Contains(err.Error(), "nested deeper than 64 levels") {
				t.Fatalf("got %v, want an error at %q saying the nesting is too deep", err, tt.want)
			}
			// The token count for what the byte scan misses costs a few hundred bytes a
			// byte; the parser on the same input, gigabytes.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 400*uint64(len(tt.src))+1<<20 {
				t.Errorf("allocated %d MB for %d KB of input, want it linear and small", alloc>>20, len(tt.src)>>10)
			}
			if took > 5*time.Second {
				t.Errorf("took %v, want a fast refusal", took)
			}
		})
	}
}

// deepBlockMapping returns a block mapping nested depth levels by indentation.
func deepBlockMapping(depth int) string {
	var b strings.Builder
	for i := range depth {
		b.WriteString(strings.Repeat(" ", i) + "k:\n")
	}
	b.WriteString(strings.Repeat(" ", depth) + "v\n")
	return b.String()
}

// TestNestingWithinLimit: what a task file may hold is not refused, brackets in
// strings and block scalars included.
func TestNestingWithinLimit(t *testing.T) {
	src := "version: 1\ntasks:\n" +
		"  - run: echo " + strings.Repeat("[", 200) + "\n" +
		"  - run: \"" + strings.Repeat("{", 200) + "\"\n" +
		"  - run: '" + strings.Repeat("[", 200) + "'\n" +
		"  - run: |\n      " + strings.Repeat("[", 200) + "\n      " + strings.Repeat("- ", 200) + "\n" +
		"  - cmd: [a, \"" + strings.Repeat("]", 200) + strings.Repeat("[", 200) + "\", b]\n" +
		"  - run: x # " + strings.Repeat("[", 200) + "\n" +
		"    env: {A: \"" + strings.Repeat("[", 200) + "\", B: '" + strings.Repeat("{", 200) + "'}\n"
	f, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if f.Len() != 6 {
		t.Errorf("got %d tasks, want 6", f.Len())
	}
}

func TestReadFileMissing(t *testing.T) {
	_, err := ReadFile(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.HasSuffix(err.Error(), "nope.yaml: no such file or directory") {
		t.Errorf("got %v, want the file named with its problem", err)
	}
}

func TestReadFileDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "adir.yaml")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(dir)
	var ie *jobs.InputError
	if !errors.As(err, &ie) || err.Error() != dir+": is a directory: want a task file or a file of commands" {
		t.Errorf("got %v, want one *InputError naming the file once", err)
	}
}

func TestDemoFilesParse(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/*.yaml")
	for _, name := range files {
		if strings.Contains(name, "bad") {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(name, data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want rate.Limit
		bad  bool
	}{
		{in: "2/s", want: 2},
		{in: "100/m", want: 100.0 / 60},
		{in: "0.5/s", want: 0.5},
		{in: "10", want: 10},
		{in: "3600/h", want: 1},
		{in: "1/250ms", want: 4},
		{in: "0", want: rate.Inf},
		{in: "inf", want: rate.Inf},
		{in: "0/s", want: rate.Inf},
		{in: "", bad: true},
		{in: "fast", bad: true},
		{in: "-1/s", bad: true},
		{in: "2/fortnight", bad: true},
		{in: "NaN", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseRate(%q): got %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || math.Abs(float64(got-tt.want)) > 1e-9 {
			t.Errorf("ParseRate(%q): got %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestIdentityDir(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(wd, "sub")
	for _, dir := range []string{"sub", "./sub/", "sub/../sub", abs, abs + "/"} {
		task := jobs.Task{Dir: dir}
		if got := task.IdentityDir(); got != abs {
			t.Errorf("dir %q: got %q, want %q", dir, got, abs)
		}
	}
	if got := (&jobs.Task{}).IdentityDir(); got != "" {
		t.Errorf("no dir: got %q, want \"\" (keys of earlier versions kept)", got)
	}
}

func TestEnvFromWorker(t *testing.T) {
	src := "version: 1\ndefaults:\n  env:\n    A: '1'\n    TOKEN: {from_worker: API_TOKEN}\n    KEY: {from_worker: K}\n" +
		"tasks:\n  - run: x\n    env:\n      KEY: literal\n      A: {from_worker: WA}\n      N: 5\n"
	f, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := f.Tasks(jobs.Settings{})[0]
	wantEnv := []string{"KEY=literal", "N=5"}
	wantFrom := []jobs.EnvRef{{Name: "A", From: "WA"}, {Name: "TOKEN", From: "API_TOKEN"}}
	if !reflect.DeepEqual(got.Env, wantEnv) || !reflect.DeepEqual(got.EnvFrom, wantFrom) {
		t.Errorf("got env %q from %v, want %q from %v (a task's value replaces the default's)", got.Env, got.EnvFrom, wantEnv, wantFrom)
	}
	env, err := jobs.ResolveEnvFrom(got.EnvFrom, []string{"WA=a", "API_TOKEN=old", "API_TOKEN=s3"})
	if want := []string{"A=a", "TOKEN=s3"}; err != nil || !reflect.DeepEqual(env, want) {
		t.Errorf("got %q, %v; want %q", env, err, want)
	}
	if _, err := jobs.ResolveEnvFrom(got.EnvFrom, []string{"WA=a"}); err == nil || !strings.Contains(err.Error(), "env TOKEN: from_worker API_TOKEN is not set") {
		t.Errorf("got error %v, want one naming the missing variable", err)
	}
}

func TestPriorityAndEstimate(t *testing.T) {
	f, err := Parse("f.yaml", []byte("version: 1\ntasks:\n  - {id: a, run: x, priority: 5, estimate: 90s}\n  - {id: b, run: y, priority: -2}\n  - {id: c, run: z}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tasks := f.Tasks(jobs.Settings{})
	for i, want := range []struct {
		prio int
		est  time.Duration
	}{{5, 90 * time.Second}, {-2, 0}, {0, 0}} {
		if tasks[i].Priority != want.prio || tasks[i].Estimate != want.est {
			t.Errorf("task %s: got priority %d, estimate %v; want %d, %v", tasks[i].ID, tasks[i].Priority, tasks[i].Estimate, want.prio, want.est)
		}
	}
	lines, err := ReadJSONL("t.jsonl", io.NopCloser(strings.NewReader(`{"run": "x", "priority": 3}`+"\n")), jobs.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if lines[0].Priority != 3 {
		t.Errorf("JSON Lines task: got priority %d, want 3", lines[0].Priority)
	}
}

func TestRetryOnPrecedence(t *testing.T) {
	f, err := Parse("f.yaml", []byte(`version: 1
defaults: {retry_on: [75], no_retry_on: [signal]}
tasks:
  - {id: a, run: x}
  - {id: b, run: x, retry_on: [timeout, 1]}
  - {id: c, run: x, no_retry_on: []}
`))
	if err != nil {
		t.Fatal(err)
	}
	tasks := f.Tasks(jobs.Settings{})
	got := func(c *jobs.RetryClass) string {
		if c == nil {
			return "nil"
		}
		return "[" + c.String() + "]"
	}
	for i, want := range [][2]string{{"[75]", "[signal]"}, {"[1, timeout]", "[signal]"}, {"[75]", "[]"}} {
		if r, n := got(tasks[i].RetryOn), got(tasks[i].NoRetryOn); r != want[0] || n != want[1] {
			t.Errorf("task %s: got retry_on %s, no_retry_on %s; want %s, %s", tasks[i].ID, r, n, want[0], want[1])
		}
	}
	flag := &jobs.RetryClass{Timeout: true}
	tasks = f.Tasks(jobs.Settings{RetryOn: flag})
	if tasks[0].RetryOn != flag || got(tasks[1].RetryOn) != "[1, timeout]" {
		t.Errorf("--retry-on: got %s and %s, want the flag's, then the task's own", got(tasks[0].RetryOn), got(tasks[1].RetryOn))
	}
}

func TestLimits(t *testing.T) {
	f, err := Parse("f.yaml", []byte(`version: 1
limits:
  api: {concurrency: 3, rate: 10/s, burst: 2}
  host: {rate: 1/s, key: "h-{//}-{id}"}
tasks:
  - {id: a, run: x, limits: [api, host]}
  - {id: b, run: y}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Limits) != 2 {
		t.Fatalf("got %d limits, want 2", len(f.Limits))
	}
	api, host := f.Limits[0], f.Limits[1]
	if api.Name != "api" || api.Concurrency != 3 || api.Rate != 10 || api.Burst != 2 || api.Key != nil {
		t.Errorf("api: got %+v", api)
	}
	tasks := f.Tasks(jobs.Settings{})
	if host.Name != "host" || host.Rate != 1 || host.Burst != 1 || host.Key == nil {
		t.Fatalf("host: got %+v", host)
	}
	tasks[0].Item = "dir/file"
	if got := host.Key(&tasks[0]); got != "h-dir-a" {
		t.Errorf("host key: got %q, want h-dir-a", got)
	}
	if !slices.Equal(tasks[0].Limits, []string{"api", "host"}) || tasks[1].Limits != nil {
		t.Errorf("got task limits %v and %v", tasks[0].Limits, tasks[1].Limits)
	}
	_, err = ReadJSONL("t.jsonl", io.NopCloser(strings.NewReader(`{"run": "x", "limits": ["api"]}`+"\n")), jobs.Settings{})
	if err == nil || !strings.Contains(err.Error(), "t.jsonl:1:") {
		t.Errorf("limits in JSON Lines: got %v, want an error at line 1", err)
	}
}

func TestNewKey(t *testing.T) {
	task := &jobs.Task{Index: 7, ID: "job", Dir: "/w", Item: "a/b/c.txt", Labels: map[string]string{"host": "h1", "zone-2": "eu"}}
	for src, want := range map[string]string{
		"{}": "a/b/c.txt", "{//}": "a/b", "{/}": "c.txt", "{.}": "a/b/c", "{/.}": "c", "{#}": "7",
		"{id}@{dir}": "job@/w", "plain": "plain", "": "", "x{//}y": "xa/by", "{host}/{zone-2}": "h1/eu", "{nolabel}": "",
	} {
		key, _, err := NewKey(src)
		if err != nil {
			t.Errorf("NewKey(%q): %v", src, err)
			continue
		}
		if got := key(task); got != want {
			t.Errorf("NewKey(%q): got %q, want %q", src, got, want)
		}
	}
	for _, bad := range []string{"{%}", "{1x}", "{a b}", "{", "a{b"} {
		if _, _, err := NewKey(bad); err == nil {
			t.Errorf("NewKey(%q): no error", bad)
		}
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]uint64{"512MiB": 512 << 20, "4GiB": 4 << 30, "2G": 2e9, "1.5GB": 1.5e9, "100": 100, "7B": 7, " 1 KiB ": 1024, "3TiB": 3 << 40} {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q): got %d, %v; want %d", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "GiB", "4 gigs", "-1G", "1e3", "99999999999TiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q): no error", bad)
		}
	}
}

// TestTasksShareTheDefaultsEnvironment: tasks that give no environment of their own
// hold the defaults' one copy, not one each; a task with its own gets its own.
func TestTasksShareTheDefaultsEnvironment(t *testing.T) {
	f, err := Parse("t.yaml", []byte(`version: 1
defaults:
  env: {A: "1", B: "2", S: {from_worker: SECRET}}
tasks:
  - run: echo 1
  - run: echo 2
  - run: echo 3
    env: {C: "3"}
  - run: echo 4
`))
	if err != nil {
		t.Fatal(err)
	}
	tasks := f.Tasks(jobs.Settings{})
	want := []string{"A=1", "B=2"}
	for _, i := range []int{0, 1, 3} {
		if !reflect.DeepEqual(tasks[i].Env, want) || len(tasks[i].EnvFrom) != 1 {
			t.Errorf("task %d: got env %q, env_from %v, want %q and S", i+1, tasks[i].Env, tasks[i].EnvFrom, want)
		}
	}
	if &tasks[0].Env[0] != &tasks[1].Env[0] || &tasks[0].Env[0] != &tasks[3].Env[0] || &tasks[0].EnvFrom[0] != &tasks[3].EnvFrom[0] {
		t.Errorf("tasks without an environment of their own each hold a copy of the defaults'")
	}
	if got := tasks[2].Env; !reflect.DeepEqual(got, []string{"A=1", "B=2", "C=3"}) {
		t.Errorf("task 3: got env %q, want A=1 B=2 C=3", got)
	}
}

// TestKeyLabels: a key says which labels it reads, each once.
func TestKeyLabels(t *testing.T) {
	_, labels, err := NewKey("{host}-{//}-{zone}-{host}")
	if err != nil || !slices.Equal(labels, []string{"host", "zone"}) {
		t.Errorf("got %v, %v; want [host zone]", labels, err)
	}
}

// TestLabels: a task file's and a JSON Lines line's labels reach the task; a JSON
// Lines line without a label --limit-by reads is bad input at its line.
func TestLabels(t *testing.T) {
	f, err := Parse("f.yaml", []byte("version: 1\nlimits: {api: {rate: 1/s, key: '{host}'}}\ntasks:\n  - {id: a, run: x, limits: [api], labels: {host: h1}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tasks := f.Tasks(jobs.Settings{})
	if got := f.Limits[0].Key(&tasks[0]); got != "h1" || !slices.Equal(f.Limits[0].Labels, []string{"host"}) {
		t.Errorf("got key %q, labels %v; want h1, [host]", got, f.Limits[0].Labels)
	}
	lines := `{"id": "a", "run": "x", "labels": {"host": "h1"}}` + "\n" + `{"id": "b", "run": "x", "labels": {"hots": "h1"}}` + "\n"
	s := jobs.Settings{Labels: []string{"host"}}
	_, err = ReadJSONL("t.jsonl", io.NopCloser(strings.NewReader(lines)), s)
	if want := `t.jsonl:2:35: labels: no label "host", which --limit-by reads`; err == nil || err.Error() != want {
		t.Errorf("JSON Lines file: got %v, want %s", err, want)
	}
	src := NewJSONLSource("stdin", io.NopCloser(strings.NewReader(lines)), s)
	a, err := src.Next()
	if err != nil || a.Labels["host"] != "h1" || a.Invalid != nil {
		t.Fatalf("line 1: got %+v, %v", a, err)
	}
	b, err := src.Next()
	if err != nil || b.Invalid == nil || b.Invalid.Line != 2 {
		t.Errorf("line 2 of a stream: got %+v, %v; want an invalid task at line 2", b, err)
	}
}
