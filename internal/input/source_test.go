package input

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/gorun/gorun/internal/jobs"
)

func drain(t *testing.T, src jobs.Source) ([]jobs.Task, error) {
	t.Helper()
	var tasks []jobs.Task
	for {
		task, err := src.Next()
		if errors.Is(err, io.EOF) {
			return tasks, nil
		}
		if err != nil {
			return tasks, err
		}
		tasks = append(tasks, task)
	}
}

func TestLineSource(t *testing.T) {
	in := "echo a\r\n\n   \necho b\nlast without newline"
	tasks, err := drain(t, NewLineSource("stdin", io.NopCloser(strings.NewReader(in)), LineOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, task := range tasks {
		got = append(got, task.ID+"="+task.Run)
	}
	want := "task-1=echo a|task-2=echo b|task-3=last without newline"
	if strings.Join(got, "|") != want {
		t.Errorf("got %q, want %q", strings.Join(got, "|"), want)
	}
}

func TestLineSourceNullAndTemplate(t *testing.T) {
	tmpl, err := NewTemplate([]string{"cat", "{}"}, jobs.DefaultShell)
	if err != nil {
		t.Fatal(err)
	}
	in := "a file\nwith newline\x00\x00second\x00"
	tasks, err := drain(t, NewLineSource("stdin", io.NopCloser(strings.NewReader(in)), LineOptions{Null: true, Template: tmpl}))
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 {
		t.Fatalf("got %d tasks, want 2 (the empty item skipped)", len(tasks))
	}
	if got := tasks[0].Args(1); len(got) != 2 || got[1] != "a file\nwith newline" {
		t.Errorf("got %q, want the item whole, newline included", got)
	}
	if got := tasks[1].Args(2); got[1] != "second" || tasks[1].Index != 2 {
		t.Errorf("got %q index %d, want second, 2", got, tasks[1].Index)
	}
}

func TestJSONLSource(t *testing.T) {
	in := `{"id": "a", "run": "echo a", "timeout": "2s"}` + "\n\n" + `{"cmd": ["ls", "-l"]}` + "\n"
	tasks, err := drain(t, NewJSONLSource("t.jsonl", io.NopCloser(strings.NewReader(in)), jobs.Settings{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 || tasks[0].ID != "a" || tasks[0].Timeout.Seconds() != 2 || tasks[1].ID != "task-2" || tasks[1].Argv[1] != "-l" {
		t.Errorf("got %+v", tasks)
	}
}

func TestJSONLErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"run": "a"}` + "\n" + `{"run": "b", "bogus": 1}`, `t.jsonl:2:14: unknown key "bogus"`},
		{`{"run": "a"}` + "\n\n" + `{"run": "b"`, `t.jsonl:3:`},
		{`{"run": "a", "timeout": "soon"}`, `t.jsonl:1:25: task 1: timeout: invalid duration "soon"`},
		{`{"id": "x", "run": "a"}` + "\n" + `{"id": "x", "run": "b"}`, `t.jsonl:2:8: id: duplicate id "x" (first used at line 1)`},
		{`{"timeout": "1s"}`, `t.jsonl:1:1: task 1: run: missing`},
		{`{"run": "a"}` + "\n" + `# a comment`, `t.jsonl:2:1: want one task object on the line`},
		{`{"run": "a"}` + "\n" + `{"run": "b"} --- {"run": "c"}`, `t.jsonl:2:`},
		{`{"run": "a", "env": ` + strings.Repeat("[", 100), `t.jsonl:1:84: nested deeper than 64 levels`},
	}
	for _, tt := range tests {
		tasks, err := ReadJSONL("t.jsonl", io.NopCloser(strings.NewReader(tt.in)), jobs.Settings{})
		var ie *jobs.InputError
		if !errors.As(err, &ie) || !strings.HasPrefix(err.Error(), tt.want) || ie.Line < 1 || ie.Col < 1 {
			t.Errorf("input %q:\n got %v\nwant prefix %q", tt.in, err, tt.want)
		}
		if tasks != nil {
			t.Errorf("input %q: got %d tasks with the error, want none", tt.in, len(tasks))
		}
	}
}

// TestJSONLStreamInvalid: on a stream, a bad line becomes an invalid task that says
// where and why, and the lines after it go on.
func TestJSONLStreamInvalid(t *testing.T) {
	in := "\ufeff" + `{"id": "a", "run": "echo a"}` + "\n" + `{"run": "echo b", "timeuot": "1s"}` + "\n" +
		`{"id": "a", "run": "echo again"}` + "\n" + `{"run": "echo d"}` + "\n"
	tasks, err := drain(t, NewJSONLSource("stdin", io.NopCloser(strings.NewReader(in)), jobs.Settings{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 4 {
		t.Fatalf("got %d tasks, want 4", len(tasks))
	}
	if tasks[0].Invalid != nil || tasks[0].ID != "a" || tasks[3].Invalid != nil || tasks[3].Run != "echo d" || tasks[3].Index != 4 {
		t.Errorf("got %+v and %+v, want tasks a and task-4 valid", tasks[0], tasks[3])
	}
	for i, want := range map[int]string{
		1: `stdin:2:19: unknown key "timeuot"`,
		2: `stdin:3:8: id: duplicate id "a" (first used at line 1)`,
	} {
		bad := tasks[i]
		if bad.Invalid == nil || bad.Invalid.Error() != want || bad.Line != i+1 || bad.ID != jobs.DefaultID(i+1) {
			t.Errorf("task %d: got %+v (%v), want invalid with %q", i+1, bad, bad.Invalid, want)
		}
		r := jobs.InvalidResult(&bad)
		if r.Status != jobs.Invalid || r.Status.OK() || r.Error != want || r.Attempts != 0 || r.Command == "" {
			t.Errorf("task %d: got result %+v, want status invalid with the error and the line", i+1, r)
		}
	}
}

func TestLineSourceByteOrderMark(t *testing.T) {
	tasks, err := drain(t, NewLineSource("stdin", io.NopCloser(strings.NewReader("\ufeffecho a\n\ufeffecho b\n")), LineOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 || tasks[0].Run != "echo a" || tasks[1].Run != "\ufeffecho b" {
		t.Errorf("got %+v, want the mark dropped at the start of the stream only", tasks)
	}
}

// TestJSONLPlainJSONLines: a line of plain JSON is read by the JSON reader, and gives
// the task the YAML reader gives; YAML's other forms, unknown keys and bad values go
// to the YAML reader, whose errors they get (TestJSONLErrors, FuzzLoad).
func TestJSONLPlainJSONLines(t *testing.T) {
	for line, plain := range map[string]bool{
		`{"cmd": ["/bin/true"]}`: true,
		`{"id": "a", "run": "echo a", "timeout": "2s", "retries": 2, "env": {"X": "1"}}`: true,
		`{"run": "a", "labels": {"host": "db1"}}`:                                        false, // a key the JSON reader leaves to the YAML reader
		`{"run": "a"}` + "\r":                       true,
		`{run: a}`:                                  false, // YAML's flow mapping
		`{"run": "a", "bogus": 1}`:                  false,
		`{"run": "a", "timeout": "soon"}`:           false,
		`{"run": "a"} {"run": "b"}`:                 false,
		`{"run": "a", "run": "b"}`:                  false,
		`{"run": "a", "matrix": {"x": ["1", "2"]}}`: false,
		`["run"]`: false,
	} {
		j := NewJSONLSource("t.jsonl", io.NopCloser(strings.NewReader("")), jobs.Settings{})
		j.index = 1
		sp, _, ok := j.plainJSON([]byte(line))
		if ok != plain {
			t.Errorf("%q: read as plain JSON %v, want %v", line, ok, plain)
			continue
		}
		if !ok {
			continue
		}
		want, _, err := j.parseYAML([]byte(line))
		if err != nil || !reflect.DeepEqual(sp, want) {
			t.Errorf("%q: JSON reader %+v, YAML reader %+v (%v)", line, sp, want, err)
		}
	}
}

func BenchmarkJSONLLine(b *testing.B) {
	line := []byte(`{"cmd": ["/bin/true"]}`)
	j := NewJSONLSource("t.jsonl", io.NopCloser(strings.NewReader("")), jobs.Settings{})
	j.index = 1
	for _, way := range []struct {
		name string
		read func() error
	}{
		{"json", func() error { _, _, err := j.parse(line); return err }},
		{"yaml", func() error { _, _, err := j.parseYAML(line); return err }},
	} {
		b.Run(way.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := way.read(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
