//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ledgerFile writes a task file of n tasks asking for the CPUs and GPUs cpu(i) and
// gpu(i) say. Each task appends "+ ID CPU GPUS" to DIR/ledger as it starts, holds for
// a while, and appends "- ID CPU GPUS" before it ends (appends of one line are atomic),
// so the ledger replays which tasks held what at once.
func ledgerFile(t *testing.T, dir string, n int, cpu func(i int) string, gpu func(i int) int, extra string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\n" + extra + "tasks:\n")
	for i := range n {
		hold := []string{"0.2", "0.4", "0.3"}[i%3]
		fmt.Fprintf(&b, "  - id: t%d\n    run: echo \"+ t%[1]d %[2]s $CUDA_VISIBLE_DEVICES\" >> %[3]s/ledger; sleep %[4]s; echo \"- t%[1]d %[2]s $CUDA_VISIBLE_DEVICES\" >> %[3]s/ledger\n", i, cpu(i), dir, hold)
		fmt.Fprintf(&b, "    resources: {cpu: %s, gpu: %d}\n", cpu(i), gpu(i))
	}
	return writeFile(t, "resources.yaml", b.String())
}

// replayLedger checks the ledger in dir: the CPUs held at once never exceed capacity,
// no GPU is held by two tasks at once, and each task held as many GPUs as it asked
// for; it returns the most CPUs held at once and the tasks seen.
func replayLedger(t *testing.T, dir string, capacity float64, gpu func(i int) int) (most float64, tasks int) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "ledger"))
	if err != nil {
		t.Fatal(err)
	}
	held, gpus := 0.0, map[string]string{}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("ledger line %q: want + or -, id, cpu and the GPUs", line)
		}
		cpu, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		if len(f) > 3 {
			ids = strings.Split(f[3], ",")
		}
		switch f[0] {
		case "+":
			tasks++
			held += cpu
			most = max(most, held)
			if held > capacity+1e-9 {
				t.Errorf("at %s's start, %g CPUs held, more than the capacity %g", f[1], held, capacity)
			}
			i, _ := strconv.Atoi(strings.TrimPrefix(f[1], "t"))
			if len(ids) != gpu(i) {
				t.Errorf("%s asked for %d GPUs, got CUDA_VISIBLE_DEVICES=%q", f[1], gpu(i), ids)
			}
			for _, id := range ids {
				if other, ok := gpus[id]; ok {
					t.Errorf("%s got GPU %s while %s holds it", f[1], id, other)
				}
				gpus[id] = f[1]
			}
		case "-":
			held -= cpu
			for _, id := range ids {
				delete(gpus, id)
			}
		}
	}
	return most, tasks
}

// TestE2EResourcesRespected: 24 tasks asking for 0.5 to 2 CPUs and some for GPUs, on
// --cpus 4 --gpus 0,1,2 with 16 workers: the CPUs they hold at once never exceed 4,
// the run packs them (4 held at some point), and each task that asks for GPUs gets
// its own in CUDA_VISIBLE_DEVICES. Then a task asking for more than the run has is
// refused before anything runs, at its key.
func TestE2EResourcesRespected(t *testing.T) {
	dir := t.TempDir()
	cpu := func(i int) string { return []string{"1", "2", "0.5", "1.5"}[i%4] }
	gpu := func(i int) int { return []int{0, 1, 2, 0, 1}[i%5] }
	file := ledgerFile(t, dir, 24, cpu, gpu, "")
	r := startGorun(t, nil, "exec", file, "-j", "16", "--cpus", "4", "--gpus", "0,1,2", "-o", "none")
	if code := r.wait(t, 120*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
	most, n := replayLedger(t, dir, 4, gpu)
	if n != 24 {
		t.Errorf("%d tasks in the ledger, want 24", n)
	}
	if most < 3.5 {
		t.Errorf("at most %g CPUs held at once, want the run to pack its tasks up to about 4", most)
	}

	// Without --gpus, the GPUs are those of CUDA_VISIBLE_DEVICES.
	gdir := t.TempDir()
	one := func(int) int { return 1 }
	gfile := ledgerFile(t, gdir, 6, func(int) string { return "0.5" }, one, "")
	t.Setenv("CUDA_VISIBLE_DEVICES", "5,7")
	r = startGorun(t, nil, "exec", gfile, "-j", "6", "-o", "none")
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("CUDA_VISIBLE_DEVICES=5,7: exit %d; stderr:\n%s", code, r.stderr)
	}
	replayLedger(t, gdir, 3, one)
	data, _ := os.ReadFile(filepath.Join(gdir, "ledger"))
	if got := regexp.MustCompile(`(?m) (\S+)$`).FindAllStringSubmatch(string(data), -1); len(got) != 12 {
		t.Errorf("ledger:\n%s\nwant 12 lines, each ending with the task's GPU", data)
	} else {
		for _, m := range got {
			if m[1] != "5" && m[1] != "7" {
				t.Errorf("a task got GPU %q, want 5 or 7 (CUDA_VISIBLE_DEVICES)", m[1])
			}
		}
	}

	// A task that can never fit: exit 2, FILE:LINE:COL and the key, nothing runs.
	bdir := t.TempDir()
	big := writeFile(t, "big.yaml", fmt.Sprintf(`version: 1
tasks:
  - id: small
    run: touch %[1]s/ran
    resources: {cpu: 1}
  - id: big
    run: touch %[1]s/ran
    resources: {cpu: 8}
`, bdir))
	r = startGorun(t, nil, "exec", big, "--cpus", "4")
	if code := r.wait(t, 30*time.Second); code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, r.stderr)
	}
	want := regexp.MustCompile(regexp.QuoteMeta(big) + `:8:22: task "big": resources\.cpu: asks for cpu 8, and the run has 4 CPUs \(--cpus\): it could never start`)
	if !want.MatchString(r.stderr.String()) {
		t.Errorf("stderr %q, want %s", r.stderr, want)
	}
	if _, err := os.Stat(filepath.Join(bdir, "ran")); err == nil {
		t.Error("a task ran although the file was refused")
	}
	r = startGorun(t, nil, "validate", big, "--cpus", "4")
	if code := r.wait(t, 30*time.Second); code != 2 || !want.MatchString(r.stderr.String()) {
		t.Errorf("validate: exit %d, stderr %q; want 2 and %s", code, r.stderr, want)
	}
	r = startGorun(t, nil, "validate", big, "--cpus", "8")
	if code := r.wait(t, 30*time.Second); code != 0 || !slices.ContainsFunc(strings.Split(r.stdout.String(), "\n"), func(l string) bool {
		return strings.HasPrefix(l, "big ") && strings.Contains(l, "cpu 8")
	}) {
		t.Errorf("validate --cpus 8: exit %d, stdout:\n%s\nwant 0 and big's resources listed", code, r.stdout)
	}
}

