package input

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/gorun/gorun/internal/jobs"
)

// matrixYAML and matrixJSON are the same task file: a matrix whose axes are written
// out of alphabetical order, with numbers and booleans, a cmd matrix, and tasks that
// need them.
const matrixYAML = `version: 1
defaults:
  env: {LANG: C}
tasks:
  - id: build
    matrix:
      os: [linux, darwin]
      arch: [amd64, 1.50, true]
    run: echo {os}-{arch} "${HOME}" '{os}'
    env: {TARGET: "{os}/{arch}", FIXED: "x"}
    dir: out/{os}
    priority: 3
    limits: [cpu]
  - id: pack
    matrix: {z: ["a b", "$(touch MARK)"], a: [x]}
    cmd: [tar, "--file=pack-{z}.tar", "{a}", "{}"]
    needs: [build]
  - run: echo plain
    needs: ["pack[z=a b,a=x]"]
limits: {cpu: {concurrency: 2}}
`

const matrixJSON = `{"version": 1, "defaults": {"env": {"LANG": "C"}}, "limits": {"cpu": {"concurrency": 2}},
 "tasks": [
  {"id": "build", "matrix": {"os": ["linux", "darwin"], "arch": ["amd64", 1.50, true]},
   "run": "echo {os}-{arch} \"${HOME}\" '{os}'", "env": {"TARGET": "{os}/{arch}", "FIXED": "x"}, "dir": "out/{os}",
   "priority": 3, "limits": ["cpu"]},
  {"id": "pack", "matrix": {"z": ["a b", "$(touch MARK)"], "a": ["x"]},
   "cmd": ["tar", "--file=pack-{z}.tar", "{a}", "{}"], "needs": ["build"]},
  {"run": "echo plain", "needs": ["pack[z=a b,a=x]"]}]}
`

func TestMatrixExpands(t *testing.T) {
	for _, tc := range []struct{ name, src string }{{"f.yaml", matrixYAML}, {"f.json", matrixJSON}} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.name, []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			tasks := f.Tasks(jobs.Settings{})
			var ids []string
			for i, task := range tasks {
				ids = append(ids, task.ID)
				if task.Index != i+1 {
					t.Errorf("%s: index %d, want %d", task.ID, task.Index, i+1)
				}
			}
			want := []string{
				"build[os=linux,arch=amd64]", "build[os=linux,arch=1.50]", "build[os=linux,arch=true]",
				"build[os=darwin,arch=amd64]", "build[os=darwin,arch=1.50]", "build[os=darwin,arch=true]",
				"pack[z=a b,a=x]", "pack[z=$(touch MARK),a=x]",
				"task-3", // its position in the file, not in the tasks
			}
			if !slices.Equal(ids, want) {
				t.Fatalf("ids:\n got %q\nwant %q", ids, want)
			}
			if f.Len() != len(want) {
				t.Errorf("Len() = %d, want %d", f.Len(), len(want))
			}

			b := tasks[4] // darwin, 1.50
			if got, want := b.Args(1), []string{"/bin/sh", "-c", `echo "${1}"-"${2}" "${HOME}" ''"${1}"''`, "gorun", "darwin", "1.50"}; !slices.Equal(got, want) {
				t.Errorf("run args:\n got %q\nwant %q", got, want)
			}
			if got, want := b.Command(), `echo darwin-1.50 "${HOME}" 'darwin'`; got != want {
				t.Errorf("command: got %q, want %q", got, want)
			}
			if got, want := strings.Join(b.Env, " "), "LANG=C FIXED=x TARGET=darwin/1.50"; got != want {
				t.Errorf("env: got %q, want %q", got, want)
			}
			if b.Dir != "out/darwin" || b.Priority != 3 || !slices.Equal(b.Limits, []string{"cpu"}) || !b.Named {
				t.Errorf("combination lost the task's settings: dir %q priority %d limits %q named %v", b.Dir, b.Priority, b.Limits, b.Named)
			}

			p := tasks[7]
			if got, want := p.Args(1), []string{"tar", "--file=pack-$(touch MARK).tar", "x", "{}"}; !slices.Equal(got, want) {
				t.Errorf("cmd args:\n got %q\nwant %q", got, want)
			}
			if &p.Env[0] != &tasks[6].Env[0] || &p.Env[0] != &tasks[8].Env[0] {
				t.Error("combinations whose env names no axis do not share the defaults' environment")
			}

			needs := f.Needs
			for i := range 6 {
				if needs[i] != nil {
					t.Errorf("%s needs %v, want nothing", ids[i], needs[i])
				}
			}
			for _, i := range []int{6, 7} {
				if !slices.Equal(needs[i], []int{0, 1, 2, 3, 4, 5}) {
					t.Errorf("%s needs %v, want every combination of build", ids[i], needs[i])
				}
			}
			if !slices.Equal(needs[8], []int{6}) {
				t.Errorf("task-3 needs %v, want the one combination it names", needs[8])
			}
			if !slices.Equal(tasks[6].Needs, []string{"build"}) {
				t.Errorf("reports show needs %q, want them as written", tasks[6].Needs)
			}
		})
	}
}

