package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pipeline"
)

// parseExec runs `gorun exec ARGS` up to the point where the options are filled.
func parseExec(t *testing.T, argv string, env map[string]string) (*ExecOptions, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	ios, _, _, _ := iostreams.Test()
	var got *ExecOptions
	root := NewCmdRoot(ios, nil)
	for _, c := range root.Commands() {
		if c.Name() == "exec" {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(NewCmdExec(ios, nil, func(o *ExecOptions) error { got = o; return nil }))
	root.SetArgs(append([]string{"exec"}, strings.Fields(argv)...))
	err := root.ExecuteContext(context.Background())
	return got, err
}

func TestExecOptions(t *testing.T) {
	dur := func(d time.Duration) *time.Duration { return &d }
	n := func(i int) *int { return &i }
	lim := func(r rate.Limit) *rate.Limit { return &r }
	tests := []struct {
		name string
		argv string
		env  map[string]string
		want ExecOptions
		tmpl string
	}{
		{name: "defaults", argv: "tasks.yaml",
			want: ExecOptions{File: "tasks.yaml", Format: "yaml", Burst: 1, Grace: 5 * time.Second, Output: pipeline.Grouped}},
		{name: "flags", argv: "tasks.yaml -j 5 -r 2/s --burst 3 -t 30s --grace 1s --retries 2 --retry-delay 3s -o none",
			want: ExecOptions{File: "tasks.yaml", Format: "yaml", Workers: n(5), Rate: lim(2), Burst: 3, Grace: time.Second, Output: pipeline.None,
				Settings: jobs.Settings{Timeout: dur(30 * time.Second), Retries: n(2), RetryDelay: dur(3 * time.Second)}}},
		{name: "environment", argv: "-", env: map[string]string{"GORUN_WORKERS": "7", "GORUN_RETRY_DELAY": "2s", "GORUN_RATE": "100/m"},
			want: ExecOptions{File: "-", Format: "lines", Workers: n(7), Rate: lim(100.0 / 60), Burst: 1, Grace: 5 * time.Second, Output: pipeline.Grouped,
				Settings: jobs.Settings{RetryDelay: dur(2 * time.Second)}}},
		{name: "flag beats environment", argv: "-j 3", env: map[string]string{"GORUN_WORKERS": "7"},
			want: ExecOptions{Format: "lines", Workers: n(3), Burst: 1, Grace: 5 * time.Second, Output: pipeline.Grouped}},
		{name: "template, null, keep order", argv: "-0 -k -o tag -- convert {} {.}.jpg",
			want: ExecOptions{Format: "lines", Null: true, KeepOrder: true, Burst: 1, Grace: 5 * time.Second, Output: pipeline.Tag}, tmpl: "convert {} {.}.jpg"},
		{name: "jsonl by extension", argv: "tasks.jsonl",
			want: ExecOptions{File: "tasks.jsonl", Format: "jsonl", Burst: 1, Grace: 5 * time.Second, Output: pipeline.Grouped}},
		{name: "parallel's numbers: seconds, workers relative to the CPUs", argv: "-t 30 -j +2",
			want: ExecOptions{Format: "lines", Workers: n(runtime.NumCPU() + 2), Burst: 1, Grace: 5 * time.Second, Output: pipeline.Grouped,
				Settings: jobs.Settings{Timeout: dur(30 * time.Second)}}},
		{name: "timeout as a percentage of the median, workers as one of the CPUs", argv: "-t 200% -j 200%",
			want: ExecOptions{Format: "lines", Workers: n(2 * runtime.NumCPU()), Burst: 1, Grace: 5 * time.Second, Output: pipeline.Grouped,
				Settings: jobs.Settings{Timeout: dur(0)}, TimeoutPercent: 200}},
		{name: "workers: all CPUs but one, from the environment", argv: "-", env: map[string]string{"GORUN_WORKERS": "-1", "GORUN_TIMEOUT": "1.5"},
			want: ExecOptions{File: "-", Format: "lines", Workers: n(max(1, runtime.NumCPU()-1)), Burst: 1, Grace: 5 * time.Second, Output: pipeline.Grouped,
				Settings: jobs.Settings{Timeout: dur(1500 * time.Millisecond)}}},
		{name: "unlimited rate", argv: "--rate inf",
			want: ExecOptions{Format: "lines", Rate: lim(rate.Inf), Burst: 1, Grace: 5 * time.Second, Output: pipeline.Grouped}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			t.Setenv("XDG_CONFIG_HOME", t.TempDir())
			got, err := parseExec(t, tt.argv, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffOptions(got, &tt.want, tt.tmpl); d != "" {
				t.Errorf("options differ: %s", d)
			}
		})
	}
}

// writeUserConfig writes the config file gorun finds by itself,
// $XDG_CONFIG_HOME/gorun/config.yaml, in a fresh XDG_CONFIG_HOME, and returns its path.
func writeUserConfig(t *testing.T, content string) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	file := filepath.Join(home, "gorun", "config.yaml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestConfigFilePrecedence(t *testing.T) {
	t.Chdir(t.TempDir())
	writeUserConfig(t, "workers: 9\ntimeout: 10s\ngrace: 2s\n")
	got, err := parseExec(t, "-t 20s", map[string]string{"GORUN_GRACE": "3s"})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Workers != 9 || *got.Settings.Timeout != 20*time.Second || got.Grace != 3*time.Second {
		t.Errorf("got workers %d timeout %v grace %v, want 9 (file), 20s (flag), 3s (environment)",
			*got.Workers, *got.Settings.Timeout, got.Grace)
	}
	explicit := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(explicit, []byte("workers: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err = parseExec(t, "--config "+explicit, nil); err != nil || *got.Workers != 4 {
		t.Errorf("--config: got %v, %v, want workers 4 from %s", got.Workers, err, explicit)
	}
}

// TestConfigNotFromCurrentDir: a task file that happens to be named gorun.yaml in the
// current directory is a task file, not the config file; and an error in the config
// file says it is one.
func TestConfigNotFromCurrentDir(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	if err := os.WriteFile("gorun.yaml", []byte("tasks:\n  - run: echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := parseExec(t, "gorun.yaml", nil)
	if err != nil {
		t.Fatalf("got %v, want gorun.yaml read as a task file only", err)
	}
	if got.File != "gorun.yaml" || got.Workers != nil {
		t.Errorf("got file %q workers %v, want gorun.yaml and no workers from a config file", got.File, got.Workers)
	}
	file := writeUserConfig(t, "tasks: []\n")
	_, err = parseExec(t, "gorun.yaml", nil)
	if want := "config file " + file + `: unknown key "tasks"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want an error containing %q", err, want)
	}
}

func TestBadOptions(t *testing.T) {
	tests := []struct {
		name, argv string
		env        map[string]string
		config     string
		want       string
	}{
		{name: "bad rate flag", argv: "-r fast", want: `--rate: invalid rate "fast"`},
		{name: "bad workers env", env: map[string]string{"GORUN_WORKERS": "lots"}, want: `GORUN_WORKERS: invalid number "lots"`},
		{name: "zero workers", argv: "-j 0", want: `"-j, --workers" flag: must be at least 1, got 0`},
		{name: "relative workers", argv: "-j +x", want: `invalid number "+x": want N, +N or -N`},
		{name: "negative timeout", argv: "-t -1s", want: `invalid duration "-1s": must not be negative`},
		{name: "bad timeout env", env: map[string]string{"GORUN_TIMEOUT": "soon"}, want: `GORUN_TIMEOUT: invalid duration "soon"`},
		{name: "bad timeout percent", argv: "-t 0%", want: `invalid timeout "0%"`},
		{name: "bad output", argv: "-o fancy", want: `--output: invalid output mode "fancy"`},
		{name: "unknown flag", argv: "--frobnicate", want: "unknown flag: --frobnicate"},
		{name: "two files", argv: "a.yaml b.yaml", want: "exec takes one input FILE"},
		{name: "template with a task file", argv: "t.yaml -- echo {}", want: "a command template takes lines of input, not a yaml task file"},
		{name: "null with jsonl", argv: "-0 --format jsonl", want: "--null reads NUL-separated items"},
		{name: "bad config value", config: "grace: soon\n", want: `gorun/config.yaml: grace: invalid duration "soon"`},
		{name: "unknown config key", config: "wrkers: 2\n", want: `gorun/config.yaml: unknown key "wrkers"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			t.Setenv("XDG_CONFIG_HOME", t.TempDir())
			if tt.config != "" {
				writeUserConfig(t, tt.config)
			}
			_, err := parseExec(t, tt.argv+" -", tt.env)
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a usage error containing %q", err, tt.want)
			}
		})
	}
}

// TestBadSources: input sources that cannot work are usage errors: nothing runs.
func TestBadSources(t *testing.T) {
	for _, tt := range []struct{ argv, want string }{
		{"-- echo {3} ::: a ::: b", "the template names input source 3, and there are only 2"},
		{"-- echo {2}", "the template names input source 2, and there are only 1"},
		{"tasks.txt -- echo ::: a", "input sources (::: or ::::) replace the input FILE tasks.txt"},
		{"-- echo :::+ a", ":::+ links a source to the one before it"},
		{"-- echo ::::", ":::: needs at least one file"},
	} {
		t.Chdir(t.TempDir())
		t.Setenv("XDG_CONFIG_HOME", t.TempDir())
		_, err := parseExec(t, tt.argv, nil)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want a usage error containing %q", tt.argv, err, tt.want)
		}
	}
}

