package input

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/gorun/gorun/internal/jobs"
)

// writeFile writes data to a file of t's temporary directory and returns its path.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestJSONStreamTasksAsWholeFile: a streamed file yields the very tasks the whole
// file resolves to, defaults and the run-wide settings included.
func TestJSONStreamTasksAsWholeFile(t *testing.T) {
	path := writeFile(t, "f.json", "\ufeff"+`{"version": 1, "workers": 3, "rate": "2/s",
	  "defaults": {"timeout": "30s", "retries": 2, "env": {"A": "1", "S": {"from_worker": "X"}}},
	  "tasks": [
	    {"id": "a", "run": "echo a"},
	    {"cmd": ["ls", "-l"], "env": {"B": "2"}},
	    {"id": "c", "run": "x", "shell": "always", "retry_on": [3, "timeout"], "dir": "/tmp"}
	]}`+"\n")
	s := jobs.Settings{}
	src, ok, err := OpenJSONStream(path, s)
	if err != nil || !ok {
		t.Fatalf("got %v, %v; want the file streamed", ok, err)
	}
	defer src.Close()
	if *src.Workers() != 3 || src.Rate() == nil || src.Len() != 3 {
		t.Errorf("workers %v, rate %v, len %d; want 3, 2/s, 3", src.Workers(), src.Rate(), src.Len())
	}
	got, err := drain(t, src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.Tasks(s); !reflect.DeepEqual(got, want) {
		t.Errorf("streamed\n%+v\nwhole\n%+v", got, want)
	}
}

// TestJSONStreamOnlyWhatNeedsNotTheWholeFile: files whose tasks need the whole file
// first, or that are not plain JSON, are not streamed (ReadFile reads them whole).
func TestJSONStreamOnlyWhatNeedsNotTheWholeFile(t *testing.T) {
	for _, doc := range []string{
		`{"tasks": [{"id": "a", "run": "x"}, {"run": "y", "needs": ["a"]}]}`,
		`{"tasks": [{"run": "x", "priority": 2}]}`,
		`{"tasks": [{"run": "x", "estimate": "1m"}]}`,
		`{"tasks": [{"id": "needs", "run": "x"}]}`,                 // cautious: the word anywhere
		`{"tasks": [{"run": "x"}], "defaults": {"timeout": "1s"}}`, // a setting after the tasks
		`{"limits": {"db": {"concurrency": 1}}, "tasks": [{"run": "x", "limits": ["db"]}]}`,
		`{"tasks": [{"run": "x",}]}`,      // YAML takes it, JSON does not
		`{"tasks": [{"run": "x"}]} # end`, // a comment
		"version: 1\ntasks:\n  - run: x\n",
		`{"tasks": [{"run": "x", "run": "y"}]}`,
		`{"tasks": [{"run": "x"}]}]}`,
		`{"version": 2, "tasks": [{"run": "x"}]}`,
	} {
		src, ok, err := OpenJSONStream(writeFile(t, "f.json", doc), jobs.Settings{})
		if ok || err != nil {
			src.Close()
			t.Errorf("%s: streamed (%v), want it read whole", doc, err)
		}
	}
	if _, _, err := OpenJSONStream(filepath.Join(t.TempDir(), "none.json"), jobs.Settings{}); err == nil {
		t.Error("a missing file: no error")
	}
}

// TestJSONStreamErrorsAsWholeFile: a bad task ends the stream after the tasks before
// it, with the error the whole-file check gives, at the same file, line and column.
func TestJSONStreamErrorsAsWholeFile(t *testing.T) {
	for _, bad := range []string{
		`{"id": "c", "run": "x", "timeout": "soon"}`,
		`{"id": "a", "run": "x"}`,
		`{"id": "c", "run": "x", "bogus": 1}`,
		`{"id": "c", "run": "x", "timout": "1s"}`,
		`{"id": "c", "limits": ["nope"], "run": "x"}`,
		`{"id": "c", "run": null}`,
		`{"id": " ", "run": "x"}`,
		`{"id": "c", "cmd": []}`,
		`{"id": "c", "run": "x", "cmd": ["y"]}`,
		`{"id": "c", "run": "x", "env": {"A=B": "v"}}`,
		`{"id": "c", "run": "x", "retries": -1}`,
		`{"id": "c", "run": "x", "retry_on": ["sometimes"]}`,
		`{"run": "x"}, {"id": "task-3", "run": "y"}`,
	} {
		doc := "{\"version\": 1,\n \"tasks\": [\n  {\"id\": \"a\", \"cmd\": [\"true\"]},\n  {\"id\": \"b\", \"run\": \"é\"},\n  " + bad + "\n]}\n"
		path := writeFile(t, "f.json", doc)
		_, want := ReadFile(path)
		if want == nil {
			t.Fatalf("%s: the whole file reads", bad)
		}
		src, ok, err := OpenJSONStream(path, jobs.Settings{})
		if !ok || err != nil {
			t.Fatalf("%s: not streamed (%v)", bad, err)
		}
		tasks, err := drain(t, src)
		src.Close()
		if len(tasks) < 2 || tasks[0].ID != "a" || tasks[1].ID != "b" {
			t.Errorf("%s: got %d tasks before the error, want a and b", bad, len(tasks))
		}
		if err == nil || err.Error() != want.Error() {
			t.Errorf("%s:\nstreamed %v\nwhole    %v", bad, err, want)
		}
		var ie *jobs.InputError
		if !errors.As(err, &ie) {
			t.Errorf("%s: %T, want an *InputError", bad, err)
		}
	}
}

// TestJSONStreamClose: a closed stream yields nothing more.
func TestJSONStreamClose(t *testing.T) {
	src, ok, err := OpenJSONStream(writeFile(t, "f.json", `{"tasks": [{"run": "a"}, {"run": "b"}]}`), jobs.Settings{})
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := src.Next(); err != nil {
		t.Fatal(err)
	}
	src.Close()
	if _, err := src.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after Close: %v, want io.EOF", err)
	}
}

