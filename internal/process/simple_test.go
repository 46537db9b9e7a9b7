//go:build linux

package process

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

// argvHelperVar, in the environment, makes this test binary a program that prints
// what it was started with (see argvHelper).
const argvHelperVar = "GORUN_TEST_ARGV_HELPER"

// argvHelper prints its argv (argv[0] as given, not the path), its working directory
// and its whole environment, sorted, each quoted on a line of its own; it writes its
// last argument to stderr and exits with the number of its arguments.
func argvHelper() {
	for i, a := range os.Args {
		fmt.Printf("argv[%d]=%q\n", i, a)
	}
	wd, _ := syscall.Getwd()
	fmt.Printf("cwd=%q\n", wd)
	env := os.Environ()
	slices.Sort(env)
	for _, e := range env {
		fmt.Printf("env %q\n", e)
	}
	fmt.Fprintf(os.Stderr, "last=%q\n", os.Args[len(os.Args)-1])
	os.Exit(len(os.Args) - 1)
}

// helperBin makes a directory of programs for the equivalence tests: this test binary
// under several names (see argvHelper), a file that is not executable, a script with no
// #! line, and a directory; it returns the directory and a symbolic link to it.
func helperBin(t *testing.T) (bin, link string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	bin = filepath.Join(root, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"argv", "my prog", "ünï", "a'b", "-dash"} {
		if err := os.Symlink(exe, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]struct {
		body string
		mode os.FileMode
	}{
		"noexec":    {"#!/bin/sh\necho never\n", 0o644},
		"noshebang": {"echo \"script run by the shell: $# args\"\nexit 5\n", 0o755},
	}
	for name, f := range files {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(bin, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	link = filepath.Join(root, "link")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	return bin, link
}

// TestSimpleCommandRunsAsTheShellWould runs each line twice, directly where gorun
// finds it simple and through /bin/sh (shell: always), and compares what the program
// saw (argv, working directory, environment), its output and its exit code, byte for
// byte. Lines that are simple must be run directly, with the argv the table gives;
// the others must go to the shell.
func TestSimpleCommandRunsAsTheShellWould(t *testing.T) {
	bin, link := helperBin(t)
	base := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), argvHelperVar + "=1", "LANG=C.UTF-8"}
	direct := []struct {
		line string
		argv []string // as the program must see it
	}{
		{`argv`, []string{"argv"}},
		{`argv a b  c`, []string{"argv", "a", "b", "c"}},
		{`  argv   spaced	out  `, []string{"argv", "spaced", "out"}},
		{`argv 'single quoted' "double quoted"`, []string{"argv", "single quoted", "double quoted"}},
		{`argv '' "" x`, []string{"argv", "", "", "x"}},
		{`argv -- --x -y`, []string{"argv", "--", "--x", "-y"}},
		{`"my prog" 1 2`, []string{"my prog", "1", "2"}},
		{`my\ prog x`, []string{"my prog", "x"}},
		{`'a'\''b' q`, []string{"a'b", "q"}},
		{`  -dash`, []string{"-dash"}},
		{`argv 'it'\''s' "say \"hi\"" back\\slash "a\\b" "\$x" 'a\nb' "\q"`,
			[]string{"argv", "it's", `say "hi"`, `back\slash`, `a\b`, "$x", `a\nb`, `\q`}},
		{`argv '$HOME' '*' '~' "*" "?" \* \? \[ \~ '` + "`x`" + `'`, []string{"argv", "$HOME", "*", "~", "*", "?", "*", "?", "[", "~", "`x`"}},
		{`argv ünïcödé 日本 '🙂'`, []string{"argv", "ünïcödé", "日本", "🙂"}},
		{`ünï x`, []string{"ünï", "x"}},
		{`argv a\ b c\ \ d`, []string{"argv", "a b", "c  d"}},
		{"argv \"multi\nline\" 'two\nlines'", []string{"argv", "multi\nline", "two\nlines"}},
		{"argv con\\\ntinued", []string{"argv", "continued"}},
		{`argv key=value --opt=1 a=b`, []string{"argv", "key=value", "--opt=1", "a=b"}},
		{`argv {a,b} % @ ^ ! a!b a#b }`, []string{"argv", "{a,b}", "%", "@", "^", "!", "a!b", "a#b", "}"}},
		{bin + `/argv abs`, []string{bin + "/argv", "abs"}},
		{link + `/argv via-link`, []string{link + "/argv", "via-link"}},
		{`echo hello  world`, []string{"echo", "hello", "world"}},
		{`echo ''`, []string{"echo", ""}},
		{`true`, []string{"true"}},
		{`false`, []string{"false"}},
	}
	shell := []string{
		`argv $HOME`, `argv ${X}`, `argv "$HOME"`, `argv $(echo x)`, "argv `echo x`", `argv $((1+1))`, `argv $'x'`,
		`argv *`, `argv ?`, `argv [a]`, `argv x*`, `~/argv`, `argv ~`, `argv ~root`,
		`argv > /dev/null`, `argv 2>&1`, `argv < /dev/null`, "argv <<EOF\nx\nEOF", `argv | cat`,
		`argv; argv`, `argv;`, `argv && argv`, `argv || argv`, `argv & wait`, `-dash`, `+dash`, `! argv`, `argv # comment`,
		`X=1 argv`, `X=1`, `if true; then argv; fi`, `{ argv; }`, `(argv)`, `for i in 1; do argv; done`,
		`while false; do :; done`, `case x in x) argv;; esac`, `f() { argv; }; f`,
		`cd /`, `exit 3`, `export X=1`, `printf x`, `echo -n x`, `echo 'a\nb'`, `true x`, `false --help`,
		`pwd`, `test -n x`, `[ x ]`, `kill -0 0`, `type argv`, `command argv`, `exec argv`, `. /dev/null`, `:`,
		`""`, `argv "a`, `done`, "argv 0\r", "argv \xff",
	}
	// Lines gorun would start directly, whose program then cannot be started as found,
	// or is not found: the shell must answer, as it would have.
	fallback := []string{`nosuch-gorun-cmd x`, `noexec`, `./noexec`, `noshebang a b`, `./noshebang`, `adir`, `./adir`, `/nonexistent/x`}

	r := &Runner{Grace: time.Second, BaseEnv: base}
	run := func(line, dir string, always bool) (a jobs.Attempt, out, errOut string) {
		t.Helper()
		task := jobs.Task{Index: 1, ID: "eq", Run: line, Shell: jobs.DefaultShell, Dir: dir, ShellAlways: always}
		stdout, stderr := NewCapture(true), NewCapture(true)
		defer stdout.Close()
		defer stderr.Close()
		a = r.Run(context.Background(), &task, 1, 1, stdout, stderr)
		if a.Err != nil {
			t.Fatalf("%q: %v", line, a.Err)
		}
		var b1, b2 strings.Builder
		_, _ = stdout.WriteTo(&b1)
		_, _ = stderr.WriteTo(&b2)
		return a, b1.String(), b2.String()
	}
	same := func(t *testing.T, line, dir string) (out string) {
		t.Helper()
		a1, out1, err1 := run(line, dir, false)
		a2, out2, err2 := run(line, dir, true)
		if a1.ExitCode != a2.ExitCode || a1.Signal != a2.Signal {
			t.Errorf("%q: exit %d (signal %v) direct, %d (signal %v) through the shell", line, a1.ExitCode, a1.Signal, a2.ExitCode, a2.Signal)
		}
		if out1 != out2 {
			t.Errorf("%q: stdout differs:\ndirect:\n%s\nshell:\n%s", line, out1, out2)
		}
		if err1 != err2 {
			t.Errorf("%q: stderr differs:\ndirect: %q\nshell:  %q", line, err1, err2)
		}
		return out1
	}
	decision := func(line, dir string) bool {
		task := jobs.Task{Run: line, Shell: jobs.DefaultShell, Dir: dir}
		env, err := r.env(&task, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		return r.direct(&task, env).path != ""
	}
	for _, dir := range []string{"", link, bin, "."} {
		for _, c := range direct {
			if !decision(c.line, dir) {
				t.Errorf("%q in %q: runs through the shell, want it run directly", c.line, dir)
				continue
			}
			out := same(t, c.line, dir)
			if !strings.HasPrefix(c.argv[0], "echo") && c.argv[0] != "true" && c.argv[0] != "false" {
				var want strings.Builder
				for i, a := range c.argv {
					fmt.Fprintf(&want, "argv[%d]=%q\n", i, a)
				}
				if !strings.HasPrefix(out, want.String()) {
					t.Errorf("%q: got\n%s\nwant argv\n%s", c.line, out, want.String())
				}
			}
		}
		for _, line := range shell {
			if decision(line, dir) {
				t.Errorf("%q: runs directly, want it to go to the shell", line)
			}
			if dir == "" { // both ways go to the shell: once is enough (each run costs a process)
				same(t, line, dir)
			}
		}
		for _, line := range fallback {
			same(t, line, dir)
		}
	}
}

// TestSimpleCommandEnvironment: the direct path sees the task's own PATH, not gorun's,
// and the PWD a shell would export, whether inherited or made up.
func TestSimpleCommandEnvironment(t *testing.T) {
	bin, link := helperBin(t)
	for _, base := range [][]string{
		{argvHelperVar + "=1"},                                            // no PATH: the shell decides
		{argvHelperVar + "=1", "PATH=" + bin},                             // only the helpers
		{argvHelperVar + "=1", "PATH=/nonexistent:" + bin, "PWD=" + link}, // PWD through a link, right for link
		{argvHelperVar + "=1", "PATH=" + bin, "PWD=/tmp"},                 // a wrong PWD: replaced
		{argvHelperVar + "=1", "PATH=relative:" + bin},                    // a relative entry first: the shell decides
	} {
		r := &Runner{Grace: time.Second, BaseEnv: base}
		for _, dir := range []string{"", link, bin} {
			var outs [2]string
			var codes [2]int
			for i, always := range []bool{false, true} {
				task := jobs.Task{Index: 1, ID: "env", Run: "argv x", Shell: jobs.DefaultShell, Dir: dir, ShellAlways: always}
				stdout, stderr := NewCapture(true), NewCapture(true)
				a := r.Run(context.Background(), &task, 1, 1, stdout, stderr)
				outs[i], codes[i] = stdout.Tail()+stderr.Tail(), a.ExitCode
				stdout.Close()
				stderr.Close()
			}
			if outs[0] != outs[1] || codes[0] != codes[1] {
				t.Errorf("env %q, dir %q: direct exit %d:\n%s\nshell exit %d:\n%s", base, dir, codes[0], outs[0], codes[1], outs[1])
			}
		}
	}
}

func TestShellAlwaysResolves(t *testing.T) {
	always := jobs.ShellAlways
	task := jobs.Resolve(1, &jobs.Spec{Run: "true"}, jobs.Settings{}, &jobs.Defaults{Shell: &always})
	if task.Shell != jobs.DefaultShell || !task.ShellAlways {
		t.Errorf("got shell %q, always %v; want %q, true", task.Shell, task.ShellAlways, jobs.DefaultShell)
	}
	r := &Runner{BaseEnv: []string{"PATH=" + os.Getenv("PATH")}}
	env, _ := r.env(&task, 1, 1)
	if d := r.direct(&task, env); d.path != "" {
		t.Errorf("shell: always runs %q directly", task.Run)
	}
}

// FuzzSimpleArgv: the parser never panics, and an argv it accepts, quoted back into a
// line word by word, reads back as the same argv.
func FuzzSimpleArgv(f *testing.F) {
	for _, s := range []string{`argv a 'b c' "d\"e" f\ g`, "x\\\ny", `$HOME`, `a=b c`, `echo ü ''`, `'it'\''s'`, `"\q\$"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		argv, ok := SimpleArgv(line)
		if !ok {
			return
		}
		if len(argv) == 0 || argv[0] == "" {
			t.Fatalf("%q: accepted with argv %q", line, argv)
		}
		back, ok := SimpleArgv(jobs.JoinArgv(argv))
		if ok && !slices.Equal(back, argv) {
			t.Fatalf("%q: argv %q reads back as %q", line, argv, back)
		}
	})
}

// BenchmarkRunTrue runs `true` as a task, started directly and through the shell:
// ns/op is the whole cost of a task on this machine, allocs/op gorun's allocations
// for it (os/exec's included).
func BenchmarkRunTrue(b *testing.B) {
	for _, always := range []bool{false, true} {
		name := map[bool]string{false: "direct", true: "shell"}[always]
		b.Run(name, func(b *testing.B) {
			r := &Runner{Grace: time.Second, BaseEnv: os.Environ()}
			task := jobs.Task{Index: 1, ID: "true", Run: "true", Shell: jobs.DefaultShell, ShellAlways: always}
			b.ReportAllocs()
			for b.Loop() {
				stdout, stderr := NewCapture(true), NewCapture(true)
				if a := r.Run(context.Background(), &task, 1, 1, stdout, stderr); a.ExitCode != 0 {
					b.Fatalf("true: exit %d, %v", a.ExitCode, a.Err)
				}
				_ = stdout.Close()
				_ = stderr.Close()
			}
		})
	}
}

// TestSimpleArgvAgainstShell reads random lines made of quotes, backslashes, blanks,
// newlines and other characters both ways: every line SimpleArgv accepts must give
// the words /bin/sh gives when it reads the same line as the arguments of a function
// that prints them.
func TestSimpleArgvAgainstShell(t *testing.T) {
	plain := []string{"a", "b", "-", "=", " ", "  ", "\t", "\n", "{", "}", ",", "!", "%", "@", ":", "ü", "日", ".", "/", "+", "^",
		`\a`, `\\`, `\'`, `\"`, `\ `, `\$`, "\\\n", `\*`}
	inDouble := []string{"a", " ", "'", "ü", "\n", `\a`, `\\`, `\"`, `\$`, "\\`", "\\\n", "*", "~", "#"}
	inSingle := []string{"a", " ", `"`, `\`, "$", "`", "\n", "*", "#"}
	pick := func(rng *rand.Rand, from []string, n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(from[rng.IntN(len(from))])
		}
		return b.String()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	compared := 0
	for range 600 {
		var b strings.Builder
		b.WriteString("w")
		for range 1 + rng.IntN(6) {
			switch rng.IntN(3) {
			case 0:
				b.WriteString(pick(rng, plain, 1+rng.IntN(3)))
			case 1:
				b.WriteString(`"` + pick(rng, inDouble, rng.IntN(4)) + `"`)
			default:
				b.WriteString("'" + pick(rng, inSingle, rng.IntN(4)) + "'")
			}
		}
		line := b.String()
		argv, ok := SimpleArgv(line)
		if !ok {
			continue
		}
		compared++
		out, err := exec.Command("/bin/sh", "-c", `p() { printf '%s\0' "$@"; }; p `+line).Output()
		if err != nil {
			t.Fatalf("%q: accepted, but sh fails on it: %v", line, err)
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if !slices.Equal(got, argv) {
			t.Errorf("%q: SimpleArgv gives %q, sh gives %q", line, argv, got)
		}
	}
	if compared < 150 {
		t.Errorf("only %d of 600 random lines were simple: the test compares too little", compared)
	}
	t.Logf("%d random simple lines read as sh reads them", compared)
}