func TestStdinTerminalIsAUsageError(t *testing.T) {
	t.Chdir(t.TempDir())
	ios, _, _, _ := iostreams.Test()
	ios.SetStdinTTY(true)
	cmd := NewCmdExec(ios, nil, func(*ExecOptions) error { t.Error("ran with a terminal on stdin"); return nil })
	cmd.SetArgs(nil)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "standard input is a terminal") {
		t.Errorf("got %v, want a usage error about the terminal", err)
	}
}

func diffOptions(got, want *ExecOptions, tmpl string) string {
	var d []string
	check := func(name string, g, w any) {
		if g != w {
			d = append(d, name)
		}
	}
	check("File", got.File, want.File)
	check("Format", got.Format, want.Format)
	check("Burst", got.Burst, want.Burst)
	check("Grace", got.Grace, want.Grace)
	check("Output", got.Output, want.Output)
	check("Null", got.Null, want.Null)
	check("KeepOrder", got.KeepOrder, want.KeepOrder)
	gotTmpl := ""
	if got.Template != nil {
		gotTmpl = got.Template.String()
	}
	check("Template", gotTmpl, tmpl)
	check("Workers", deref(got.Workers, -1), deref(want.Workers, -1))
	check("Rate", deref(got.Rate, -1), deref(want.Rate, -1))
	check("Timeout", deref(got.Settings.Timeout, -1), deref(want.Settings.Timeout, -1))
	check("Retries", deref(got.Settings.Retries, -1), deref(want.Settings.Retries, -1))
	check("RetryDelay", deref(got.Settings.RetryDelay, -1), deref(want.Settings.RetryDelay, -1))
	check("TimeoutPercent", got.TimeoutPercent, want.TimeoutPercent)
	return strings.Join(d, ", ")
}