// TestTaskFileBytesPerTask: a task file's tasks wait in memory in at most 300 bytes
// each beyond their own text (id and command), whatever the file's defaults hold:
// the defaults and their environment are shared, and the reader's syntax is gone once
// the file is read.
func TestTaskFileBytesPerTask(t *testing.T) {
	const n = 20_000
	var b strings.Builder
	b.WriteString(`{"version": 1, "defaults": {"timeout": "1m", "env": {"HOME_DIR": "/srv/x", "MODE": "batch", "TOKEN": {"from_worker": "T"}}}, "tasks": [`)
	text := 0
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		id, run := "t"+strconv.Itoa(i), "echo "+strconv.Itoa(i)
		if i%2 == 0 {
			b.WriteString(`{"id": "` + id + `", "run": "` + run + `"}`)
		} else {
			b.WriteString(`{"id": "` + id + `", "cmd": ["echo", "` + strconv.Itoa(i) + `"]}`)
		}
		text += len(id) + len(run)
	}
	b.WriteString("]}\n")
	path := writeFile(t, "big.json", b.String())

	for _, read := range []struct {
		name string
		load func() any
	}{
		{"file", func() any {
			f, err := ReadFile(path)
			if err != nil || f.Len() != n {
				t.Fatalf("got %v, want %d tasks", err, n)
			}
			return f
		}},
		{"YAML reader", func() any {
			f, err := parseYAMLFile(path, []byte(b.String()))
			if err != nil || f.Len() != n {
				t.Fatalf("got %v, want %d tasks", err, n)
			}
			return f
		}},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f := read.load()
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := (int64(after.HeapAlloc) - int64(before.HeapAlloc) - int64(text)) / n
		t.Logf("%s: %d bytes a task beyond its text (%d bytes of text a task)", read.name, per, text/n)
		if per > 300 {
			t.Errorf("%s: %d bytes a task beyond its text, want at most 300", read.name, per)
		}
		runtime.KeepAlive(f)
	}
}

// TestDuplicateIDs: the first task that repeats an id is refused, naming the task
// that used it first, whether the ids are given or the default task-N.
func TestDuplicateIDs(t *testing.T) {
	for _, tt := range []struct {
		ids  []string // "" gives no id
		want string   // "" for none
	}{
		{[]string{"a", "b", "c"}, ""},
		{[]string{"", "", ""}, ""},
		{[]string{"b", "a", "b", "a"}, `task 3: id: duplicate id "b" (first used by task 1 at line 1)`},
		{[]string{"a", "b", "a", "b", "b"}, `task 3: id: duplicate id "a" (first used by task 1 at line 1)`},
		{[]string{"x", "b", "c", "b", "x"}, `task 4: id: duplicate id "b" (first used by task 2 at line 2)`},
		{[]string{"task-2", ""}, `task 2: id: duplicate id "task-2" (first used by task 1 at line 1)`},
		{[]string{"", "task-1"}, `task 2: id: duplicate id "task-1" (first used by task 1 at line 1)`},
		{[]string{"c", "", "task-2", "c"}, `task 3: id: duplicate id "task-2" (first used by task 2 at line 2)`},
		{[]string{"task-02", "", "task-3", "task+3"}, ""},
		{[]string{"task-9", ""}, ""},
	} {
		var b strings.Builder
		b.WriteString("[")
		for i, id := range tt.ids {
			if i > 0 {
				b.WriteString(",\n")
			}
			if id == "" {
				b.WriteString(`{"run": "x"}`)
			} else {
				b.WriteString(`{"id": "` + id + `", "run": "x"}`)
			}
		}
		b.WriteString("]")
		doc := `{"tasks": ` + b.String() + "}"
		_, err := Parse("f.json", []byte(doc))
		got := ""
		var ie *jobs.InputError
		if errors.As(err, &ie) {
			got = ie.Key + ": " + ie.Msg
		} else if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%v: got %q, want %q", tt.ids, got, tt.want)
		}
	}
}

// TestSpecListKeepsWhatATaskGives: a task kept in the compact form keeps every key it
// gives beside its id and command: labels and resources too, not only needs and
// settings.
func TestSpecListKeepsWhatATaskGives(t *testing.T) {
	cpu, mem, gpu := int64(500), uint64(1<<30), 1
	for _, sp := range []jobs.Spec{
		{ID: "a", Run: "x", Labels: map[string]string{"host": "db1"}},
		{ID: "b", Run: "x", Defaults: jobs.Defaults{MilliCPU: &cpu}},
		{ID: "c", Run: "x", Defaults: jobs.Defaults{Memory: &mem}},
		{ID: "d", Run: "x", Defaults: jobs.Defaults{GPU: &gpu}},
		{ID: "e", Run: "x", Defaults: jobs.Defaults{On: map[string]string{"gpu": "a100"}}},
	} {
		var l specList
		l.add(&sp)
		if got := l.Spec(0); !reflect.DeepEqual(got, sp) {
			t.Errorf("kept %+v, want %+v", got, sp)
		}
	}
}
