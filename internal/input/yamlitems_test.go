package input

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/gorun/gorun/internal/jobs"
)

// itemCases are task files at the edges of what parseItems reads item by item:
// taken says whether it must read them so (else it must leave them to the whole-file
// reader). FuzzLoad starts from them too.
var itemCases = []struct {
	name  string
	doc   string
	taken bool
}{
	{"plain", "version: 1\ntasks:\n  - id: a\n    run: echo a\n  - cmd: [ls, -l]\n    timeout: 5s\n", true},
	{"items at column 1", "tasks:\n- run: a\n- run: b\nversion: 1\n", true},
	{"block scalars", "tasks:\n  - run: |\n      echo a\n      echo \"b\n\n      c'\n  - run: >-\n      folded\n      text\n    id: f\n  - run: |+\n      kept\n\n", true},
	{"a block scalar's content more indented on", "tasks:\n  - id: a\n    run: |\n      a\n        deeper\n      b\n  - run: b\n", true},
	{"a block scalar's content less indented on", "tasks:\n  - id: a\n    run: |\n        deep\n      less\n  - run: b\n", false},
	{"a block scalar's header with a comment", "tasks:\n  - run: | # a script\n      echo a\n", true},
	{"an empty block scalar", "tasks:\n  - run: |\n  - run: b\n", false},
	{"an indentation indicator", "tasks:\n  - run: |2\n      echo a\n", false},
	{"multi-line double-quoted", "tasks:\n  - run: \"echo\n    - run: x\"\n  - run: \"a \\\n    b\"\n", true},
	{"multi-line single-quoted", "tasks:\n  - run: 'it''s\n\n    two'\n  - run: b\n", true},
	{"a quoted scalar over a line at column 1", "tasks:\n  - run: \"a\n- run: b\"\n", true},
	{"a quoted scalar over the next item's line", "tasks:\n  - run: \"a\n  - run: b\"\n  - run: c\n", true},
	{"comments at column 1", "tasks:\n# first\n  - run: a\n# between\n  - run: b # trailing\n# end\nversion: 1\n", true},
	{"a comment after the key", "tasks: # the list\n  - run: a\n", true},
	{"nested lists", "tasks:\n- id: a\n  cmd:\n  - echo\n  - x\n  needs:\n    - b\n- id: b\n  run: y\n", true},
	{"the mapping on the line after the dash", "tasks:\n  -\n    id: a\n    run: x\n  -   \n    run: y\n", true},
	{"CRLF", "version: 1\r\ntasks:\r\n  - id: a\r\n    run: echo a\r\n  - run: |\r\n      b\r\n  - run: \"c\r\n    d\"\r\n", true},
	{"a lone CR", "tasks:\r  - run: a\r  - run: b\n", false},
	{"a lone CR in an item", "tasks:\n  - run: a\r  - run: b\n", false},
	{"flow items", "tasks:\n  - {id: a, run: x, needs: [b]}\n  - {id: b,\n  run: y}\n", true},
	{"a list for a task", "tasks:\n  - {id: a, run: x}\n  - [a, b]\n", false},
	{"defaults and limits after the tasks", "tasks:\n  - run: a\n    limits: [x]\ndefaults:\n  timeout: 1s\n  env: {A: b}\nlimits: {x: {concurrency: 1}}\n", true},
	{"a matrix", "tasks:\n  - matrix: {x: [a, b]}\n    run: echo {x}\n  - run: z\n    needs: [task-1]\n", true},
	{"plain multi-line scalars", "tasks:\n  - run: echo a\n      b c\n    id: x\n  - run: d\n", true},
	{"env and retry_on", "tasks:\n  - run: a\n    env: {A: '1', B: {from_worker: X}}\n    retry_on: [1, timeout]\n", true},
	{"many items", "tasks:\n" + repeatItems(200), true},

	{"a duplicate id", "tasks:\n  - run: a\n  - run: b\n    id: task-1\n", false},
	{"an unknown key", "tasks:\n  - run: a\n    timout: 1s\n", false},
	{"a bad value", "tasks:\n  - run: a\n    retries: x\n", false},
	{"an unknown need", "tasks:\n  - run: a\n    needs: [b]\n", false},
	{"resources", "defaults:\n  resources: {memory: 1GiB}\ntasks:\n  - run: a\n    resources: {cpu: 1}\n  - run: b\n    on: {gpu: a100}\n", true},
	{"an item less indented", "tasks:\n  - run: a\n - run: b\n", false},
	{"an item more indented", "tasks:\n  - run: a\n    - run: b\n", false},
	{"a dash without a space", "tasks:\n  - run: a\n  -- x\n", false},
	{"a flow sequence", "tasks: [{run: a}]\n", false},
	{"no items", "tasks:\nversion: 1\n", false},
	{"a second tasks key", "tasks:\n- run: a\ntasks:\n- run: b\n", false},
	{"a quoted tasks key", "\"tasks\":\n  - run: a\n", false},
	{"anchors", "tasks:\n  - &a {run: x}\n  - *a\n", false},
	{"a merge key", "base: {timeout: 1s}\ntasks:\n  - <<: {run: x}\n", false},
	{"a tag", "tasks:\n  - run: !!str 5\n", false},
	{"a complex key", "tasks:\n  - ? run\n    : a\n", false},
	{"a document's start", "# tasks\n--- # the document\nversion: 1\ntasks:\n  - run: a\n", true},
	{"a document's start after a key", "version: 1\n---\ntasks:\n  - run: a\n", false},
	{"a document's start with content", "--- {version: 1}\ntasks:\n  - run: a\n", false},
	{"a document end", "tasks:\n  - run: a\n...\n", false},
	{"a second document", "tasks:\n  - run: a\n---\ntasks:\n  - run: b\n", false},
	{"a directive", "%YAML 1.2\n---\ntasks:\n  - run: a\n", false},
	{"a tab", "tasks:\n  - run: a\n  \t- run: b\n", false},
	{"an unclosed quote", "tasks:\n  - run: \"a\n", false},
	{"tasks under another key", "x:\n  tasks:\n  - run: a\n", false},
	{"a key after tasks on its line", "tasks:\n  - run: a\n  version: 1\n", false},
}

