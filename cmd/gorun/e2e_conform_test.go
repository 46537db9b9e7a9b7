//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The conformance suite runs one table of cases on the built binary twice: on this
// machine, and with --broker on an embedded broker with two workers. A run must not
// depend on where its tasks execute: per task, status, exit code, signal, attempts
// and output (tails and byte counts) must be identical, and so must gorun's exit code,
// its stdout and stderr (times set aside) and its JSON report (times, durations, waits,
// slots, hosts, run ids, command lines and start times set aside). It reads only what
// a user sees: the process's exit code and output and the report file, so it outlives
// any refactor of the packages behind them.

// conformCase is one case: a task file and one or more runs of it, in order, on the
// same directory (so that a run may resume the one before it).
type conformCase struct {
	name  string
	file  string     // the input file's name; its extension decides its format (default tasks.yaml)
	tasks string     // the input; DIR stands for the case's own directory
	runs  [][]string // exec flags of each run; DIR as above
	// ordered: gorun's stdout and stderr are deterministic (-k or -j 1), so they are
	// compared whole; else as sorted lines.
	ordered bool
	// isolated: on the broker, the case gets a broker and workers of its own, so that
	// what its tasks do to a worker cannot touch the other cases.
	isolated bool
	// want holds, per run, what the local executor must give, so that the suite never
	// compares two empty runs: the exit code, then id=status[/exit[/attempts]] for
	// every task (exit: the exit code, or the signal's name).
	want []string
}

