package input

import (
	"io"
	"maps"
	"strings"
	"testing"

	"github.com/gorun/gorun/internal/jobs"
)

// TestResourcesResolve: each resource key on its own, a task's beating the
// defaults'; labels merge; JSON takes the same keys.
func TestResourcesResolve(t *testing.T) {
	for name, text := range map[string]string{
		"r.yaml": `defaults: {resources: {cpu: 2, memory: 1GiB}, on: {zone: eu}}
tasks:
  - {id: a, run: x, resources: {cpu: 0.5, gpu: 1}, on: {gpu: a100}}
  - {id: b, run: x, resources: {memory: 1048576}}
  - {id: c, run: x}
`,
		"r.json": `{"defaults": {"resources": {"cpu": 2, "memory": "1GiB"}, "on": {"zone": "eu"}}, "tasks": [
 {"id": "a", "run": "x", "resources": {"cpu": 0.5, "gpu": 1}, "on": {"gpu": "a100"}},
 {"id": "b", "run": "x", "resources": {"memory": 1048576}},
 {"id": "c", "run": "x"}]}`,
	} {
		f, err := Parse(name, []byte(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		tasks := f.Tasks(jobs.Settings{})
		want := []jobs.Resources{{MilliCPU: 500, Memory: 1 << 30, GPU: 1}, {MilliCPU: 2000, Memory: 1 << 20}, {MilliCPU: 2000, Memory: 1 << 30}}
		for i, w := range want {
			if tasks[i].Resources != w {
				t.Errorf("%s: %s: got %+v, want %+v", name, tasks[i].ID, tasks[i].Resources, w)
			}
		}
		if !maps.Equal(tasks[0].On, map[string]string{"gpu": "a100", "zone": "eu"}) || !maps.Equal(tasks[2].On, map[string]string{"zone": "eu"}) {
			t.Errorf("%s: labels %v and %v, want the task's added to the defaults'", name, tasks[0].On, tasks[2].On)
		}
		if !f.AsksResources() {
			t.Errorf("%s: AsksResources false", name)
		}
	}
}

// TestResourcesErrors: a bad request is an error at its key, with line and column;
// one that never fits the capacity too, at the task's key or the defaults' it inherits.
func TestResourcesErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"tasks:\n  - {run: x, resources: {cpu: two}}\n", `r.yaml:2:31: task 1: resources.cpu: invalid number of CPUs "two"`},
		{"tasks:\n  - {run: x, resources: {cpu: -1}}\n", `r.yaml:2:31: task 1: resources.cpu: invalid number of CPUs "-1"`},
		{"tasks:\n  - {run: x, resources: {cpu: 0.0001}}\n", `the smallest share is 0.001`},
		{"tasks:\n  - {run: x, resources: {cpu: [1]}}\n", `resources.cpu: want a number of CPUs (2, 0.5), got a list`},
		{"tasks:\n  - {run: x, resources: {memory: 4 GB please}}\n", `r.yaml:2:34: task 1: resources.memory: invalid size "4 GB please"`},
		{"tasks:\n  - {run: x, resources: {gpu: -1}}\n", `r.yaml:2:31: task 1: resources.gpu: must be 0 or more, got -1`},
		{"tasks:\n  - {run: x, resources: {gpus: 1}}\n", `r.yaml:2:26: unknown key "gpus"`},
		{"tasks:\n  - {run: x, on: {gpu: a 100}}\n", `r.yaml:2:24: task 1: on.gpu: invalid value "a 100" of label gpu`},
		{"defaults: {on: {'g p': x}}\ntasks: [{run: x}]\n", `defaults.on.g p: invalid label name "g p"`},
	}
	for _, tt := range tests {
		_, err := Parse("r.yaml", []byte(tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want %s", tt.text, err, tt.want)
		}
	}
	_, err := ReadJSONL("s.jsonl", io.NopCloser(strings.NewReader(`{"run": "x", "resources": {"cpu": 1}}`+"\n")), jobs.Settings{})
	if err == nil || !strings.Contains(err.Error(), "resources and labels are for task files") {
		t.Errorf("JSON Lines task with resources: got %v, want refused", err)
	}

	f, err := Parse("r.yaml", []byte("defaults:\n  resources: {memory: 2GiB}\ntasks:\n  - {id: a, run: x, resources: {cpu: 1}}\n  - {id: b, run: x, resources: {cpu: 3}, on: {gpu: a100}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tasks := f.Tasks(jobs.Settings{})
	c := &jobs.Capacity{MilliCPU: 2000, Memory: 4 << 30}
	for _, tt := range []struct {
		c      jobs.Capacity
		labels bool
		want   string
	}{
		{jobs.Capacity{MilliCPU: 2000, Memory: 4 << 30}, false, `r.yaml:5:38: task "b": resources.cpu: asks for cpu 3, and the run has 2 CPUs (--cpus): it could never start`},
		{jobs.Capacity{MilliCPU: 4000, Memory: 1 << 30}, false, `r.yaml:2:23: task "a": defaults.resources.memory: asks for memory 2GiB, and the run has 1GiB of memory (--memory)`},
		{jobs.Capacity{MilliCPU: 4000, Memory: 4 << 30}, true, `r.yaml:5:52: task "b": on.gpu: needs label gpu=a100, and the run's labels are none (--label)`},
		{jobs.Capacity{MilliCPU: 4000, Memory: 4 << 30}, false, ""},
		{jobs.Capacity{MilliCPU: 4000, Memory: 4 << 30, Labels: map[string]string{"gpu": "a100", "x": "y"}}, true, ""},
	} {
		*c = tt.c
		err := f.CheckCapacity(tasks, c, tt.labels)
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("capacity %+v: got %v, want %q", tt.c, err, tt.want)
		}
	}
	// A matrix's combinations come before the task after it: each task is checked
	// against its own spec.
	f, err = Parse("m.yaml", []byte("tasks:\n  - {id: a, matrix: {n: [1, 2, 3]}, run: 'echo {n}', resources: {cpu: 1}}\n  - {id: b, run: x, resources: {cpu: 3}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = f.CheckCapacity(f.Tasks(jobs.Settings{}), &jobs.Capacity{MilliCPU: 2000}, false)
	if want := `m.yaml:3:38: task "b": resources.cpu: asks for cpu 3`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a matrix before a task that never fits: got %v, want %q", err, want)
	}
}