// TestMatrixJSONReadsAsYAML: a JSON task file with a matrix is read by the YAML
// reader (the streaming JSON reader leaves it), to the same File a YAML file gives,
// and its errors are placed.
func TestMatrixJSONReadsAsYAML(t *testing.T) {
	if _, ok := parseJSON("f.json", bytes.NewReader([]byte(`{"tasks": [{"id": "a", "matrix": {"y": [1, 2.50, false], "x": ["q"]}, "run": "echo {x}{y}", "needs": []}]}`))); ok {
		t.Error("the JSON reader takes a matrix, want it left to the YAML reader")
	}
	for _, doc := range []string{
		`{"tasks": [{"id": "a", "matrix": {"y": [1, 2.50, false, "s"], "x": ["q"]}, "run": "echo {x}{y}"}]}`,
		`{"tasks": [{"id": "a", "matrix": {"x": ["q"]}, "cmd": ["echo", "{x}"]}]}`,
		`{"tasks": [{"id": "a", "matrix": {"x": ["q"]}, "run": "true"}]}`,
	} {
		sameAsYAML(t, []byte(doc))
	}
	for _, doc := range []string{
		`{"tasks": [{"matrix": {"x": [null]}, "run": "echo {x}"}]}`,
		`{"tasks": [{"matrix": {"x": [["a"]]}, "run": "echo {x}"}]}`,
		`{"tasks": [{"matrix": {"x": "a"}, "run": "echo {x}"}]}`,
		`{"tasks": [{"matrix": {"x": ["a"], "x": ["b"]}, "run": "echo {x}"}]}`,
		`{"tasks": [{"matrix": {"x": []}, "run": "echo {x}"}]}`,
		`{"tasks": [{"matrix": {"x": ["a"]}, "run": "echo {xx}"}]}`,
	} {
		if _, ok := parseJSON("f.json", bytes.NewReader([]byte(doc))); ok {
			t.Errorf("%s: the JSON reader takes it, want it left to the YAML reader", doc)
		}
		if _, err := Parse("f.json", []byte(doc)); err == nil {
			t.Errorf("%s: read, want an error", doc)
		}
	}
}