// conformCases are the cases. Each is short: the whole suite runs every case on both
// executors, in parallel within an executor.
var conformCases = []conformCase{
	{
		name: "statuses",
		tasks: `version: 1
tasks:
  - id: ok
    run: echo out; echo err >&2
  - id: exit3
    run: echo about to fail; echo oops >&2; exit 3
  - id: sigkill
    run: echo dying; kill -KILL $$
  - id: sigterm
    run: kill -TERM $$
`,
		runs:    [][]string{{"-j", "4", "-k"}},
		ordered: true,
		want:    []string{"1 ok=succeeded/0/1 exit3=failed/3/1 sigkill=failed/SIGKILL/1 sigterm=failed/SIGTERM/1"},
	},
	{
		name:  "all-succeed",
		tasks: "version: 1\ntasks:\n  - id: a\n    run: echo a\n  - id: b\n    cmd: [echo, b]\n",
		runs:  [][]string{{"-j", "2"}},
		want:  []string{"0 a=succeeded/0/1 b=succeeded/0/1"},
	},
	{
		// One slot: the tasks start by priority, then critical path first; their
		// output, printed as each ends, shows the order.
		name: "priority",
		tasks: `version: 1
tasks:
  - {id: a, run: echo a}
  - {id: b, run: echo b, priority: 2}
  - {id: c, run: echo c, needs: [a]}
  - {id: d, run: echo d, priority: 1}
  - {id: e, run: echo e}
`,
		runs:    [][]string{{"-j", "1"}},
		ordered: true,
		want:    []string{"0 a=succeeded/0/1 b=succeeded/0/1 c=succeeded/0/1 d=succeeded/0/1 e=succeeded/0/1"},
	},
	{
		name: "lines-file",
		file: "commands.txt",
		tasks: `echo one
echo two >&2; exit 5
printf 'no newline'
`,
		runs:    [][]string{{"-j", "2", "-k", "-o", "jsonl"}},
		ordered: true,
		want:    []string{"1 task-1=succeeded/0/1 task-2=failed/5/1 task-3=succeeded/0/1"},
	},
	{
		// One slot: the task after the timed-out ones runs where they ran.
		name: "timeouts",
		tasks: `version: 1
tasks:
  - id: slow
    run: echo before; sleep 10
    timeout: 500ms
  - id: stubborn
    run: trap '' TERM; echo before; sleep 10
    timeout: 500ms
  - id: after
    run: echo fine
    timeout: 10s
`,
		runs:     [][]string{{"-j", "1", "--grace", "300ms"}},
		ordered:  true,
		isolated: true,
		want:     []string{"1 slow=timed_out/SIGTERM/1 stubborn=timed_out/SIGKILL/1 after=succeeded/0/1"},
	},
	{
		name: "retries",
		tasks: `version: 1
tasks:
  - id: flaky
    run: n=$(cat DIR/flaky.n 2>/dev/null || echo 0); n=$((n+1)); echo $n > DIR/flaky.n; echo "run $n attempt $GORUN_ATTEMPT"; echo "err $n" >&2; [ $n -ge 3 ]
    retries: 3
  - id: doomed
    run: echo "attempt $GORUN_ATTEMPT" >&2; exit 2
    retries: 1
  - id: steady
    run: echo "attempt $GORUN_ATTEMPT"
    retries: 2
`,
		runs:    [][]string{{"-j", "3", "-k", "--retry-delay", "10ms"}},
		ordered: true,
		want:    []string{"1 flaky=succeeded/0/3 doomed=failed/2/2 steady=succeeded/0/1"},
	},
	{
		// Retry classification: which failures are retried, and the report's
		// retry_log saying why, the same on a broker.
		name: "retry-on",
		tasks: `version: 1
defaults: {retries: 2, no_retry_on: [2]}
tasks:
  - id: tempfail
    run: n=$(cat DIR/t.n 2>/dev/null || echo 0); n=$((n+1)); echo $n > DIR/t.n; echo "run $n"; [ $n -ge 2 ] || exit 76
    retry_on: [76]
  - {id: usage, run: exit 2}
  - {id: other, run: exit 3, retry_on: [76, timeout]}
  - {id: killed, run: kill -KILL $$, retry_on: [signal]}
  - {id: flag, run: exit 4}
`,
		runs:    [][]string{{"-j", "4", "-k", "--retry-delay", "10ms", "--retry-on", "4"}},
		ordered: true,
		want:    []string{"1 tempfail=succeeded/0/2 usage=failed/2/1 other=failed/3/1 killed=failed/SIGKILL/3 flag=failed/4/3"},
	},
	{
		name:    "halt-soon",
		tasks:   haltTasks,
		runs:    [][]string{{"-j", "1", "--halt", "soon,fail=1"}},
		ordered: true,
		want:    []string{"1 t1=succeeded/0/1 t2=failed/1/1 t3=skipped t4=skipped"},
	},
	{
		name:    "fail-fast",
		tasks:   haltTasks,
		runs:    [][]string{{"-j", "1", "--fail-fast"}},
		ordered: true,
		want:    []string{"1 t1=succeeded/0/1 t2=failed/1/1 t3=skipped t4=skipped"},
	},
	{
		// Two slots, so that halting now has a running task to stop; t2 fails only
		// once t1 runs, so the outcome does not depend on timing.
		name: "halt-now",
		tasks: `version: 1
tasks:
  - id: t1
    run: echo t1 running; touch DIR/t1.started; sleep 10
  - id: t2
    run: while [ ! -e DIR/t1.started ]; do sleep 0.02; done; echo t2 fails >&2; exit 1
  - id: t3
    run: echo t3
  - id: t4
    run: echo t4
`,
		runs:    [][]string{{"-j", "2", "-k", "--halt", "now,fail=1", "--grace", "500ms"}},
		ordered: true,
		want:    []string{"1 t1=cancelled/SIGTERM/1 t2=failed/1/1 t3=skipped t4=skipped"},
	},
	{
		name: "needs",
		tasks: `version: 1
tasks:
  - id: a
    run: echo a broke >&2; exit 1
  - id: b
    run: echo b
    needs: [a]
  - id: c
    run: echo c
    needs: [b]
  - id: d
    run: echo d
`,
		runs:    [][]string{{"-j", "2", "-k"}},
		ordered: true,
		want:    []string{"1 a=failed/1/1 b=skipped c=skipped d=succeeded/0/1"},
	},
	{
		// The first run fails t2 (its counter is 0), the resumed one skips t1 and t3
		// and runs t2 again, which now succeeds.
		name: "resume",
		tasks: `version: 1
tasks:
  - id: t1
    run: echo t1 >> DIR/t1.ran; echo t1
  - id: t2
    run: n=$(cat DIR/t2.n 2>/dev/null || echo 0); echo $((n+1)) > DIR/t2.n; echo "t2 run $n"; [ $n -ge 1 ]
  - id: t3
    run: echo t3 >> DIR/t3.ran; echo t3
`,
		runs: [][]string{
			{"-j", "1", "--journal", "DIR/journal"},
			{"-j", "1", "--journal", "DIR/journal", "--resume"},
		},
		ordered: true,
		want: []string{
			"1 t1=succeeded/0/1 t2=failed/1/1 t3=succeeded/0/1",
			"0 t1=skipped t2=succeeded/0/1 t3=skipped",
		},
	},
}

