package input

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sameAsYAML fails when the JSON reader takes data and the YAML reader does not read
// it to the very same File.
func sameAsYAML(t *testing.T, data []byte) {
	t.Helper()
	fast, ok := parseJSON("f.json", bytes.NewReader(data))
	if !ok {
		return
	}
	slow, err := parseYAMLFile("f.json", data)
	if err != nil {
		t.Errorf("the JSON reader takes %q, the YAML reader refuses it: %v", data, err)
		return
	}
	if !sameFile(fast, slow) {
		t.Errorf("%q: the JSON reader gives\n%+v\nthe YAML reader\n%+v", data, fast, slow)
	}
}

// TestJSONFileReadsAsYAML: task files of plain JSON are read by the JSON reader, to
// the same File as the YAML reader's; anything the JSON reader does not take exactly
// so goes to the YAML reader, which names where a problem is.
func TestJSONFileReadsAsYAML(t *testing.T) {
	taken := []string{
		`{"tasks": [{"run": "echo hi"}]}`,
		"\ufeff" + `{"version": 1, "tasks": [{"run": "echo hi"}]}`,
		` {"version": 1, "workers": 4, "rate": "2/s", "tasks": [{"id": "a", "run": "echo \u00e9 \"q\" \\ \n"}, {"cmd": ["ls", "-l", ""]}]}` + "\n",
		`{"version": 1, "defaults": {"timeout": "30s", "retries": 2, "retry_delay": "1s", "shell": "/bin/bash", "dir": "/tmp",
		  "env": {"A": "1", "B": "", "S": {"from_worker": "SECRET"}}},
		  "tasks": [{"id": "a", "run": "x", "timeout": "0", "retries": 0, "env": {"C": "3"}},
		            {"id": "b", "cmd": ["y"], "needs": ["a"], "shell": "always", "env": {"A": {"from_worker": "Z"}}},
		            {"run": "z", "needs": ["a", "b", "a"]}]}`,
		`{"tasks": []}`,
	}
	for _, doc := range taken {
		if _, ok := parseJSON("f.json", strings.NewReader(doc)); !ok {
			t.Errorf("%q: the JSON reader gives up, want it read", doc)
		}
		sameAsYAML(t, []byte(doc))
	}
	// Each goes to the YAML reader: not JSON, not exactly as YAML reads it, or bad.
	refused := []string{
		"version: 1\ntasks:\n  - run: x\n",
		`{"tasks": [{"run": "x",}]}`,
		`{"tasks": [{"run": "x"}]} # comment`,
		`{"tasks": [{"run": "x"}]} {"tasks": []}`,
		`{"tasks": [{"Run": "x"}]}`,
		`{"tasks": [{"run": "x", "run": "y"}]}`,
		`{"tasks": [{"run": null}]}`,
		`{"tasks": [{"run": "x", "retries": 1.0}]}`,
		`{"tasks": [{"run": "x", "retries": 1e2}]}`,
		`{"tasks": [{"run": "x", "env": {"A": 1}}]}`,
		`{"tasks": [{"run": "x", "env": {"A": {"from_worker": "B", "x": 1}}}]}`,
		`{"tasks": [{"run": "x", "timeout": 30}]}`,
		`{"tasks": [{"run": "x", "timeout": "soon"}]}`,
		`{"tasks": [{"run": "x", "bogus": 1}]}`,
		`{"defaults": {"run": "x"}, "tasks": []}`,
		`{"tasks": [{"id": "a", "run": "x"}, {"id": "a", "run": "y"}]}`,
		`{"tasks": [{"run": "x", "needs": ["nope"]}]}`,
		`{"version": 2, "tasks": []}`,
		`{"tasks": [{"run": "` + "\xff" + `"}]}`,
		`{"version": 1}`,
	}
	for _, doc := range refused {
		if _, ok := parseJSON("f.json", strings.NewReader(doc)); ok {
			t.Errorf("%q: the JSON reader takes it, want it left to the YAML reader", doc)
		}
	}
	// The errors are the YAML reader's, with their positions.
	_, err := Parse("f.json", []byte("{\"version\": 1,\n \"tasks\": [\n  {\"run\": \"x\", \"timout\": \"1s\"}]}\n"))
	if err == nil || err.Error() != `f.json:3:16: unknown key "timout"` {
		t.Errorf("got %v, want f.json:3:16: unknown key \"timout\"", err)
	}
}

// TestJSONFileOfManyTasks: a JSON task file of 200,000 tasks is read fast (the YAML
// reader takes about ten times as long, and memory to match).
func TestJSONFileOfManyTasks(t *testing.T) {
	const n = 200_000
	var b strings.Builder
	b.WriteString(`{"version": 1, "tasks": [`)
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		b.WriteString(`{"id": "t` + strconv.Itoa(i) + `", "run": "echo ` + strconv.Itoa(i) + `"}`)
	}
	b.WriteString("]}\n")
	start := time.Now()
	f, err := Parse("big.json", []byte(b.String()))
	took := time.Since(start)
	if err != nil || f.Len() != n || f.Spec(n-1).Run != "echo "+strconv.Itoa(n-1) {
		t.Fatalf("got %v, want %d tasks", err, n)
	}
	t.Logf("%d tasks in %v", n, took)
	if took > 20*time.Second { // about 0.5 s on a quiet machine; generous for a loaded one
		t.Errorf("reading %d tasks took %v", n, took)
	}
}
