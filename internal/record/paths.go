package record

import (
	"fmt"
	"os"
	"path/filepath"
)

// Path is a file a run writes, and the flag that names it (for messages).
type Path struct {
	Flag string // e.g. "--journal"
	Name string // as given; "": not given, not checked
}

// CheckDistinct returns an error when an output resolves to the input file or to
// another output, as `--report tasks.json` would overwrite its own task file, or
// `--journal` and `--metrics` naming one file would clobber each other. Every file a
// run writes belongs in outputs. input is the task file; ""
// or "-" (standard input) is not compared.
//
// Two paths are the same file when both exist and os.SameFile says so (which sees
// through hard links and symbolic links), or when their cleaned absolute paths, with
// the symbolic links of the directory part resolved, are equal (for files that do not
// exist yet). It only reads the file system.
func CheckDistinct(input string, outputs ...Path) error {
	type resolved struct {
		Path
		info  os.FileInfo // nil: does not exist (or cannot be read)
		canon string
	}
	resolve := func(p Path) resolved {
		r := resolved{Path: p, canon: canonical(p.Name)}
		r.info, _ = os.Stat(p.Name)
		return r
	}
	same := func(a, b resolved) bool {
		return (a.info != nil && b.info != nil && os.SameFile(a.info, b.info)) || a.canon == b.canon
	}
	var seen []resolved
	var in resolved
	if input != "" && input != "-" {
		in = resolve(Path{Name: input})
	}
	for _, p := range outputs {
		if p.Name == "" {
			continue
		}
		r := resolve(p)
		if in.Name != "" && same(r, in) {
			return fmt.Errorf("%s %s is the input file %s: writing it would destroy the tasks", p.Flag, p.Name, input)
		}
		for _, o := range seen {
			if same(r, o) {
				return fmt.Errorf("%s %s and %s %s are the same file: give each its own", o.Flag, o.Name, p.Flag, p.Name)
			}
		}
		seen = append(seen, r)
	}
	return nil
}

// canonical returns name as an absolute, cleaned path whose directory part has its
// symbolic links resolved (as far as it exists) before any ".." in it is applied. The
// last element is kept as it is: a symbolic link there is os.SameFile's to see
// through.
func canonical(name string) string {
	if !filepath.IsAbs(name) {
		wd, err := os.Getwd()
		if err != nil {
			return filepath.Clean(name)
		}
		name = wd + string(filepath.Separator) + name // not Join: it would apply ".." first
	}
	dir, base := filepath.Split(name)
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	return filepath.Join(dir, base)
}
