package input

import (
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
		got := tmpl.Args(tt.item, 7, 3)
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
		{[]string{"wc -l"}, "f", []string{"/bin/sh", "-c", `wc -l "${1}"`, "gorun", "f"}},
		{[]string{`echo '{}' "{}" {} {.}`}, "a.b", []string{"/bin/sh", "-c", `echo ''"${1}"'' "${1}" "${1}" "${2}"`, "gorun", "a.b", "a"}},
		{[]string{`echo \'{}`}, "v", []string{"/bin/sh", "-c", `echo \'"${1}"`, "gorun", "v"}},
		{[]string{`echo {x} {}`}, "v", []string{"/bin/sh", "-c", `echo {x} "${1}"`, "gorun", "v"}},
	}
	for _, tt := range tests {
		tmpl, err := NewTemplate(tt.words, jobs.DefaultShell)
		if err != nil {
			t.Fatal(err)
		}
		if got := tmpl.Args(tt.item, 1, 1); strings.Join(got, "\x00") != strings.Join(tt.want, "\x00") {
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
			args := tmpl.Args(item, 1, 1)
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
	if got, want := tmpl.Command("my pic.png", 1), "convert 'my pic.png' 'my pic'.jpg"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	tmpl, _ = NewTemplate([]string{"convert", "{}", "{.}.jpg"}, jobs.DefaultShell)
	if got, want := tmpl.Command("a.png", 1), "convert a.png a.jpg"; got != want {
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
		if got := NewTagString(tt.tmpl).Expand(tt.item, 3, 2); got != tt.want {
			t.Errorf("NewTagString(%q).Expand(%q): got %q, want %q", tt.tmpl, tt.item, got, tt.want)
		}
	}
}