// TestE2ELabelsRouteAttemptsWithBroker: the same kind of file with --broker, on two
// workers, one started with --label gpu=a100: the tasks whose on: requires gpu=a100
// run on that worker only, every time; the others run on either. The CPUs the tasks
// ask for count against the run's capacity (--cpus 2): the ledger never shows more
// than 2 held at once. A task asking for more than the workers announce is refused
// before anything runs.
func TestE2ELabelsRouteAttemptsWithBroker(t *testing.T) {
	c := startCluster(t, 0)
	c.addWorker(t, "--name", "plain", "-j", "3", "--cpus", "3")
	c.addWorker(t, "--name", "gpu", "-j", "3", "--cpus", "3", "--label", "gpu=a100,zone=eu")
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("version: 1\ntasks:\n")
	for i := range 12 {
		on := ""
		if i%2 == 0 {
			on = ", on: {gpu: a100}"
		}
		fmt.Fprintf(&b, "  - {id: t%d, run: 'echo \"+ t%[1]d 1\" >> %[2]s/ledger; sleep 0.2; echo \"- t%[1]d 1\" >> %[2]s/ledger', resources: {cpu: 1}%[3]s}\n", i, dir, on)
	}
	file := writeFile(t, "labels.yaml", b.String())
	r := startGorun(t, nil, "exec", file, "--broker", c.URL, "-j", "6", "--cpus", "2", "-o", "jsonl")
	if code := r.wait(t, 120*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\n%s", code, r.stderr, c.workerLogs())
	}
	var results []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Worker string `json:"worker"`
	}
	for line := range strings.Lines(r.stdout.String()) {
		var res struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Worker string `json:"worker"`
		}
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			t.Fatalf("result line %q: %v", line, err)
		}
		results = append(results, res)
	}
	if len(results) != 12 {
		t.Fatalf("%d results, want 12:\n%s", len(results), r.stdout)
	}
	on := map[string]int{}
	for _, res := range results {
		i, _ := strconv.Atoi(strings.TrimPrefix(res.ID, "t"))
		on[res.Worker]++
		if i%2 == 0 && res.Worker != "gpu" {
			t.Errorf("%s requires gpu=a100 and ran on worker %q, want gpu", res.ID, res.Worker)
		}
		if res.Status != "succeeded" {
			t.Errorf("%s: %s", res.ID, res.Status)
		}
	}
	if on["gpu"] < 6 {
		t.Errorf("tasks by worker %v, want the 6 labelled ones (at least) on gpu", on)
	}
	if most, _ := replayLedger(t, dir, 2, func(int) int { return 0 }); most > 2 {
		t.Errorf("%g CPUs held at once, want at most 2", most)
	}

	// The workers announce 3 + 3 CPUs: a task asking for 8 could never start.
	big := writeFile(t, "big.yaml", "version: 1\ntasks:\n  - {id: big, run: 'true', resources: {cpu: 8}}\n")
	r = startGorun(t, nil, "exec", big, "--broker", c.URL)
	if code := r.wait(t, 60*time.Second); code != 2 || !strings.Contains(r.stderr.String(), `big.yaml:3:45: task "big": resources.cpu: asks for cpu 8, and the run has 6 CPUs (--cpus)`) {
		t.Errorf("exit %d, stderr %q; want 2 and the task's key", code, r.stderr)
	}
}