// repeatItems returns n items of a tasks sequence.
func repeatItems(n int) string {
	s := ""
	for i := range n {
		s += "  - id: t" + string(rune('a'+i%26)) + itoa(i) + "\n    run: echo " + itoa(i) + "\n"
	}
	return s
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// TestYAMLItemsAsLibrary: the item-by-item reader takes the files it must, gives up
// on the others, and reads what it takes exactly as the YAML library does.
func TestYAMLItemsAsLibrary(t *testing.T) {
	for _, c := range itemCases {
		t.Run(c.name, func(t *testing.T) {
			_, ok := (&fileParser{name: "f.yaml"}).parseItems([]byte(c.doc))
			if ok != c.taken {
				t.Errorf("read item by item: %v, want %v", ok, c.taken)
			}
			sameAsLibrary(t, []byte(c.doc))
		})
	}
}

// TestYAMLItemPositions: an item parsed alone has its nodes at their lines and
// columns in the file.
func TestYAMLItemPositions(t *testing.T) {
	data := []byte("version: 1\n# a comment\ntasks:\n  - id: a\n    run: x # ünïcödé\n\n  - id: b\n    run: |\n      y\n  - id: c\n    run: z\n")
	sc, ok := scanItems(data)
	if !ok {
		t.Fatal("scanItems gave up")
	}
	if want := []int{4, 7, 10}; len(sc.lines) != len(want) || sc.lines[0] != 4 || sc.lines[1] != 7 || sc.lines[2] != 10 {
		t.Fatalf("items start on lines %v, want %v", sc.lines, want)
	}
	seq, ok := parseItem(data[sc.items[1]:sc.items[2]], sc.lines[1], sc.indent)
	if !ok || len(seq.Values) != 1 {
		t.Fatalf("parseItem: %v, %v", seq, ok)
	}
	whole, err := parser.ParseBytes(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	path, _ := yaml.PathString("$.tasks[1].run")
	want, err := path.FilterNode(whole.Docs[0].Body)
	if err != nil || want == nil {
		t.Fatalf("$.tasks[1].run: %v", err)
	}
	got := seq.Values[0].(*ast.MappingNode).Values[1].Value
	g, w := got.GetToken().Position, want.GetToken().Position
	if g.Line != 8 || g.Column != 10 || g.Line != w.Line || g.Column != w.Column {
		t.Errorf("the second item's run is at %+v, in the whole file at %+v", got.GetToken().Position, want.GetToken().Position)
	}
}

// TestYAMLPeakBytesPerTask: reading a YAML task file never holds the library's tree of
// the whole file: the heap's peak while it is read stays under 1,000 bytes a task
// beyond the file's text (the whole file's tree took some 3,500). The heap is sampled
// while the file is read; a tree held for the whole reading cannot slip between the
// samples.
func TestYAMLPeakBytesPerTask(t *testing.T) {
	const n = 40_000
	var b strings.Builder
	b.WriteString("version: 1\ndefaults:\n  timeout: 1m\ntasks:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - id: t%d\n    run: echo %d\n", i, i)
	}
	data := []byte(b.String())

	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() int64 {
		metrics.Read(sample)
		return int64(sample[0].Value.Uint64())
	}
	runtime.GC()
	before := heap()
	var peak atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			peak.Store(max(peak.Load(), heap()))
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	f, err := parseYAMLFile("big.yaml", data)
	close(stop)
	<-done
	if err != nil || f.Len() != n {
		t.Fatalf("got %v, want %d tasks", err, n)
	}
	per := (peak.Load() - before - int64(len(data))) / n
	t.Logf("peak heap while reading: %d bytes a task beyond the file's text (%d bytes a task)", per, len(data)/n)
	if per > 1000 {
		t.Errorf("the heap peaked at %d bytes a task beyond the file's text while reading, want at most 1000", per)
	}
	runtime.KeepAlive(f)
}

// TestYAMLItemsCapacityError: a file read item by item whose task never fits the
// run's capacity is refused at the task's key in the file, as when read whole.
func TestYAMLItemsCapacityError(t *testing.T) {
	data := []byte("version: 1\ndefaults:\n  resources: {memory: 1GiB}\ntasks:\n  - run: a\n  - run: b\n    resources: {cpu: 2}\n")
	f, ok := (&fileParser{name: "f.yaml"}).parseItems(data)
	if !ok {
		t.Fatal("not read item by item")
	}
	c := &jobs.Capacity{MilliCPU: 1000, Memory: 4 << 30}
	err := f.CheckCapacity(f.Tasks(jobs.Settings{}), c, true)
	want := `f.yaml:7:22: task "task-2": resources.cpu: asks for cpu 2, and the run has 1 CPUs (--cpus): it could never start`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	slow, serr := parseYAMLFileWith(&fileParser{name: "f.yaml", slow: true}, data)
	if serr != nil {
		t.Fatal(serr)
	}
	if werr := slow.CheckCapacity(slow.Tasks(jobs.Settings{}), c, true); fmt.Sprint(werr) != fmt.Sprint(err) {
		t.Errorf("read whole, the error is %v", werr)
	}
}
