package input

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorun/gorun/internal/jobs"
)

func TestReplacementStrings(t *testing.T) {
	tests := []struct {
		item                        string
		noExt, base, dir, baseNoExt string
	}{
		{"file.txt", "file", "file.txt", ".", "file"},
		{"dir/sub/a.tar.gz", "dir/sub/a.tar", "a.tar.gz", "dir/sub", "a.tar"},
		{"/abs.d/x", "/abs.d/x", "x", "/abs.d", "x"},
		{".profile", ".profile", ".profile", ".", ".profile"},
		{"dir.d/noext", "dir.d/noext", "noext", "dir.d", "noext"},
		{"/top", "/top", "top", "/", "top"},
		{"dir/sub/", "dir/sub/", "sub", "dir", "sub"},
		{"my file.jpeg", "my file", "my file.jpeg", ".", "my file"},
	}
	tmpl, err := NewTemplate([]string{"x", "{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}", "pre-{/.}-post"}, jobs.DefaultShell)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		got := tmpl.Args([]string{tt.item}, 7, 3)
		want := []string{"x", tt.item, tt.noExt, tt.base, tt.dir, tt.baseNoExt, "7", "3", "pre-" + tt.baseNoExt + "-post"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("item %q:\n got %q\nwant %q", tt.item, got, want)
		}
	}
}

func TestTemplateModes(t *testing.T) {
	tests := []struct {
		words []string
		item  string
		want  []string
	}{
		{[]string{"convert", "{}", "{.}.jpg"}, "a.png", []string{"convert", "a.png", "a.jpg"}},
		{[]string{"gzip", "-9"}, "x y", []string{"gzip", "-9", "x y"}}, // appended as the last argument
		{[]string{"echo {}"}, "v", []string{"/bin/sh", "-c", `echo "${1}"`, "gorun", "v"}},
		{[]string{"wc -l"}, "f", []string{"/bin/sh", "-c", `wc -l "$@"`, "gorun", "f"}},
		{[]string{`echo '{}' "{}" {} {.}`}, "a.b", []string{"/bin/sh", "-c", `echo ''"${1}"'' "${1}" "${1}" "${2}"`, "gorun", "a.b", "a"}},
		{[]string{`echo \'{}`}, "v", []string{"/bin/sh", "-c", `echo \'"${1}"`, "gorun", "v"}},
		{[]string{`echo {x} {}`}, "v", []string{"/bin/sh", "-c", `echo {x} "${1}"`, "gorun", "v"}},
	}
	for _, tt := range tests {
		tmpl, err := NewTemplate(tt.words, jobs.DefaultShell)
		if err != nil {
			t.Fatal(err)
		}
		if got := tmpl.Args([]string{tt.item}, 1, 1); strings.Join(got, "\x00") != strings.Join(tt.want, "\x00") {
			t.Errorf("%q with %q:\n got %q\nwant %q", tt.words, tt.item, got, tt.want)
		}
	}
	if _, err := NewTemplate(nil, jobs.DefaultShell); err == nil {
		t.Error("an empty template should be an error")
	}
}

