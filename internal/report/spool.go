package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/gorun/gorun/internal/jobs"
)

// Spool keeps every result of a run for a report written at its end, in an unlinked
// temporary file rather than in memory: 16 bytes of memory per result. It is used by
// one goroutine at a time.
type Spool struct {
	f       *os.File
	w       *bufio.Writer
	end     int64
	entries []spoolEntry
	err     error
}

type spoolEntry struct {
	index int
	off   int64
}

// NewSpool creates a spool.
func NewSpool() (*Spool, error) {
	f, err := os.CreateTemp("", "gorun-results-*")
	if err != nil {
		return nil, fmt.Errorf("result spool: %w", err)
	}
	_ = os.Remove(f.Name()) // unlinked: nothing is left behind
	return &Spool{f: f, w: bufio.NewWriter(f)}, nil
}

// Add keeps r.
func (s *Spool) Add(r jobs.Result) {
	if s.err != nil {
		return
	}
	line, err := json.Marshal(r)
	if err != nil {
		s.err = err
		return
	}
	s.entries = append(s.entries, spoolEntry{index: r.Index, off: s.end})
	line = append(line, '\n')
	if _, err := s.w.Write(line); err != nil {
		s.err = fmt.Errorf("result spool: %w", err)
	}
	s.end += int64(len(line))
}

// Results yields the kept results in input order. Call it after the last Add.
func (s *Spool) Results() Results {
	return func(yield func(jobs.Result) bool) {
		if s.err != nil || s.w.Flush() != nil {
			return
		}
		order := slices.Clone(s.entries)
		slices.SortStableFunc(order, func(a, b spoolEntry) int { return a.index - b.index })
		for _, e := range order {
			line, err := bufio.NewReader(io.NewSectionReader(s.f, e.off, s.end-e.off)).ReadBytes('\n')
			var r jobs.Result
			if err != nil || json.Unmarshal(line, &r) != nil {
				s.err = fmt.Errorf("result spool: cannot read back a result")
				return
			}
			if !yield(r) {
				return
			}
		}
	}
}

// Err returns the first error the spool met.
func (s *Spool) Err() error { return s.err }

// Close releases the spool's file.
func (s *Spool) Close() error { return s.f.Close() }

// Format is a report format.
type Format string

// The report formats.
const (
	Text     Format = "text"
	JSON     Format = "json"
	JUnit    Format = "junit"
	Markdown Format = "markdown"
	HTML     Format = "html"
)

// ParseFormat checks a report format name; "xml" and "md" are accepted too.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "text", "txt":
		return Text, nil
	case "json":
		return JSON, nil
	case "junit", "xml":
		return JUnit, nil
	case "markdown", "md":
		return Markdown, nil
	case "html", "htm":
		return HTML, nil
	}
	return "", fmt.Errorf("invalid report format %q: want text, json, junit, markdown or html", s)
}

// FormatOf guesses a report format from a file name: .json, .xml (JUnit), .md, .html,
// .txt; else "".
func FormatOf(path string) Format {
	for ext, f := range map[string]Format{".json": JSON, ".xml": JUnit, ".md": Markdown, ".markdown": Markdown, ".txt": Text, ".html": HTML, ".htm": HTML} {
		if len(path) > len(ext) && path[len(path)-len(ext):] == ext {
			return f
		}
	}
	return ""
}

// Write renders a report in format f.
func Write(w io.Writer, f Format, run Run, s *Summary, results Results) error {
	switch f {
	case JSON:
		return WriteJSON(w, run, s, results)
	case JUnit:
		return WriteJUnit(w, run, s, results)
	case Markdown:
		return WriteMarkdown(w, run, s, results)
	case HTML:
		return WriteHTML(w, run, s, results)
	}
	return WriteText(w, s)
}
