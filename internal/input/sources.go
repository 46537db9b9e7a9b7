package input

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gorun/gorun/internal/jobs"
)

// SourceSpec is an input source as GNU parallel takes it after the command template:
// `::: VALUE...` (the values themselves) or `:::: FILE...` (the items of files, one per
// line, or NUL-terminated with -0; - is standard input). A source written `:::+` or
// `::::+` is linked to the one before it: their values go together, first with first,
// instead of in every combination.
type SourceSpec struct {
	Words  []string // the values, or the files
	Files  bool     // Words are files whose items are the values
	Linked bool     // linked to the previous source
}

// SplitSources splits what follows `--` into the command template and the input
// sources, at the first :::, ::::, :::+ or ::::+. Without one, sources is nil. A
// marker with nothing after it, or a linked source first, is an error.
func SplitSources(words []string) (template []string, sources []SourceSpec, err error) {
	marker := func(w string) (SourceSpec, bool) {
		switch w {
		case ":::":
			return SourceSpec{}, true
		case "::::":
			return SourceSpec{Files: true}, true
		case ":::+":
			return SourceSpec{Linked: true}, true
		case "::::+":
			return SourceSpec{Files: true, Linked: true}, true
		}
		return SourceSpec{}, false
	}
	i := 0
	for i < len(words) {
		if _, ok := marker(words[i]); ok {
			break
		}
		i++
	}
	template = words[:i]
	for _, w := range words[i:] {
		if s, ok := marker(w); ok {
			if s.Linked && len(sources) == 0 {
				return nil, nil, fmt.Errorf("%s links a source to the one before it, and there is none", w)
			}
			sources = append(sources, s)
			continue
		}
		last := &sources[len(sources)-1]
		last.Words = append(last.Words, w)
	}
	for _, s := range sources {
		if s.Files && len(s.Words) == 0 {
			return nil, nil, fmt.Errorf(":::: needs at least one file (- for standard input)")
		}
	}
	return template, sources, nil
}

// MaxCombinations bounds the tasks the input sources may make.
const MaxCombinations = 1 << 40

// ProductSource yields one task per combination of the values of its input sources,
// as GNU parallel does: every value of the first source with every value of the
// second, and so on, the first source varying slowest; linked sources (SourceSpec.Linked,
// or all of them with link) take their values together, the shorter ones wrapping
// around. Each task is the template applied to the combination's values ({1}, {2}, …;
// {} is them all, space-separated), or without a template, the values joined with
// spaces as a shell command line. Tasks are made as they are asked for: memory holds
// the values, never the combinations.
type ProductSource struct {
	groups [][][]string // groups of linked sources, each a list of sources' values
	sizes  []int        // rows of each group: its longest source
	total  int
	index  int
	opts   LineOptions
}

// NewProductSource reads the values of sources (files through open; "-" is stdin)
// and returns the source of their combinations. A file that cannot be read is an
// *jobs.InputError naming it.
func NewProductSource(sources []SourceSpec, link bool, stdin io.Reader, opts LineOptions) (*ProductSource, error) {
	p := &ProductSource{opts: opts}
	for i, s := range sources {
		values := s.Words
		if s.Files {
			values = nil
			for _, name := range s.Words {
				items, err := readItems(name, stdin, opts.Null)
				if err != nil {
					return nil, err
				}
				values = append(values, items...)
			}
		}
		if len(p.groups) == 0 || !(s.Linked || (link && i > 0)) {
			p.groups = append(p.groups, nil)
			p.sizes = append(p.sizes, 0)
		}
		g := len(p.groups) - 1
		p.groups[g] = append(p.groups[g], values)
		p.sizes[g] = max(p.sizes[g], len(values))
	}
	p.total = 1
	for g, n := range p.sizes {
		for _, values := range p.groups[g] {
			if len(values) == 0 {
				n = 0 // a source without values makes no combination
			}
		}
		if n == 0 {
			p.total = 0
			break
		}
		if p.total > MaxCombinations/n {
			return nil, &jobs.InputError{File: "input sources", Msg: fmt.Sprintf("more than %d combinations", MaxCombinations)}
		}
		p.total *= n
	}
	return p, nil
}

// readItems returns the non-empty items of the file name (stdin for "-"), one per
// line or NUL-terminated.
func readItems(name string, stdin io.Reader, null bool) ([]string, error) {
	r := stdin
	shown := "stdin"
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, &jobs.InputError{File: name, Msg: pathErr(err)}
		}
		defer f.Close()
		r, shown = f, name
	}
	delim := byte('\n')
	if null {
		delim = 0
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var items []string
	for n := 1; ; n++ {
		b, err := br.ReadBytes(delim)
		if n == 1 {
			b = trimBOM(b)
		}
		if len(b) > 0 && b[len(b)-1] == delim {
			b = b[:len(b)-1]
		}
		if !null {
			b = bytes.TrimSuffix(b, []byte{'\r'})
		}
		if len(b) > 0 {
			items = append(items, string(b))
		}
		if err == io.EOF {
			return items, nil
		}
		if err != nil {
			return nil, &jobs.InputError{File: shown, Line: n, Msg: pathErr(err)}
		}
	}
}

func pathErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error() // the name is said once, by the InputError
	}
	return err.Error()
}

// Next implements Source.
func (p *ProductSource) Next() (jobs.Task, error) {
	if p.index >= p.total {
		return jobs.Task{}, io.EOF
	}
	rest := p.index
	p.index++
	var values []string
	rows := make([]int, len(p.groups))
	for g := len(p.groups) - 1; g >= 0; g-- { // the first group varies slowest
		rows[g] = rest % p.sizes[g]
		rest /= p.sizes[g]
	}
	for g, group := range p.groups {
		for _, vals := range group {
			values = append(values, vals[rows[g]%len(vals)])
		}
	}
	joined := strings.Join(values, " ")
	if p.opts.Template == nil {
		sp := jobs.Spec{Run: joined}
		return jobs.Resolve(p.index, &sp, p.opts.Settings, &jobs.Defaults{}), nil
	}
	sp := jobs.Spec{Run: "-"}
	t := jobs.Resolve(p.index, &sp, p.opts.Settings, &jobs.Defaults{})
	t.Run, t.Template, t.Item = "", p.opts.Template, joined
	if len(values) > 1 {
		t.Values = values
	}
	checkValues(&t, p.opts.Template, jobs.InputError{File: "input sources"})
	return t, nil
}

// Len returns the number of tasks: the number of combinations.
func (p *ProductSource) Len() int { return p.total }

// Close implements Source; the tasks not yet yielded are still yielded, to be skipped.
func (p *ProductSource) Close() error { return nil }
