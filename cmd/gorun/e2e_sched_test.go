//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/testutil"
)

// prioritisedFile writes a task file whose tasks append their id to DIR/order: a
// first task that every other one needs (so that all of them are ready at once when
// it ends), priorities, and a chain of needs. It returns the file and the order they
// must start in, one at a time.
func prioritisedFile(t *testing.T, dir string) (string, string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\ntasks:\n")
	task := func(id, extra string) {
		fmt.Fprintf(&b, "  - {id: %s, run: 'echo %s >> %s/order'%s}\n", id, id, dir, extra)
	}
	task("first", ", priority: 100")
	task("low", ", priority: -5, needs: [first]")
	task("plain1", ", needs: [first]")
	task("urgent", ", priority: 10, needs: [first]")
	task("chain1", ", needs: [first]")
	task("chain2", ", needs: [chain1]")
	task("chain3", ", needs: [chain2]")
	task("plain2", ", needs: [first]")
	task("high", ", priority: 3, needs: [first]")
	// urgent and high by priority; then chain1, which has the most work after it;
	// then chain2 (2 to go) before the plain tasks (1 each); plain1, plain2 and
	// chain3 by the order they became ready; low last.
	return writeFile(t, "prio.yaml", b.String()), "first urgent high chain1 chain2 plain1 plain2 chain3 low"
}

func readOrder(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "order"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(data)), " ")
}

// TestE2EPriorityStartOrder: one slot, a prioritised file: the tasks start by
// priority, then critical path first, then input order, on this machine and on a
// broker's worker alike.
func TestE2EPriorityStartOrder(t *testing.T) {
	dir := t.TempDir()
	file, want := prioritisedFile(t, dir)
	r := startGorun(t, nil, "exec", file, "-j", "1")
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
	if got := readOrder(t, dir); got != want {
		t.Errorf("local: got start order %q, want %q", got, want)
	}

	url := startBroker(t)
	startWorker(t, url, testutil.NewMark(t), 1)
	if err := os.Remove(filepath.Join(dir, "order")); err != nil {
		t.Fatal(err)
	}
	r = startGorun(t, nil, "exec", file, "-j", "1", "--broker", url)
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("--broker: exit %d; stderr:\n%s", code, r.stderr)
	}
	if got := readOrder(t, dir); got != want {
		t.Errorf("--broker: got start order %q, want %q", got, want)
	}

	r = startGorun(t, nil, "validate", file)
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("validate: exit %d; stderr:\n%s", code, r.stderr)
	}
	if out := r.stdout.String(); !strings.Contains(out, "PRIORITY") || !regexp.MustCompile(`(?m)^urgent +first +10 `).MatchString(out) {
		t.Errorf("validate does not show the priorities:\n%s", out)
	}
}