// haltTasks fail at t2: with one slot, a halt on the first failure skips t3 and t4.
const haltTasks = `version: 1
tasks:
  - id: t1
    run: echo t1
  - id: t2
    run: echo t2 fails >&2; exit 1
  - id: t3
    run: echo t3
  - id: t4
    run: echo t4
`

// keepOrderTasks finish in the reverse of their order, each printing on both streams,
// the last without a final newline.
const keepOrderTasks = `version: 1
tasks:
  - id: t1
    run: sleep 0.6; echo t1 out1; echo t1 err >&2; echo t1 out2
  - id: t2
    run: sleep 0.3; echo t2 out1; echo t2 err >&2; echo t2 out2
  - id: t3
    run: echo t3 out1; echo t3 err >&2; printf 't3 no newline'
`

func init() {
	for _, mode := range []string{"grouped", "line", "tag", "jsonl", "none"} {
		conformCases = append(conformCases, conformCase{
			name:    "keep-order-" + mode,
			tasks:   keepOrderTasks,
			runs:    [][]string{{"-j", "3", "-k", "-o", mode}},
			ordered: true,
			want:    []string{"0 t1=succeeded/0/1 t2=succeeded/0/1 t3=succeeded/0/1"},
		})
	}
}

// conformRun is what one run of gorun left for its user, normalised.
type conformRun struct {
	exit           int
	stdout, stderr string
	report         map[string]any   // the JSON report without results, normalised
	results        []map[string]any // the report's results, in input order, normalised
}

// conformOutcome collects each executor's runs of each case.
type conformOutcome struct {
	mu   sync.Mutex
	runs map[string][]conformRun // by executor + "/" + case
}

func (o *conformOutcome) put(executor, name string, runs []conformRun) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.runs[executor+"/"+name] = runs
}

func (o *conformOutcome) get(executor, name string) []conformRun {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.runs[executor+"/"+name]
}

func TestE2EConformance(t *testing.T) {
	start := time.Now()
	out := &conformOutcome{runs: map[string][]conformRun{}}
	t.Run("local", func(t *testing.T) {
		for _, c := range conformCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				runs := runConformCase(t, c, nil)
				checkConformWant(t, c, runs)
				out.put("local", c.name, runs)
			})
		}
	})
	t.Logf("local executor: %v", time.Since(start).Round(time.Millisecond))
	brokerStart := time.Now()
	t.Run("broker", func(t *testing.T) {
		cl := startCluster(t, 2, "-j", "4")
		for _, c := range conformCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				url := cl.URL
				if c.isolated {
					url = startCluster(t, 2, "-j", "4").URL
				}
				out.put("broker", c.name, runConformCase(t, c, []string{"--broker", url}))
			})
		}
	})
	t.Logf("broker executor: %v", time.Since(brokerStart).Round(time.Millisecond))
	compared := 0
	t.Run("compare", func(t *testing.T) {
		for _, c := range conformCases {
			t.Run(c.name, func(t *testing.T) {
				local, remote := out.get("local", c.name), out.get("broker", c.name)
				if len(local) != len(c.runs) {
					t.Fatalf("case %s: the local executor finished %d of %d runs (see its subtest)", c.name, len(local), len(c.runs))
				}
				if len(remote) != len(c.runs) {
					t.Fatalf("case %s: the broker executor finished %d of %d runs (see its subtest)", c.name, len(remote), len(c.runs))
				}
				// Every case names its tasks in want: the comparison covers all of them.
				n, want := 0, 0
				for i := range c.runs {
					n += compareConformRuns(t, fmt.Sprintf("case %s run %d", c.name, i+1), c.ordered, local[i], remote[i])
					want += len(strings.Fields(c.want[i])) - 1
				}
				if n != want {
					t.Errorf("case %s: compared %d task results between the executors, want %d", c.name, n, want)
				}
				compared += n
			})
		}
	})
	t.Logf("%d cases, %d task results compared, in %v", len(conformCases), compared, time.Since(start).Round(time.Millisecond))
}