// TestE2EWorkersHonourTheirCapacity: two workers of -j 4, one of 4 CPUs and GPUs 0,1,
// one of 2 CPUs and no GPU, run 24 tasks of 1 and 2 CPUs, some asking for a GPU and
// some for 3 CPUs. The submitter gates on the 6 CPUs summed; each worker must keep to
// its own: the ledger of the tasks each ran (by the worker in each result) never
// holds more CPUs than that worker's --cpus, no two of the big worker's running
// tasks share a GPU, the GPU and 3-CPU tasks all ran on the big worker, and no
// attempt ran twice (an attempt a worker held until it fitted is not an execution).
func TestE2EWorkersHonourTheirCapacity(t *testing.T) {
	c := startCluster(t, 0)
	c.addWorker(t, "--name", "big", "-j", "4", "--cpus", "4", "--gpus", "0,1")
	c.addWorker(t, "--name", "small", "-j", "4", "--cpus", "2", "--gpus", "none")
	dir := t.TempDir()
	cpu := func(i int) string {
		switch {
		case i%8 == 5:
			return "3"
		case i%3 == 0:
			return "2"
		}
		return "1"
	}
	gpu := func(i int) int {
		if i%4 == 1 {
			return 1
		}
		return 0
	}
	file := ledgerFile(t, dir, 24, cpu, gpu, "")
	r := startGorun(t, nil, "exec", file, "--broker", c.URL, "-j", "8", "-o", "jsonl")
	if code := r.wait(t, 180*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\n%s", code, r.stderr, c.workerLogs())
	}
	worker := map[string]string{}
	heldFor := 0 // results that say their worker held them
	for line := range strings.Lines(r.stdout.String()) {
		var res struct {
			ID        string   `json:"id"`
			Status    string   `json:"status"`
			Worker    string   `json:"worker"`
			Attempts  int      `json:"attempts"`
			WaitedFor []string `json:"waited_for"`
		}
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			t.Fatalf("result line %q: %v", line, err)
		}
		worker[res.ID] = res.Worker
		if slices.ContainsFunc(res.WaitedFor, func(why string) bool { return strings.HasPrefix(why, "worker resources") }) {
			heldFor++
		}
		if res.Status != "succeeded" || res.Attempts != 1 {
			t.Errorf("%s: %s after %d attempts, want succeeded after 1", res.ID, res.Status, res.Attempts)
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(res.ID, "t"))
		if (gpu(i) > 0 || cpu(i) == "3") && res.Worker != "big" {
			t.Errorf("%s asks for cpu %s, gpu %d and ran on %q: want big, the only worker with room for it", res.ID, cpu(i), gpu(i), res.Worker)
		}
	}
	if len(worker) != 24 {
		t.Fatalf("%d results, want 24:\n%s", len(worker), r.stdout)
	}
	// Split the ledger by worker and replay each against that worker's capacity.
	data, err := os.ReadFile(filepath.Join(dir, "ledger"))
	if err != nil {
		t.Fatal(err)
	}
	split := map[string]*strings.Builder{"big": {}, "small": {}}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 2 || split[worker[f[1]]] == nil {
			t.Fatalf("ledger line %q: of no worker's task", line)
		}
		split[worker[f[1]]].WriteString(line)
	}
	held := strings.Count(c.workerLogs(), "attempt held")
	t.Logf("attempts held on their worker until they fitted: %d; results that say so: %d", held, heldFor)
	if heldFor != held {
		t.Errorf("%d results say their worker held them (waited_for: worker resources), and the workers held %d attempts", heldFor, held)
	}
	for name, capacity := range map[string]float64{"big": 4, "small": 2} {
		sub := filepath.Join(dir, name)
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "ledger"), []byte(split[name].String()), 0o644); err != nil {
			t.Fatal(err)
		}
		most, tasks := replayLedger(t, sub, capacity, gpu)
		t.Logf("worker %s: %d tasks, at most %g CPUs held at once", name, tasks, most)
		if tasks == 0 {
			t.Errorf("worker %s ran no task", name)
		}
		if most > capacity {
			t.Errorf("worker %s held %g CPUs at once, more than its --cpus %g\n%s", name, most, capacity, c.workerLogs())
		}
	}

	// 5 CPUs fit the 6 the workers have together, but no one worker: the run says so,
	// and the task waits in its queue until a worker with room for it comes.
	huge := writeFile(t, "huge.yaml", "version: 1\ntasks:\n  - {id: huge, run: 'echo ran', resources: {cpu: 5}}\n")
	r = startGorun(t, nil, "exec", huge, "--broker", c.URL, "--cpus", "5")
	waitFor(t, 60*time.Second, "the warning", func() bool {
		return strings.Contains(r.stderr.String(), "gorun: no live worker has room for cpu 5: their tasks wait for one")
	})
	c.addWorker(t, "--name", "huge", "--cpus", "5")
	if code := r.wait(t, 60*time.Second); code != 0 || !strings.Contains(r.stdout.String(), "ran") {
		t.Errorf("exit %d, stdout %q; want 0 and the task's output, once a worker with room came\n%s\n%s", code, r.stdout, r.stderr, c.workerLogs())
	}
}
