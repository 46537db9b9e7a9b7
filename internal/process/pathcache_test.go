//go:build linux

package process

import (
	"os"
	"path/filepath"
	"testing"
)

// The look-up a run remembers is the one a fresh search of PATH gives, whatever
// changes in its directories between tasks: a program added to an earlier directory,
// made not executable, removed, or a directory of PATH made after the run started.
func TestPathCacheForgetsWhatChanged(t *testing.T) {
	root := t.TempDir()
	first, second, later := filepath.Join(root, "first"), filepath.Join(root, "second"), filepath.Join(root, "later")
	for _, d := range []string{first, second} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := later + ":" + first + ":" + second
	program := func(dir string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, "prog")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var c pathCache
	defer c.close()
	want := func(step, wantPath string) {
		t.Helper()
		got, ok := c.lookPath("prog", path)
		fresh, freshOK := lookPath("prog", path)
		if got != wantPath || ok != (wantPath != "") {
			t.Errorf("%s: got %q (%v), want %q", step, got, ok, wantPath)
		}
		if got != fresh || ok != freshOK {
			t.Errorf("%s: remembered %q (%v), a fresh search finds %q (%v)", step, got, ok, fresh, freshOK)
		}
	}
	want("no program anywhere", "")
	inSecond := program(second, 0o755)
	want("in the second directory", inSecond)
	if c.found[pathKey{path, "prog"}] != inSecond {
		t.Fatalf("the look-up was not kept: %v", c.found)
	}
	want("in the second directory, again", inSecond)
	inFirst := program(first, 0o644)
	want("not executable in the first", inSecond)
	if err := os.Chmod(inFirst, 0o755); err != nil {
		t.Fatal(err)
	}
	want("made executable in the first", inFirst)
	if err := os.Mkdir(later, 0o755); err != nil {
		t.Fatal(err)
	}
	inLater := program(later, 0o755)
	want("in a directory made since", inLater)
	if err := os.Rename(inLater, filepath.Join(root, "moved")); err != nil {
		t.Fatal(err)
	}
	want("moved out of it", inFirst)
	if err := os.Remove(inFirst); err != nil {
		t.Fatal(err)
	}
	want("removed from the first", inSecond)
	if err := os.RemoveAll(second); err != nil {
		t.Fatal(err)
	}
	want("its directory removed", "")
	if err := os.Mkdir(second, 0o755); err != nil {
		t.Fatal(err)
	}
	want("its directory made again, empty", "")
	want("in the directory made again", program(second, 0o755))
}