func TestMatrixBadFiles(t *testing.T) {
	head := "version: 1\ntasks:\n  - id: a\n"
	tests := []struct{ name, src, want string }{
		{"typo in run", head + "    matrix: {x: [1, 2]}\n    run: echo {xx}\n",
			`f.yaml:5:10: task "a": run: unknown axis {xx}: the matrix has {x} (braces the shell should keep need a blank inside: { xx })`},
		{"typo in cmd", head + "    matrix: {x: [1]}\n    cmd: [echo, ok, \"{y}\"]\n",
			`f.yaml:5:21: task "a": cmd: unknown axis {y}: the matrix has {x}`},
		{"typo in env", head + "    matrix: {x: [1]}\n    run: echo\n    env: {V: \"{X}\"}\n",
			`f.yaml:6:14: task "a": env.V: unknown axis {X}`},
		{"typo in dir", head + "    matrix: {x: [1]}\n    run: echo\n    dir: \"{y}\"\n",
			`f.yaml:6:10: task "a": dir: unknown axis {y}`},
		{"word in arithmetic", head + "    matrix: {n: [1, x]}\n    run: echo $(( {n} * 2 ))\n",
			`f.yaml:4:21: task "a": matrix.n[1]: {n} stands in arithmetic in run, and its value "x" is not a decimal integer of 64 bits`},
		{"value ends a quoted heredoc", head + "    matrix: {w: [ok, EOF]}\n    run: |\n      cat <<'EOF'\n      {w}\n      EOF\n",
			`f.yaml:5:10: task "a": run: combination a[w=EOF]: {w} stands in a heredoc quoted as <<'EOF', and its value would end it with a line "EOF"`},
		{"awk program", head + "    matrix: {x: [1]}\n    run: awk '{print}' {x}\n",
			`f.yaml:5:10: task "a": run: unknown axis {print}`},
		{"replacement string in run", head + "    matrix: {x: [1]}\n    run: find {x} -exec rm {} +\n",
			"f.yaml:5:10: task \"a\": run: {} is a replacement string of `gorun exec -- TEMPLATE`, not of a matrix task"},
		{"positional replacement in run", head + "    matrix: {x: [1]}\n    run: echo {1}\n",
			`f.yaml:5:10: task "a": run: {1} is a replacement string`},
		{"bad axis name", head + "    matrix:\n      x: [1]\n      1y: [2]\n    run: echo\n",
			`f.yaml:6:7: task "a": matrix: invalid axis name "1y"`},
		{"axis name with a dot", head + "    matrix: {x.y: [1]}\n    run: echo\n",
			`f.yaml:4:14: task "a": matrix: invalid axis name "x.y"`},
		{"empty axis", head + "    matrix:\n      x: []\n    run: echo\n",
			`f.yaml:5:7: task "a": matrix.x: empty list: an axis needs at least one value`},
		{"scalar axis", head + "    matrix:\n      x: linux\n    run: echo\n",
			`f.yaml:5:10: task "a": matrix.x: want a list of values, like [a, b], got "linux"`},
		{"null axis", head + "    matrix:\n      x:\n    run: echo\n",
			`f.yaml:5:9: task "a": matrix.x: want a list of values, like [a, b], got null`},
		{"list value", head + "    matrix:\n      x: [a, [b]]\n    run: echo\n",
			`f.yaml:5:14: task "a": matrix.x[1]: want a string, number or boolean, got a list`},
		{"null value", head + "    matrix:\n      x: [a, ~]\n    run: echo\n",
			`f.yaml:5:14: task "a": matrix.x[1]: want a string, number or boolean, got null`},
		{"two-line value", head + "    matrix:\n      x: [\"a\\nb\"]\n    run: echo\n",
			`f.yaml:5:11: task "a": matrix.x[0]: a value is one line (it is part of the task's id), got "a\nb"`},
		{"duplicate value", head + "    matrix:\n      x: [1, 2, 1]\n    run: echo\n",
			`f.yaml:5:17: task "a": matrix.x[2]: duplicate value "1" (also x[0])`},
		{"not a mapping", head + "    matrix: [x, y]\n    run: echo\n",
			`f.yaml:4:13: task "a": matrix: want a mapping of axes to lists of values, like {os: [linux, darwin]}, got a list`},
		{"no axes", head + "    matrix: {}\n    run: echo\n",
			`f.yaml:4:13: task "a": matrix: no axes`},
		{"duplicate axis", head + "    matrix:\n      x: [1]\n      x: [2]\n    run: echo\n",
			`f.yaml:6:7: `},
		{"too many combinations", head + "    matrix:\n      x: [" + numbers(1000) + "]\n      y: [" + numbers(101) + "]\n    run: echo\n",
			`f.yaml:6:7: task "a": matrix.y: more than 100000 combinations`},
		{"too many in the file", head + "    matrix: {x: [" + numbers(60000) + "]}\n    run: echo\n  - matrix: {x: [" + numbers(60000) + "]}\n    run: echo\n",
			`f.yaml:6:13: task "task-2": matrix: the file's matrices make more than 100000 tasks`},
		{"combination id taken", head + "    matrix: {x: [1]}\n    run: echo\n  - id: a[x=1]\n    run: echo\n",
			`f.yaml:6:7: task 2: id: duplicate id "a[x=1]" (first used by task 1 at line 3)`},
		{"unknown combination", head + "    matrix: {x: [1]}\n    run: echo\n  - run: echo\n    needs: [\"a[x=2]\"]\n",
			`f.yaml:7:13: task "task-2": needs: unknown task "a[x=2]"`},
		{"needs itself", head + "    matrix: {x: [1, 2]}\n    run: echo\n    needs: [\"a[x=2]\"]\n",
			`f.yaml:6:13: task "a": needs: a matrix task cannot need its own combinations`},
		{"cycle through a combination", head + "    matrix: {x: [1, 2]}\n    run: echo\n    needs: [b]\n  - id: b\n    run: echo\n    needs: [\"a[x=2]\"]\n",
			`f.yaml:6:12: task "a": needs: cycle: a → b → a`},
		{"matrix in a stream", "", ""}, // see TestMatrixNotInJSONLines
	}
	for _, tt := range tests {
		if tt.src == "" {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.src))
			var ie *jobs.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("got error %v, want an *InputError", err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("got  %q\nwant prefix %q, on one line", msg, tt.want)
			}
		})
	}
}