// runConformCase runs every run of c in a directory of its own, with the extra flags
// (the executor's), and returns what each left.
func runConformCase(t *testing.T, c conformCase, extra []string) []conformRun {
	t.Helper()
	dir := t.TempDir()
	file := c.file
	if file == "" {
		file = "tasks.yaml"
	}
	input := filepath.Join(dir, file)
	if err := os.WriteFile(input, []byte(strings.ReplaceAll(c.tasks, "DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	var runs []conformRun
	for i, flags := range c.runs {
		report := filepath.Join(dir, fmt.Sprintf("report-%d.json", i+1))
		args := []string{"exec", input}
		for _, f := range flags {
			args = append(args, strings.ReplaceAll(f, "DIR", dir))
		}
		args = append(args, "--report", report, "--progress", "never")
		args = append(args, extra...)
		r := startGorun(t, nil, args...)
		run := conformRun{exit: r.wait(t, 60*time.Second)}
		run.stdout = normaliseStdout(r.stdout.String(), dir)
		run.stderr = normaliseStderr(r.stderr.String(), dir)
		data, err := os.ReadFile(report)
		if err != nil {
			t.Fatalf("run %d (%v): no report: %v; exit %d, stderr:\n%s", i+1, flags, err, run.exit, r.stderr)
		}
		run.report, run.results = normaliseReport(t, data, dir)
		runs = append(runs, run)
	}
	return runs
}

// checkConformWant checks the runs of c against what c wants.
func checkConformWant(t *testing.T, c conformCase, runs []conformRun) {
	t.Helper()
	for i, w := range c.want {
		f := strings.Fields(w)
		run := runs[i]
		if got := fmt.Sprint(run.exit); got != f[0] {
			t.Errorf("case %s run %d, local: got exit %s, want %s; stderr:\n%s", c.name, i+1, got, f[0], run.stderr)
		}
		byID := map[string]map[string]any{}
		for _, r := range run.results {
			byID[fmt.Sprint(r["id"])] = r
		}
		if len(run.results) != len(f)-1 {
			t.Errorf("case %s run %d, local: got %d results, want %d", c.name, i+1, len(run.results), len(f)-1)
		}
		for _, spec := range f[1:] {
			id, rest, _ := strings.Cut(spec, "=")
			parts := strings.Split(rest, "/")
			r, ok := byID[id]
			if !ok {
				t.Errorf("case %s run %d, local: task %s: no result", c.name, i+1, id)
				continue
			}
			if got := fmt.Sprint(r["status"]); got != parts[0] {
				t.Errorf("case %s run %d, local: task %s: got status %s, want %s (error %v)", c.name, i+1, id, got, parts[0], r["error"])
			}
			if len(parts) > 1 {
				got := fmt.Sprint(r["exit_code"])
				if sig, ok := r["signal"]; ok {
					got = fmt.Sprint(sig)
				}
				if got != parts[1] {
					t.Errorf("case %s run %d, local: task %s: got exit %s, want %s", c.name, i+1, id, got, parts[1])
				}
			}
			if len(parts) > 2 {
				if got := fmt.Sprint(r["attempts"]); got != parts[2] {
					t.Errorf("case %s run %d, local: task %s: got %s attempts, want %s", c.name, i+1, id, got, parts[2])
				}
			}
		}
	}
}

// conformFields are the fields of a result compared task by task, in the order they
// are reported.
var conformFields = []string{"status", "exit_code", "signal", "attempts", "stdout_tail", "stderr_tail",
	"stdout_bytes", "stderr_bytes", "error", "leftover_processes", "index", "command"}

// compareConformRuns reports every difference of the broker's run from the local one
// (the reference) and returns how many task results it compared.
func compareConformRuns(t *testing.T, what string, ordered bool, local, remote conformRun) int {
	t.Helper()
	if remote.exit != local.exit {
		t.Errorf("%s: gorun exit code: broker got %d, want %d (local)", what, remote.exit, local.exit)
	}
	if len(local.results) == 0 {
		t.Errorf("%s: the local report has no results", what)
	}
	if len(remote.results) != len(local.results) {
		t.Errorf("%s: broker got %d results, want %d (local)", what, len(remote.results), len(local.results))
	}
	remoteByID := map[string]map[string]any{}
	for _, r := range remote.results {
		remoteByID[fmt.Sprint(r["id"])] = r
	}
	n := 0
	for _, l := range local.results {
		id := fmt.Sprint(l["id"])
		r, ok := remoteByID[id]
		if !ok {
			t.Errorf("%s: task %s: no result from the broker executor, want %s (local)", what, id, l["status"])
			continue
		}
		n++
		for _, k := range conformFields {
			lv, lok := l[k]
			rv, rok := r[k]
			if lok != rok || !reflect.DeepEqual(lv, rv) {
				t.Errorf("%s: task %s: %s: broker got %s, want %s (local)", what, id, k, showField(rv, rok), showField(lv, lok))
			}
		}
		for k := range r {
			if !slices.Contains(conformFields, k) && k != "id" {
				if _, ok := l[k]; !ok {
					t.Errorf("%s: task %s: broker has a field %s = %s that the local run lacks", what, id, k, showField(r[k], true))
				}
			}
		}
		for k := range l {
			if !slices.Contains(conformFields, k) && k != "id" && !reflect.DeepEqual(l[k], r[k]) {
				t.Errorf("%s: task %s: %s: broker got %s, want %s (local)", what, id, k, showField(r[k], true), showField(l[k], true))
			}
		}
	}
	// The rest of the report: run and totals.
	for _, d := range diffJSON("report", local.report, remote.report) {
		t.Errorf("%s: %s", what, d)
	}
	for _, s := range []struct{ name, local, remote string }{
		{"stdout", local.stdout, remote.stdout},
		{"stderr", local.stderr, remote.stderr},
	} {
		l, r := s.local, s.remote
		how := "whole"
		if !ordered {
			l, r, how = sortedLines(l), sortedLines(r), "as sorted lines"
		}
		if l != r {
			t.Errorf("%s: gorun's %s (%s, times set aside): broker got\n%s\nwant (local)\n%s", what, s.name, how, indent(r), indent(l))
		}
	}
	return n
}

func showField(v any, present bool) string {
	if !present {
		return "(absent)"
	}
	b, _ := json.Marshal(v)
	if len(b) > 300 {
		return fmt.Sprintf("%s… (%d bytes as JSON)", b[:300], len(b))
	}
	return string(b)
}

// diffJSON lists the paths at which two decoded JSON values differ.
func diffJSON(path string, want, got any) []string {
	wm, wok := want.(map[string]any)
	gm, gok := got.(map[string]any)
	if wok && gok {
		keys := map[string]bool{}
		for k := range wm {
			keys[k] = true
		}
		for k := range gm {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		slices.Sort(sorted)
		var out []string
		for _, k := range sorted {
			wv, wok := wm[k]
			gv, gok := gm[k]
			if !wok || !gok {
				out = append(out, fmt.Sprintf("%s.%s: broker got %s, want %s (local)", path, k, showField(gv, gok), showField(wv, wok)))
				continue
			}
			out = append(out, diffJSON(path+"."+k, wv, gv)...)
		}
		return out
	}
	if !reflect.DeepEqual(want, got) {
		return []string{fmt.Sprintf("%s: broker got %s, want %s (local)", path, showField(got, true), showField(want, true))}
	}
	return nil
}

// Fields that differ between any two runs, wherever the tasks execute.
var (
	volatileRun     = []string{"id", "started_at", "hostname", "command"} // the command line: --broker is in one only
	volatileTotals  = []string{"wall_s", "tasks_per_s", "p50_s", "p95_s", "max_s"}
	volatileResults = []string{"started_at", "duration_s", "waited_s", "slot", "worker", "host", "wait_s", "waited_for"} // local runs have no worker; waits are timing
)

// normaliseResult sets aside the volatile fields of a result and of its earlier
// attempts.
func normaliseResult(r map[string]any) {
	for _, k := range volatileResults {
		delete(r, k)
	}
	earlier, _ := r["earlier_attempts"].([]any)
	for _, e := range earlier {
		if e, ok := e.(map[string]any); ok {
			for _, k := range volatileResults {
				delete(e, k)
			}
		}
	}
}

// normaliseReport decodes a JSON report, sets aside what differs between any two runs
// (times, durations, slots, hosts, the run id), writes the case's directory as DIR,
// and returns the report without its results, and the results.
func normaliseReport(t *testing.T, data []byte, dir string) (map[string]any, []map[string]any) {
	t.Helper()
	var rep map[string]any
	if err := json.Unmarshal([]byte(strings.ReplaceAll(string(data), dir, "DIR")), &rep); err != nil {
		t.Fatalf("report: %v:\n%s", err, data)
	}
	if run, ok := rep["run"].(map[string]any); ok {
		for _, k := range volatileRun {
			delete(run, k)
		}
	}
	if totals, ok := rep["totals"].(map[string]any); ok {
		for _, k := range volatileTotals {
			delete(totals, k)
		}
	}
	list, _ := rep["results"].([]any)
	delete(rep, "results")
	var results []map[string]any
	for _, x := range list {
		r, ok := x.(map[string]any)
		if !ok {
			t.Fatalf("report: result %v is not an object", x)
		}
		normaliseResult(r)
		results = append(results, r)
	}
	return rep, results
}

// normaliseStdout writes the case's directory as DIR and, in JSON Lines output, sets
// aside each result's times and slot.
func normaliseStdout(s, dir string) string {
	s = strings.ReplaceAll(s, dir, "DIR")
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		line := sc.Text()
		var r map[string]any
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &r) == nil {
			normaliseResult(r)
			out, _ := json.Marshal(r)
			line = string(out)
		}
		b.WriteString(line + "\n")
	}
	if !strings.HasSuffix(s, "\n") && s != "" {
		return strings.TrimSuffix(b.String(), "\n")
	}
	return b.String()
}

var (
	summaryTime  = regexp.MustCompile(`^gorun: (\d+ tasks?) in [^ ]+ \([^)]*\):`)
	durationWord = regexp.MustCompile(`\b[0-9][0-9.]*(ns|µs|us|ms|s|m|h)([0-9][0-9.]*(ns|µs|us|ms|s|m|h))*\b`)
	spaces       = regexp.MustCompile(` {2,}`)
	ranOn        = regexp.MustCompile(` *\(on worker [^)]*\)`) // where a remote task ran: only remote runs say
)

// normaliseStderr sets aside the times in gorun's summary (and the column widths that
// follow from them) and where remote tasks ran, and writes the case's directory as DIR.
func normaliseStderr(s, dir string) string {
	s = strings.ReplaceAll(s, dir, "DIR")
	lines := strings.SplitAfter(s, "\n")
	summary := false
	for i, l := range lines {
		if runIDLine.MatchString(l) { // a distributed run's own line: its id
			lines[i] = ""
			continue
		}
		if summaryTime.MatchString(l) {
			summary = true
			lines[i] = summaryTime.ReplaceAllString(l, "gorun: $1 in T:")
			continue
		}
		if summary {
			if strings.HasPrefix(l, "durations:") {
				lines[i] = "durations: T\n"
				continue
			}
			lines[i] = spaces.ReplaceAllString(durationWord.ReplaceAllString(ranOn.ReplaceAllString(l, ""), "T"), " ")
		}
	}
	return strings.Join(lines, "")
}

func sortedLines(s string) string {
	l := strings.Split(s, "\n")
	slices.Sort(l)
	return strings.Join(l, "\n")
}

func indent(s string) string {
	if s == "" {
		return "    (nothing)"
	}
	return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ")
}