// hostile holds input items that break naive quoting.
var hostile = []string{
	"plain",
	"two words",
	"it's",
	`say "hi"`,
	"$(touch PWNED)",
	"`touch PWNED`",
	"; touch PWNED",
	"| touch PWNED",
	"&& touch PWNED",
	"' ; touch PWNED ; '",
	`" ; touch PWNED ; "`,
	"*",
	"-n",
	"--help",
	"line\nbreak",
	"\xff\xfe invalid utf-8",
	"${HOME}",
	`back\slash\`,
	"'\"'\"",
}

// TestNoInjection runs each template form through a real shell with every hostile item
// and checks that the task received exactly the item's bytes, and that nothing ran.
func TestNoInjection(t *testing.T) {
	forms := map[string][]string{
		"argv":          {"printf", "%s", "{}"},
		"shell":         {"printf %s {}"},
		"single-quoted": {"printf %s '{}'"},
		"double-quoted": {`printf %s "{}"`},
		"appended":      {"printf %s"},
	}
	for name, words := range forms {
		tmpl, err := NewTemplate(words, jobs.DefaultShell)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range hostile {
			dir := t.TempDir()
			args := tmpl.Args([]string{item}, 1, 1)
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Dir = dir
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("%s %q: %v", name, item, err)
			}
			if string(out) != item {
				t.Errorf("%s: got argument %q, want exactly %q", name, out, item)
			}
			if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
				t.Errorf("%s %q: input ran as shell code", name, item)
			}
		}
	}
}

func TestTemplateCommandForDisplay(t *testing.T) {
	tmpl, _ := NewTemplate([]string{"convert {} {.}.jpg"}, jobs.DefaultShell)
	if got, want := tmpl.Command([]string{"my pic.png"}, 1), "convert 'my pic.png' 'my pic'.jpg"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	tmpl, _ = NewTemplate([]string{"convert", "{}", "{.}.jpg"}, jobs.DefaultShell)
	if got, want := tmpl.Command([]string{"a.png"}, 1), "convert a.png a.jpg"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTagString(t *testing.T) {
	for _, tt := range []struct{ tmpl, item, want string }{
		{"{}", "dir/a b.tar.gz", "dir/a b.tar.gz"},
		{"{#}:{/.}@{%}", "dir/photo.jpg", "3:photo@2"},
		{"fixed", "x", "fixed"},
		{"$(touch PWNED) {}", "`x`", "$(touch PWNED) `x`"},
	} {
		if got := NewTagString(tt.tmpl).Expand([]string{tt.item}, 3, 2); got != tt.want {
			t.Errorf("NewTagString(%q).Expand(%q): got %q, want %q", tt.tmpl, tt.item, got, tt.want)
		}
	}
}

func TestTemplatePositional(t *testing.T) {
	values := []string{"a/b.tar.gz", "x y"}
	for _, tt := range []struct {
		words []string
		want  []string
	}{
		{[]string{"echo", "{1}", "{2}"}, []string{"echo", "a/b.tar.gz", "x y"}},
		{[]string{"echo", "{2}-{1.}", "{1/}", "{1//}", "{1/.}"}, []string{"echo", "x y-a/b.tar", "b.tar.gz", "a", "b.tar"}},
		{[]string{"echo", "{}"}, []string{"echo", "a/b.tar.gz x y"}}, // all values, as GNU parallel
		{[]string{"echo", "-n"}, []string{"echo", "-n", "a/b.tar.gz", "x y"}},
		{[]string{"echo", "{3}", "{0}", "{12a}"}, []string{"echo", "", "{0}", "{12a}"}},
		{[]string{"printf '[%s]' {2} \"{1}\""}, []string{"/bin/sh", "-c", `printf '[%s]' "${1}" "${2}"`, "gorun", "x y", "a/b.tar.gz"}},
		{[]string{"printf '[%s]'"}, []string{"/bin/sh", "-c", `printf '[%s]' "$@"`, "gorun", "a/b.tar.gz", "x y"}},
	} {
		tmpl, err := NewTemplate(tt.words, "/bin/sh")
		if err != nil {
			t.Fatal(err)
		}
		if got := tmpl.Args(values, 1, 1); strings.Join(got, "\x00") != strings.Join(tt.want, "\x00") {
			t.Errorf("%q: got %q, want %q", tt.words, got, tt.want)
		}
	}
	tmpl, _ := NewTemplate([]string{"echo", "{2/}", "{1}"}, "/bin/sh")
	if got := tmpl.MaxSource(); got != 2 {
		t.Errorf("MaxSource: got %d, want 2", got)
	}
}

func TestSplitSources(t *testing.T) {
	tmpl, srcs, err := SplitSources([]string{"echo", "{1}", ":::", "a", "b", ":::+", "1", "2", "::::", "f", "-", "::::+", "g"})
	if err != nil {
		t.Fatal(err)
	}
	want := []SourceSpec{{Words: []string{"a", "b"}}, {Words: []string{"1", "2"}, Linked: true}, {Words: []string{"f", "-"}, Files: true}, {Words: []string{"g"}, Files: true, Linked: true}}
	if strings.Join(tmpl, " ") != "echo {1}" || fmt.Sprint(srcs) != fmt.Sprint(want) {
		t.Errorf("got %q %+v, want echo {1} and %+v", tmpl, srcs, want)
	}
	for _, bad := range [][]string{{"echo", ":::+", "a"}, {"echo", "::::"}} {
		if _, _, err := SplitSources(bad); err == nil {
			t.Errorf("%q: got no error", bad)
		}
	}
	if tmpl, srcs, _ := SplitSources([]string{"echo", "{}"}); srcs != nil || len(tmpl) != 2 {
		t.Errorf("no source: got %q %v", tmpl, srcs)
	}
}

func TestProductSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("\xef\xbb\xbfl1\r\n\nl2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, _ := NewTemplate([]string{"echo", "{1}", "{2}", "{3}"}, "/bin/sh")
	collect := func(specs []SourceSpec, link bool) []string {
		t.Helper()
		p, err := NewProductSource(specs, link, strings.NewReader("in\n"), LineOptions{Template: tmpl})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			task, err := p.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%d:%s", task.Index, strings.Join(task.Args(1)[1:], ",")))
		}
		if len(got) != p.Len() {
			t.Errorf("Len() %d, yielded %d", p.Len(), len(got))
		}
		return got
	}
	got := collect([]SourceSpec{{Words: []string{"A", "B"}}, {Words: []string{file}, Files: true}, {Words: []string{"-"}, Files: true}}, false)
	if want := "1:A,l1,in 2:A,l2,in 3:B,l1,in 4:B,l2,in"; strings.Join(got, " ") != want {
		t.Errorf("product: got %q, want %q", got, want)
	}
	got = collect([]SourceSpec{{Words: []string{"A", "B", "C"}}, {Words: []string{"1", "2"}}, {Words: []string{"x"}, Linked: true}}, false)
	if want := "1:A,1,x 2:A,2,x 3:B,1,x 4:B,2,x 5:C,1,x 6:C,2,x"; strings.Join(got, " ") != want {
		t.Errorf("linked: got %q, want %q", got, want)
	}
	got = collect([]SourceSpec{{Words: []string{"A", "B", "C"}}, {Words: []string{"1", "2"}}, {Words: []string{"x"}}}, true)
	if want := "1:A,1,x 2:B,2,x 3:C,1,x"; strings.Join(got, " ") != want {
		t.Errorf("--link wraps the shorter sources: got %q, want %q", got, want)
	}
	if got := collect([]SourceSpec{{Words: []string{"A"}}, {Words: nil}}, false); len(got) != 0 {
		t.Errorf("an empty source: got %q, want no task", got)
	}
	_, err := NewProductSource([]SourceSpec{{Words: []string{filepath.Join(dir, "missing")}, Files: true}}, false, nil, LineOptions{})
	var ie *jobs.InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a missing file: got %v, want an input error naming it", err)
	}
}