func numbers(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprint(i)
	}
	return strings.Join(s, ", ")
}

func TestMatrixNotInJSONLines(t *testing.T) {
	_, err := ReadJSONL("f.jsonl", io.NopCloser(strings.NewReader(`{"run": "echo {x}", "matrix": {"x": [1]}}`+"\n")), jobs.Settings{})
	if err == nil || !strings.Contains(err.Error(), "f.jsonl:1:") || !strings.Contains(err.Error(), "matrix is for task files") {
		t.Errorf("got %v, want matrix refused in JSON Lines with its position", err)
	}
}

// TestMatrixShellAndRefs: the shell that runs a matrix task's run is the resolved
// one; ${NAME} and \{NAME} are the shell's, not axes; a run or cmd that names no axis
// runs as written, the same for every combination.
func TestMatrixShellAndRefs(t *testing.T) {
	src := "version: 1\ndefaults: {shell: /bin/bash}\ntasks:\n" +
		"  - id: a\n    matrix: {x: [1]}\n    run: echo ${x} \\{x} {x}\n" +
		"  - id: b\n    matrix: {rep: [1, 2]}\n    run: ./bench\n" +
		"  - id: c\n    matrix: {rep: [1, 2]}\n    cmd: [./bench, '{}']\n"
	f, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	tasks := f.Tasks(jobs.Settings{})
	if got, want := tasks[0].Args(1), []string{"/bin/bash", "-c", `echo ${x} \{x} "${1}"`, "gorun", "1"}; !slices.Equal(got, want) {
		t.Errorf("run args:\n got %q\nwant %q", got, want)
	}
	for shell, want := range map[string]string{"/bin/zsh": "/bin/zsh", jobs.ShellAlways: jobs.DefaultShell} {
		tasks = f.Tasks(jobs.Settings{Shell: &shell})
		if got := tasks[0].Args(1)[0]; got != want {
			t.Errorf("--shell %s: runs with %q, want %q", shell, got, want)
		}
	}
	for _, i := range []int{1, 2} {
		if tasks[i].Template != nil || tasks[i].Run != "./bench" || tasks[i].ID != fmt.Sprintf("b[rep=%d]", i) {
			t.Errorf("task %d: %+v, want ./bench as written", i, tasks[i])
		}
	}
	if got := tasks[3].Args(1); !slices.Equal(got, []string{"./bench", "{}"}) {
		t.Errorf("cmd args: %q, want as written", got)
	}

	f, err = Parse("f.yaml", []byte("version: 1\ndefaults: {env: {A: a}}\ntasks:\n  - matrix: {d: [x, y]}\n    run: make\n    dir: out/{d}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tasks = f.Tasks(jobs.Settings{})
	if tasks[0].Dir != "out/x" || tasks[1].Dir != "out/y" || &tasks[0].Env[0] != &tasks[1].Env[0] {
		t.Errorf("dir %q and %q, want out/x and out/y, sharing one environment", tasks[0].Dir, tasks[1].Dir)
	}
}

// TestMatrixSharesMemory: a matrix of 100,000 combinations holds one environment and
// one template for all of them.
func TestMatrixSharesMemory(t *testing.T) {
	src := "version: 1\ndefaults: {env: {A: a, B: b}}\ntasks:\n  - id: t\n    matrix:\n      x: [" + numbers(1000) + "]\n      y: [" + numbers(100) + "]\n    run: echo {x} {y}\n"
	f, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	tasks := f.Tasks(jobs.Settings{})
	if len(tasks) != 100_000 {
		t.Fatalf("got %d tasks", len(tasks))
	}
	first, last := &tasks[0], &tasks[len(tasks)-1]
	if &first.Env[0] != &last.Env[0] || first.Template != last.Template {
		t.Error("combinations do not share the environment and the template")
	}
	if last.ID != "t[x=999,y=99]" || !slices.Equal(last.Args(1)[4:], []string{"999", "99"}) {
		t.Errorf("last combination: %s %q", last.ID, last.Args(1))
	}
}