// TestE2ERetryLogInReport: a task retried on its exit code 76, then stopped by its
// no_retry_on; the JSON report says of each attempt whether it was retried, and why.
func TestE2ERetryLogInReport(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, "retry.yaml", fmt.Sprintf(`version: 1
tasks:
  - id: t
    run: n=$(cat %[1]s/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > %[1]s/n; [ $n -ge 2 ] && exit 9; exit 76
    retries: 5
    retry_delay: 10ms
    no_retry_on: [9]
`, dir))
	report := filepath.Join(dir, "report.json")
	r := startGorun(t, nil, "exec", file, "--retry-on", "76,9", "--report", report)
	if code := r.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, r.stderr)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Results []struct {
			Attempts int `json:"attempts"`
			RetryLog []struct {
				Attempt  int    `json:"attempt"`
				ExitCode *int   `json:"exit_code"`
				Retried  bool   `json:"retried"`
				Reason   string `json:"reason"`
			} `json:"retry_log"`
		} `json:"results"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Attempts != 2 || len(rep.Results[0].RetryLog) != 2 {
		t.Fatalf("got %s, want one task, 2 attempts, 2 retry_log entries", data)
	}
	log := rep.Results[0].RetryLog
	if !log[0].Retried || *log[0].ExitCode != 76 || log[0].Reason != "exit code 76, in retry_on: retry 1 of 5" {
		t.Errorf("attempt 1: got %+v, want retried on exit code 76", log[0])
	}
	if log[1].Retried || *log[1].ExitCode != 9 || log[1].Reason != "exit code 9 is in no_retry_on (9)" {
		t.Errorf("attempt 2: got %+v, want not retried: 9 is in no_retry_on", log[1])
	}
}

// jsonlResult is what the limit tests read of a -o jsonl result line.
type jsonlResult struct {
	ID        string    `json:"id"`
	Command   string    `json:"command"`
	Status    string    `json:"status"`
	StartedAt time.Time `json:"started_at"`
	Duration  float64   `json:"duration_s"`
	Wait      float64   `json:"wait_s"`
	WaitedFor []string  `json:"waited_for"`
}

func readJSONLResults(t *testing.T, out string) []jsonlResult {
	t.Helper()
	var rs []jsonlResult
	for line := range strings.Lines(out) {
		var r jsonlResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad result line %q: %v", line, err)
		}
		rs = append(rs, r)
	}
	return rs
}

// mostAtOnce returns the most results whose runs overlap at one time.
func mostAtOnce(rs []jsonlResult) int {
	most := 0
	for _, a := range rs {
		n := 0
		for _, b := range rs {
			end := b.StartedAt.Add(time.Duration(b.Duration * float64(time.Second)))
			if !b.StartedAt.After(a.StartedAt) && end.After(a.StartedAt) {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// TestE2ENamedLimit: a pool of 2 holds its tasks to 2 at once while the others use
// the free slots, on this machine and on a broker's workers.
func TestE2ENamedLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nlimits: {db: {concurrency: 2}}\ntasks:\n")
	for i := range 6 {
		fmt.Fprintf(&b, "  - {id: db%d, run: sleep 0.4, limits: [db]}\n", i)
		fmt.Fprintf(&b, "  - {id: free%d, run: sleep 0.4}\n", i)
	}
	file := writeFile(t, "limits.yaml", b.String())
	url := startBroker(t)
	startWorker(t, url, testutil.NewMark(t), 8)
	for _, extra := range [][]string{nil, {"--broker", url}} {
		r := startGorun(t, nil, append([]string{"exec", file, "-j", "8", "-o", "jsonl"}, extra...)...)
		if code := r.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("%v: exit %d; stderr:\n%s", extra, code, r.stderr)
		}
		var db, free []jsonlResult
		for _, res := range readJSONLResults(t, r.stdout.String()) {
			if strings.HasPrefix(res.ID, "db") {
				db = append(db, res)
			} else {
				free = append(free, res)
			}
		}
		if len(db) != 6 || len(free) != 6 {
			t.Fatalf("%v: got %d db and %d other results, want 6 each", extra, len(db), len(free))
		}
		if n := mostAtOnce(db); n != 2 {
			t.Errorf("%v: at most %d db tasks ran at once, want 2 (the pool's concurrency)", extra, n)
		}
		if n := mostAtOnce(free); n < 4 {
			t.Errorf("%v: at most %d other tasks ran at once, want at least 4: the pool holds up only its own", extra, n)
		}
		held := 0 // 4 of the 6 wait for the pool, about 0.4 s or 0.8 s
		for _, res := range db {
			if slices.Contains(res.WaitedFor, "limit db") && res.Wait >= 0.3 {
				held++
			}
		}
		if held != 4 {
			t.Errorf("%v: %d db tasks say they waited for the pool db, want 4: %+v", extra, held, db)
		}
		if !regexp.MustCompile(`held back: 4 tasks waited for limit db \([0-9.]+m?s in all\)`).MatchString(r.stderr.String()) {
			t.Errorf("%v: the summary does not say 4 tasks waited for the pool:\n%s", extra, r.stderr)
		}
	}
}

// TestE2EPerKeyRate: --limit-by gives each key its own rate: 8 keys at 8/s each on
// -j 16, 100 starts a key (about 12.4 s), each key's rate, from its first start to its
// last, within 2% of 8/s. The test mostly waits, so it runs beside others.
func TestE2EPerKeyRate(t *testing.T) {
	t.Parallel()
	perKeyRate(t, 0.02)
}

// TestE2EPerKeyRateBroker: the same with --broker, within 3%: the starts are measured
// on the worker, after the broker's delivery, whose delay grows by up to a quarter of
// a second over a run on a loaded machine (measured: 7.84 to 8.02/s at a load average
// of 13).
func TestE2EPerKeyRateBroker(t *testing.T) {
	t.Parallel()
	url := startBroker(t)
	startWorker(t, url, testutil.NewMark(t), 16)
	perKeyRate(t, 0.03, "--broker", url)
}

// perKeyRate runs 8 keys × 100 starts at 8/s each, with extra arguments, and checks
// that each key's rate is within tolerance (a fraction) of 8/s.
func perKeyRate(t *testing.T, tolerance float64, extra ...string) {
	const keys, perKey, rate = 8, 100, 8.0
	var lines strings.Builder
	for i := range perKey {
		for k := range keys {
			fmt.Fprintf(&lines, "k%d/%d\n", k, i)
		}
	}
	items := writeFile(t, "items.txt", lines.String())
	start := time.Now()
	args := append([]string{"exec", items, "-j", "16", "-o", "jsonl", "--limit-by", "{//}", "--limit-rate", "8/s"}, extra...)
	r := startGorun(t, nil, append(args, "--", "true", "{}")...)
	if code := r.wait(t, 120*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
	took := time.Since(start)
	byKey := map[string][]time.Time{}
	for _, res := range readJSONLResults(t, r.stdout.String()) {
		key, _, _ := strings.Cut(strings.TrimPrefix(res.Command, "true "), "/")
		byKey[key] = append(byKey[key], res.StartedAt)
	}
	if len(byKey) != keys {
		t.Fatalf("got %d keys, want %d", len(byKey), keys)
	}
	var rates []string
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		starts := byKey[key]
		slices.SortFunc(starts, time.Time.Compare)
		got := float64(len(starts)-1) / starts[len(starts)-1].Sub(starts[0]).Seconds()
		rates = append(rates, fmt.Sprintf("%s %.3f/s", key, got))
		if len(starts) != perKey || got > rate*(1+tolerance) || got < rate*(1-tolerance) {
			t.Errorf("key %s: %d starts at %.3f/s, want %d within %.0f%% of %.0f/s", key, len(starts), got, perKey, 100*tolerance, rate)
		}
	}
	// One key alone takes (100-1)/8 = 12.4 s; 8 keys one after another, 99 s.
	if took > 40*time.Second {
		t.Errorf("the run took %v: the keys did not run side by side", took)
	}
	t.Logf("%d keys × %d starts at %.0f/s each in %v: %s", keys, perKey, rate, took.Round(time.Millisecond), strings.Join(rates, ", "))
}

// TestE2EBackoffHalvesConcurrency: on -j 4, a task that exits 75 is queued again and
// halves the concurrency the other tasks get until successes bring it back; the
// summary says so; on this machine and on a broker's worker alike.
func TestE2EBackoffHalvesConcurrency(t *testing.T) {
	url := startBroker(t)
	startWorker(t, url, testutil.NewMark(t), 4)
	t.Run("local", func(t *testing.T) { checkBackoff(t, nil) })
	t.Run("broker", func(t *testing.T) { checkBackoff(t, []string{"--broker", url}) })
}

func checkBackoff(t *testing.T, extra []string) {
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\ntasks:\n  - {id: tempfail, run: 'if [ -e %[1]s/once ]; then sleep 0.3; else touch %[1]s/once; exit 75; fi'}\n", dir)
	// The three that start with it end 0.3 s apart, so that a task starts between
	// the back-off and the recovery: after the back-off to 2, the first end leaves 2
	// running (none starts), the second 1 (one starts), the third brings 3 back.
	for i := range 3 {
		fmt.Fprintf(&b, "  - {id: t%d, run: sleep %.1f}\n", i, 0.3*float64(i+1))
	}
	for i := 3; i < 16; i++ {
		fmt.Fprintf(&b, "  - {id: t%d, run: sleep 0.5}\n", i)
	}
	file := writeFile(t, "backoff.yaml", b.String())
	r := startGorun(t, nil, append([]string{"exec", file, "-j", "4", "-o", "jsonl", "-v", "--log-format", "json"}, extra...)...)
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
	stderr := r.stderr.String()
	if !regexp.MustCompile(`held back: 1 back-off \(exit code 75\); concurrency 2 of 4 at the lowest \(at [0-9:]+\), 4 of 4 at the end`).MatchString(stderr) {
		t.Errorf("the summary does not say the run held back:\n%s", stderr)
	}
	var backedOff, recovered time.Time // the first change to 2, then to 3
	for line := range strings.Lines(stderr) {
		var ev struct {
			Time        time.Time `json:"time"`
			Msg         string    `json:"msg"`
			Concurrency int       `json:"concurrency"`
		}
		if json.Unmarshal([]byte(line), &ev) != nil || ev.Msg != "concurrency changed" {
			continue
		}
		switch {
		case ev.Concurrency == 2 && backedOff.IsZero():
			backedOff = ev.Time
		case ev.Concurrency == 3 && !backedOff.IsZero() && recovered.IsZero():
			recovered = ev.Time
		}
	}
	if backedOff.IsZero() || recovered.IsZero() {
		t.Fatalf("no back-off to 2 then recovery to 3 in the log:\n%s", stderr)
	}
	rs := readJSONLResults(t, r.stdout.String())
	if len(rs) != 17 {
		t.Fatalf("got %d results, want 17", len(rs))
	}
	startsBetween := 0
	for _, a := range rs {
		// A task handed out just before the back-off may record its start a moment
		// after it: the first task to end after the back-off ends 0.3 s later.
		if !a.StartedAt.After(backedOff.Add(150*time.Millisecond)) || !a.StartedAt.Before(recovered) {
			continue
		}
		startsBetween++
		running := 0
		for _, o := range rs {
			end := o.StartedAt.Add(time.Duration(o.Duration * float64(time.Second)))
			if !o.StartedAt.After(a.StartedAt) && end.After(a.StartedAt) {
				running++
			}
		}
		if running > 2 {
			t.Errorf("%s started with %d tasks running, after the back-off to 2", a.ID, running)
		}
	}
	if startsBetween == 0 {
		t.Error("no task started between the back-off and the recovery: the test shows nothing")
	}
}

// TestE2EMemfreeHoldsBack: with more --memfree than the machine has, nothing starts;
// an interrupt ends the run with every task skipped, and the summary says why it
// waited. A --load no machine reaches holds nothing back.
func TestE2EMemfreeHoldsBack(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, "mem.yaml", fmt.Sprintf("version: 1\ntasks:\n  - {id: a, run: touch %s/ran}\n", dir))
	r := startGorun(t, nil, "exec", file, "--memfree", "1000TiB", "-v")
	waitFor(t, 30*time.Second, "the waiting line", func() bool { return strings.Contains(r.stderr.String(), "memfree: ") })
	_ = r.cmd.Process.Signal(os.Interrupt)
	if code := r.wait(t, 30*time.Second); code != 130 {
		t.Fatalf("exit %d, want 130; stderr:\n%s", code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("the task ran although memory was short")
	}
	if !regexp.MustCompile(`held back: waiting for [0-9.]+m?s in all \(memfree: [0-9.]+[KMGT]iB available, below 1000TiB\)`).MatchString(r.stderr.String()) {
		t.Errorf("the summary does not say why the run waited:\n%s", r.stderr)
	}

	r = startGorun(t, nil, "exec", file, "--load", "100000", "--memfree", "1KiB")
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("--load 100000: exit %d; stderr:\n%s", code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err != nil {
		t.Errorf("with bounds the machine is within, the task did not run: %v", err)
	}
}

// TestE2ELabelKeyedLimit: JSON Lines tasks name their host in a label; --limit-by
// '{host}' --limit-concurrency 1 runs one task a host at a time, the hosts side by
// side, locally and with --broker. A line without the label, or input without labels,
// is refused before anything runs.
func TestE2ELabelKeyedLimit(t *testing.T) {
	var b strings.Builder
	for i := range 6 {
		fmt.Fprintf(&b, `{"id": "t%d", "run": "sleep 0.3", "labels": {"host": "h%d"}}`+"\n", i, i%2)
	}
	file := writeFile(t, "tasks.jsonl", b.String())
	url := startBroker(t)
	startWorker(t, url, testutil.NewMark(t), 6)
	for _, extra := range [][]string{nil, {"--broker", url}} {
		r := startGorun(t, nil, append([]string{"exec", file, "-j", "6", "-o", "jsonl", "--limit-by", "{host}", "--limit-concurrency", "1"}, extra...)...)
		if code := r.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("%v: exit %d; stderr:\n%s", extra, code, r.stderr)
		}
		byHost := map[string][]jsonlResult{}
		var all []jsonlResult
		for _, res := range readJSONLResults(t, r.stdout.String()) {
			n, _ := strconv.Atoi(strings.TrimPrefix(res.ID, "t"))
			host := fmt.Sprintf("h%d", n%2)
			byHost[host] = append(byHost[host], res)
			all = append(all, res)
		}
		for host, rs := range byHost {
			if len(rs) != 3 || mostAtOnce(rs) != 1 {
				t.Errorf("%v: host %s: %d tasks, at most %d at once; want 3, one at a time", extra, host, len(rs), mostAtOnce(rs))
			}
		}
		if n := mostAtOnce(all); n != 2 {
			t.Errorf("%v: at most %d tasks at once, want 2: one a host, the hosts side by side", extra, n)
		}
	}

	marker := filepath.Join(t.TempDir(), "ran")
	bad := writeFile(t, "bad.jsonl", `{"run": "touch `+marker+`", "labels": {"host": "h0"}}`+"\n"+`{"run": "true", "labels": {"hots": "h0"}}`+"\n")
	code, stderr := runGorun(t, "", 30*time.Second, "exec", bad, "--limit-by", "{host}", "--limit-rate", "1/s")
	if want := `bad.jsonl:2:27: labels: no label "host", which --limit-by reads`; code != 2 || !strings.Contains(stderr, want) {
		t.Errorf("a line without the label: exit %d, stderr %q; want 2 and %s", code, stderr, want)
	}
	code, stderr = runGorun(t, "a\nb\n", 30*time.Second, "exec", "--limit-by", "{host}", "--limit-rate", "1/s", "--", "echo")
	if code != 2 || !strings.Contains(stderr, `--limit-by reads the label "host"`) {
		t.Errorf("lines of input: exit %d, stderr %q; want 2: they have no labels", code, stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a task ran from a file refused")
	}
}
