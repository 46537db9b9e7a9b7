package input

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/gorun/gorun/internal/jobs"
)

// badInputs are inputs users found to crash gorun, to cost it gigabytes, or to give
// errors without a position; the fuzzer starts from them and from testdata/.
var badInputs = []string{
	"version: 1\ntasks:\n  - run: echo hi\n---\n",       // a trailing empty document: a nil pointer once
	"version: 1\ntasks:\n  - run: echo hi\n---\nx: 1\n", // a second document
	"",                   // an empty file
	"# only a comment\n", // nothing but a comment
	"---\n---\n",         // empty documents only
	"\ufeffversion: 1\ntasks:\n  - run: echo hi\n",       // a byte-order mark
	"\ufeff{\"run\": \"echo hi\"}\n",                     // a byte-order mark on JSON Lines
	strings.Repeat("[", 70) + strings.Repeat("]", 70),    // flow nesting
	strings.Repeat("{a: ", 70) + strings.Repeat("}", 70), // flow mappings
	strings.Repeat("- ", 70) + "x\n",                     // block nesting on a line
	"tasks:\n" + strings.Repeat("  ", 70) + "- x\n",      // deep indentation
	"{\"run\": \"a\"}\n{\"run\": \"b\", \"bogus\": 1}\n", // a bad JSON Lines line in the middle
	"{\"id\": \"x\", \"run\": \"a\"}\n{\"id\": \"x\", \"run\": \"b\"}\n",
	"{\"run\": \"a\"} --- {\"run\": \"b\"}\n",
	"version: 1\ntasks:\n  - run: x\n    run: y\n", // a duplicate key
	"version: 1\ntasks:\n\t- id: a\n",              // a tab
	"a: &a [x]\nb: *a\n",                           // anchors and aliases
	"version: 1\ntasks: [{run: \"a\", needs: [b]}, {id: b, run: c, needs: [task-1]}]\n",
	`{"version": 1, "defaults": {"env": {"A": "1", "S": {"from_worker": "X"}}}, "tasks": [{"id": "a", "cmd": ["x", "y"], "needs": []}]}`,
	`{"tasks": [{"id": "m", "matrix": {"y": [1, 2.50, true], "x": ["a"]}, "run": "echo {x} {y}"}, {"run": "z", "needs": ["m", "m[y=1,x=a]"]}]}`,
	"version: 1\ntasks:\n  - matrix: {x: [a, [b]], y: []}\n    cmd: [echo, '{x}{z}']\n    env: {V: '{x}'}\n",
	"defaults: {resources: {memory: 1GiB}, on: {zone: eu}}\ntasks:\n  - {run: x, resources: {cpu: 0.5, gpu: 2}, on: {gpu: a100}}\n",
	"tasks:\n  - {run: x, resources: {cpu: 1e400, memory: -3}}\n",
}

var positioned = regexp.MustCompile(`^(f\.yaml|f\.jsonl|stdin):[1-9][0-9]*:[1-9][0-9]*: [^\n]*$`)

// checkPositioned fails unless err is nil or an *InputError naming the file, a line
// and a column, on one line.
func checkPositioned(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ie *jobs.InputError
	if !errors.As(err, &ie) || ie.Line < 1 || ie.Col < 1 || !positioned.MatchString(err.Error()) {
		t.Errorf("error %q (%T) lacks FILE:LINE:COL or is not one line", err, err)
	}
}

// FuzzLoad reads arbitrary bytes as a task file, a JSON Lines file and a JSON Lines
// stream: it must never panic, every error must name file, line and column, and the
// byte scan of the nesting limit must never refuse what the parser reads.
// make fuzz runs it for a bounded time; crashers go to testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range badInputs {
		f.Add([]byte(s))
	}
	for _, c := range itemCases {
		f.Add([]byte(c.doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() { defer close(done); fuzzLoad(t, data) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second): // a task file's size is bounded here: a slow one is a bug
			t.Fatalf("loading %d bytes took over 2s", len(data))
		}
	})
}

// fuzzLoad is FuzzLoad's body.
func fuzzLoad(t *testing.T, data []byte) {
	{ // t.Errorf only: this runs on a goroutine of its own
		f, err := Parse("f.yaml", data)
		checkPositioned(t, err)
		if err == nil { // a task that never fits an empty capacity is refused at its key
			checkPositioned(t, f.CheckCapacity(f.Tasks(jobs.Settings{}), &jobs.Capacity{}, true))
		}
		sameAsYAML(t, data)
		sameAsLibrary(t, data)

		tasks, err := ReadJSONL("f.jsonl", io.NopCloser(bytes.NewReader(data)), jobs.Settings{})
		checkPositioned(t, err)
		if err != nil && tasks != nil {
			t.Errorf("ReadJSONL returned %d tasks with its error, want none", len(tasks))
		}

		sameJSONLReaders(t, data)

		src := NewJSONLSource("stdin", io.NopCloser(bytes.NewReader(data)), jobs.Settings{})
		for {
			task, err := src.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("a stream stopped on %v, want bad lines as invalid tasks", err)
				break
			}
			if task.Invalid != nil {
				checkPositioned(t, task.Invalid)
				if r := jobs.InvalidResult(&task); r.Status != jobs.Invalid || r.Status.OK() {
					t.Errorf("invalid task's result: %+v", r)
				}
			}
		}

		// The byte scan may count nesting in input the parser rejects anyway, but it
		// must never refuse what the parser reads within the limit.
		if line, _ := prescanDepth(trimBOM(data)); line > 0 {
			tokens := lexer.Tokenize(string(trimBOM(data)))
			if tokenDepth(tokens) == nil {
				if _, err := parser.Parse(tokens, 0); err == nil {
					t.Errorf("the byte scan refuses line %d, but the parser reads it within %d levels", line, MaxDepth)
				}
			}
		}
	}
}

