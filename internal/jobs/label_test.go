package jobs

import (
	"strings"
	"testing"
)

func TestLabel(t *testing.T) {
	long := strings.Repeat("é", 60)
	for _, tt := range []struct{ id, input, want string }{
		{"build", "", "build"},
		{"task-3", "photo 1.jpg", `task-3 "photo 1.jpg"`},
		{"task-4", "a\tb\nc\x1b[31m", `task-4 "a\tb\nc\x1b[31m"`},
		{"task-5", "bad\xffutf8", `task-5 "bad\xffutf8"`},
		{"task-6", long, `task-6 "` + strings.Repeat("é", MaxLabelRunes) + `…"`},
		{"task-7", `say "hi"`, `task-7 "say \"hi\""`},
	} {
		if got := Label(tt.id, tt.input); got != tt.want {
			t.Errorf("Label(%q, %q): got %s, want %s", tt.id, tt.input, got, tt.want)
		}
	}
}

func TestTaskInput(t *testing.T) {
	for _, tt := range []struct {
		name string
		task Task
		want string
	}{
		{"a task file's task", Task{ID: "task-1", Run: "make"}, ""},
		{"a named task", Task{ID: "build", Named: true, Run: "make", Line: 3}, ""},
		{"a command line of a stream", Task{ID: "task-2", Run: "gzip a.log", Line: 2}, "gzip a.log"},
		{"a template's item", Task{ID: "task-3", Template: fakeTemplate{}, Item: "a b.txt", Line: 3}, "a b.txt"},
	} {
		if got := tt.task.Input(); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

type fakeTemplate struct{}

func (fakeTemplate) Args(values []string, seq, slot int) []string {
	return append([]string{"echo"}, values...)
}
func (fakeTemplate) Command(values []string, seq int) string { return "echo " + values[0] }