// fakePipeline emits the given results without running anything.
func fakePipeline(results []jobs.Result, err error) PipelineFunc {
	return func(ctx context.Context, src jobs.Source, opts pipeline.Options, emit func(jobs.Result)) error {
		for _, r := range results {
			emit(r)
		}
		return err
	}
}

func TestRunExec(t *testing.T) {
	zero, three := 0, 3
	ok := jobs.Result{ID: "a", Index: 1, Status: jobs.Succeeded, ExitCode: &zero, StartedAt: time.Now()}
	bad := jobs.Result{ID: "b", Index: 2, Status: jobs.Failed, ExitCode: &three, StartedAt: time.Now(), StderrTail: "boom\n"}
	interrupted := &interruptedError{sig: 2}
	tests := []struct {
		name     string
		results  []jobs.Result
		inputErr error
		cancel   error
		wantErr  error
		wantLine string
	}{
		{name: "all succeed", results: []jobs.Result{ok}, wantLine: "1 succeeded, 0 failed"},
		{name: "one fails", results: []jobs.Result{ok, bad}, wantErr: errTasksFailed, wantLine: "b  failed  exit 3"},
		{name: "interrupted", results: []jobs.Result{ok}, cancel: interrupted, wantErr: interrupted, wantLine: "1 succeeded"},
		{name: "input error before any start", inputErr: &jobs.InputError{File: "stdin", Line: 4, Msg: "bad"}, wantLine: ""},
		{name: "input error after starts", results: []jobs.Result{ok}, inputErr: &jobs.InputError{File: "stdin", Line: 4, Msg: "bad"}, wantLine: "1 task"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, in, out, errOut := iostreams.Test()
			in.WriteString("true\n")
			ctx, cancel := context.WithCancelCause(context.Background())
			if tt.cancel != nil {
				cancel(tt.cancel)
			}
			defer cancel(nil)
			opts := &ExecOptions{IO: ios, Pipeline: fakePipeline(tt.results, tt.inputErr), Format: "auto", Burst: 1, Output: pipeline.Grouped}
			err := runExec(ctx, opts)
			want := tt.wantErr
			if tt.inputErr != nil {
				want = tt.inputErr
			}
			if !errors.Is(err, want) {
				t.Errorf("got error %v, want %v", err, want)
			}
			if tt.wantLine == "" && errOut.Len() > 0 {
				t.Errorf("stderr %q, want nothing: main prints the error alone", errOut.String())
			}
			if !strings.Contains(errOut.String(), tt.wantLine) {
				t.Errorf("stderr %q does not contain %q", errOut.String(), tt.wantLine)
			}
			if out.Len() != 0 {
				t.Errorf("stdout got %q, want nothing: the summary goes to stderr", out.String())
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	ios, _, _, errOut := iostreams.Test()
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errTasksFailed, 1},
		{&interruptedError{sig: 2}, 130},
		{&interruptedError{sig: 15}, 143},
		{usagef("gorun exec", "bad flag"), 2},
		{&jobs.InputError{File: "f.yaml", Line: 1, Msg: "bad"}, 2},
		{errors.New("cannot start guard"), 1},
	}
	for _, tt := range tests {
		if got := exitCode(ios, tt.err); got != tt.want {
			t.Errorf("exitCode(%v): got %d, want %d", tt.err, got, tt.want)
		}
	}
	if !strings.Contains(errOut.String(), "Run 'gorun exec --help' for usage.") {
		t.Errorf("a usage error should point at the help; stderr: %q", errOut.String())
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	example, err := filepath.Abs("../../configs/gorun.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	got, err := parseExec(t, "--config "+example+" -", nil)
	if err != nil {
		t.Fatalf("configs/gorun.example.yaml: %v", err)
	}
	if *got.Workers != 4 || *got.Rate != 10 || *got.Settings.Timeout != 10*time.Minute {
		t.Errorf("got workers %d rate %v timeout %v, want the example's 4, 10/s and 10m", *got.Workers, *got.Rate, *got.Settings.Timeout)
	}
}

// TestSettingPrecedence sets the timeout at every level and checks which one wins:
// the task's own field > flag > GORUN_* variable > config file > the task file's
// defaults > the built-in default (none).
func TestSettingPrecedence(t *testing.T) {
	type levels struct{ task, flag, env, config, defaults bool }
	tests := []struct {
		set  levels
		want string
	}{
		{levels{true, true, true, true, true}, "1s"},
		{levels{false, true, true, true, true}, "2s"},
		{levels{false, false, true, true, true}, "3s"},
		{levels{false, false, false, true, true}, "4s"},
		{levels{false, false, false, false, true}, "5s"},
		{levels{false, false, false, false, false}, "0s"},
		{levels{true, false, false, false, false}, "1s"},
		{levels{false, true, false, true, false}, "2s"},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%+v", tt.set)
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			t.Setenv("XDG_CONFIG_HOME", t.TempDir())
			file := "version: 1\n"
			if tt.set.defaults {
				file += "defaults:\n  timeout: 5s\n"
			}
			file += "tasks:\n  - run: 'true'\n"
			if tt.set.task {
				file += "    timeout: 1s\n"
			}
			os.WriteFile("tasks.yaml", []byte(file), 0o644)
			if tt.set.config {
				writeUserConfig(t, "timeout: 4s\n")
			}
			env := map[string]string{}
			if tt.set.env {
				env["GORUN_TIMEOUT"] = "3s"
			}
			argv := "tasks.yaml"
			if tt.set.flag {
				argv += " --timeout 2s"
			}
			opts, err := parseExec(t, argv, env)
			if err != nil {
				t.Fatal(err)
			}
			src, _, _, _, err := openInput(opts)
			if err != nil {
				t.Fatal(err)
			}
			task, err := src.Next()
			if err != nil {
				t.Fatal(err)
			}
			if got := task.Timeout.String(); got != tt.want {
				t.Errorf("got timeout %s, want %s", got, tt.want)
			}
		})
	}
}

// TestHelp keeps every command's help in golden files, so that a change to it is a
// deliberate one (refresh with go test -update).
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{}, {"exec"}, {"validate"}, {"report"}, {"version"}, {"worker"}, {"broker"}, {"runs"}, {"status"}, {"cancel"}, {"completion"}} {
		name := "help-gorun"
		if len(args) > 0 {
			name += "-" + args[0]
		}
		t.Run(name, func(t *testing.T) {
			ios, _, out, _ := iostreams.Test()
			root := NewCmdRoot(ios, nil)
			root.SetArgs(append(args, "--help"))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			goldenFile(t, name, out.Bytes())
			if len(args) > 0 && args[0] != "completion" && !strings.Contains(out.String(), "Examples:") {
				t.Errorf("%s has no examples", name)
			}
		})
	}
}

func TestCommandLineForReports(t *testing.T) {
	got := commandLine([]string{"gorun", "exec", "my tasks.yaml", "--broker", "nats://ann:s3cret@10.0.0.5:4222,nats://b:4222", "--", "echo", "it's {}"})
	want := `gorun exec 'my tasks.yaml' --broker 'nats://ann:***@10.0.0.5:4222,nats://b:4222' -- echo 'it'\''s {}'`
	if got != want {
		t.Errorf("commandLine:\n got %s\nwant %s", got, want)
	}
}