// sameAsLibrary fails when the YAML reader's quick ways (parseItems, decodeFile) read
// data to anything but what the YAML library reads it to, error included.
func sameAsLibrary(t *testing.T, data []byte) {
	t.Helper()
	fast, ferr := parseYAMLFile("f.yaml", data)
	slow, serr := parseYAMLFileWith(&fileParser{name: "f.yaml", slow: true}, data)
	// Of several unknown keys in a mapping, the library names one at random (it
	// walks a map): any one of them will do.
	unknown := ferr != nil && serr != nil && strings.Contains(ferr.Error(), ": unknown key ") && strings.Contains(serr.Error(), ": unknown key ")
	if (ferr == nil) != (serr == nil) || (ferr != nil && !unknown && ferr.Error() != serr.Error()) {
		t.Errorf("%q: the quick way gives error %v, the library %v", data, ferr, serr)
		return
	}
	if !sameFile(fast, slow) {
		t.Errorf("%q: the quick way gives\n%+v\nthe library\n%+v", data, fast, slow)
	}
	if fast != nil && slow != nil { // a task that never fits is refused at the same key
		fc := fast.CheckCapacity(fast.Tasks(jobs.Settings{}), &jobs.Capacity{}, true)
		sc := slow.CheckCapacity(slow.Tasks(jobs.Settings{}), &jobs.Capacity{}, true)
		if fmt.Sprint(fc) != fmt.Sprint(sc) {
			t.Errorf("%q: the quick way's capacity error is %v, the library's %v", data, fc, sc)
		}
	}
	// The item-by-item reader, when it takes a file, reads it as the library does;
	// it takes no file the library refuses.
	if items, ok := (&fileParser{name: "f.yaml"}).parseItems(data); ok {
		if serr != nil {
			t.Errorf("%q: read item by item, but the library gives %v", data, serr)
		} else if !sameFile(items, slow) {
			t.Errorf("%q: item by item gives\n%+v\nthe library\n%+v", data, items, slow)
		}
	}
}

// sameFile reports whether a and b are the same File, read by two readers: each
// keeps its own parser for CheckCapacity, or neither does.
func sameFile(a, b *File) bool {
	if a == nil || b == nil {
		return a == b
	}
	ac, bc := *a, *b
	if (ac.parser == nil) != (bc.parser == nil) {
		return false
	}
	ac.parser, bc.parser = nil, nil
	return reflect.DeepEqual(&ac, &bc)
}

// TestYAMLQuickWayAsLibrary: the YAML reader's quick way reads tasks exactly as the
// YAML library does, and leaves it what it does not read so.
func TestYAMLQuickWayAsLibrary(t *testing.T) {
	for _, doc := range []string{
		"version: 1\ntasks:\n  - id: a\n    run: echo a\n  - cmd: [ls, -l]\n    timeout: 5s\n    retries: 2\n",
		"tasks:\n  - run: x\n    cmd: []\n",
		"tasks:\n  - cmd: []\n",
		"tasks:\n  -\n  - run: x\n",
		"tasks: [{run: a}, {run: b, needs: [task-1]}]\n",
		"tasks:\n  - run: 5\n",
		"tasks:\n  - run: 'single ''q'''\n  - run: \"double \\t\"\n",
		"tasks:\n  - run: |\n      echo a\n      echo b\n",
		"tasks:\n  - &t {run: a}\n  - *t\n",
		"base: &b {timeout: 1s}\ntasks:\n  - <<: *b\n    run: a\n",
		"tasks:\n  - run: a\n    run: b\n",
		"tasks:\n  - run: !!str 5\n",
		"tasks:\n  - run: a\n    priority: 18446744073709551615\n",
		"tasks:\n  - run: a\n    retries: 1.0\n",
		"tasks:\n  - run: a\n    env: {A: b}\n",
		"tasks:\n  - run: a\n    timout: 1s\ndefaults:\n  bogus: 1\n",
		"defaults: {timeout: soon}\ntasks:\n  - run: a\n    retries: x\n",
		"tasks:\n  # a comment\n  - run: a # another\n    id: x\n",
		"tasks: []\n",
		"tasks:\n",
		"tasks:\n  - run: a\ntasks:\n  - run: b\n",
		"tasks:\n  - run: ~\n",
		"tasks:\n  - id: 7\n    run: a\n",
		"tasks:\n  - run: a\n    limits: [x]\nlimits: {x: {concurrency: 1}}\n",
		"tasks:\n  - run: a\n    needs: []\n",
		"tasks:\n  - run: a\n    retry_on: [1, timeout]\n",
		"tasks:\n  - run: a\n    estimate: 2m\n    priority: -3\n",
		"tasks:\n  - {run: a, shell: always, dir: /tmp, retry_delay: 2s}\n",
	} {
		sameAsLibrary(t, []byte(doc))
	}
}

// sameJSONLReaders: every line of data that the JSON reader takes as a task is the
// task the YAML reader makes of it, without an error.
func sameJSONLReaders(t *testing.T, data []byte) {
	j := NewJSONLSource("f.jsonl", io.NopCloser(bytes.NewReader(nil)), jobs.Settings{})
	for _, line := range bytes.Split(data, []byte("\n")) {
		j.index++
		sp, _, ok := j.plainJSON(line)
		if !ok {
			continue
		}
		want, _, err := j.parseYAML(line)
		if err != nil {
			t.Errorf("line %q: the JSON reader takes it, the YAML reader says %v", line, err)
		} else if !reflect.DeepEqual(sp, want) {
			t.Errorf("line %q: the JSON reader reads %+v, the YAML reader %+v", line, sp, want)
		}
	}
}
