package input

import (
	"bytes"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
)

// itemBatch is how many items of a tasks sequence parseItems parses at once: enough
// to spread the cost of a call of the parser, few enough that their tree is small.
const itemBatch = 64

// parseItems reads a YAML task file item by item: it finds where each item of the
// top-level block sequence under `tasks:` begins and ends in the text (scanItems),
// parses the rest of the file (its run-wide keys, with the sequence's lines left
// blank) with the YAML library, then parses the items with the library, itemBatch at
// a time, turns each into its compact spec and drops their syntax tree before the
// next ones. The library's token list and tree of the whole file (some 3.5 KB a task)
// are never built, so a file of 100,000 tasks is read in tens of megabytes instead of
// hundreds.
//
// It takes only a file whose shape it is sure of, and only when every part of it
// reads and checks without an error; ok is false otherwise, and the caller reads the
// file whole, so that what is read and every error are exactly the library's. It
// gives up on: no `tasks:` key line at column 1 with the items on the lines below it,
// a sequence that is flow-style or empty, anchors, aliases, tags, merge keys or
// complex keys anywhere, tabs, a carriage return not followed by a line feed, a line
// that starts with `---` (but for a lone `---` before anything else: the document's
// start), `...` or `%`, a block scalar with an indentation indicator or without
// content, and anything the scanner cannot place.
//
// The tokens of an item carry their lines in the file, so that its nodes are where
// they are in the file. When the tasks ask for resources or labels, which are checked
// later against the run's capacity (CheckCapacity), the parser keeps the file's text:
// such an error is placed in the whole file's tree, parsed then.
func (p *fileParser) parseItems(data []byte) (*File, bool) {
	data = trimBOM(data)
	if line, _ := prescanDepth(data); line > 0 {
		return nil, false
	}
	sc, ok := scanItems(data)
	if !ok {
		return nil, false
	}
	f, ok := p.itemsHead(data, sc)
	if !ok {
		return nil, false
	}
	fromMatrices := 0
	for k := 0; k < len(sc.items); k += itemBatch {
		start, end := sc.items[k], sc.tailStart
		if k+itemBatch < len(sc.items) {
			end = sc.items[k+itemBatch]
		}
		seq, ok := parseItem(data[start:end], sc.lines[k], sc.indent)
		if !ok {
			return nil, false
		}
		for _, n := range seq.Values {
			var rt rawTask
			if !plainTask(n, &rt) {
				rt = rawTask{}
				if hasReferences(n) || p.decodeNode(n, &rt) != nil {
					return nil, false
				}
			}
			if p.addTask(f, &rt, &fromMatrices) != nil {
				return nil, false
			}
		}
	}
	f.padMatrices()
	if p.check(f) != nil {
		return nil, false
	}
	if f.parser != nil { // for an error of CheckCapacity, in the whole tree
		p.text = data
	}
	return f, true
}

// itemsHead parses data without the lines of its tasks sequence (left blank, so that
// every other line keeps its number) and converts its run-wide settings. The sequence
// must be all that `tasks` holds: the rest reads `tasks:` as null.
func (p *fileParser) itemsHead(data []byte, sc *itemScan) (*File, bool) {
	region := data[sc.headEnd:sc.tailStart]
	rest := make([]byte, 0, sc.headEnd+bytes.Count(region, []byte("\n"))+len(data)-sc.tailStart)
	rest = append(rest, data[:sc.headEnd]...)
	for range bytes.Count(region, []byte("\n")) {
		rest = append(rest, '\n')
	}
	rest = append(rest, data[sc.tailStart:]...)
	af, err := parseYAML(p.name, rest)
	if err != nil || len(af.Docs) != 1 || af.Docs[0] == nil {
		return nil, false
	}
	root, ok := af.Docs[0].Body.(*ast.MappingNode)
	if !ok || root.IsFlowStyle || hasReferences(root) {
		return nil, false
	}
	tasks := 0
	for _, mv := range root.Values {
		k, ok := mv.Key.(*ast.StringNode)
		if !ok {
			return nil, false
		}
		if k.Value == "tasks" {
			if _, null := mv.Value.(*ast.NullNode); !null || k.GetToken().Position.Column != 1 {
				return nil, false
			}
			tasks++
		}
	}
	if tasks != 1 {
		return nil, false
	}
	p.root = root
	var raw rawFile
	if p.decodeNode(root, &raw) != nil || raw.Tasks != nil {
		return nil, false
	}
	f, err := p.head(&raw)
	return f, err == nil
}

// parseItem parses the text of one or more items of the tasks sequence, which starts
// on line line of the file with a `-` at column indent+1, and returns its sequence,
// its tokens at their lines and columns in the file (their offsets and indentation
// levels are the text's own); false when it does not parse, nests deeper than the
// file may, or is not such a sequence.
func parseItem(text []byte, line, indent int) (*ast.SequenceNode, bool) {
	tokens := lexer.Tokenize(string(text))
	for _, tk := range tokens {
		if tk.Position != nil {
			tk.Position.Line += line - 1
		}
	}
	// The item sits under the file's mapping: one level more than it has alone.
	if tokensDeeper(tokens, MaxDepth-1) != nil {
		return nil, false
	}
	af, err := parser.Parse(tokens, 0)
	if err != nil || len(af.Docs) != 1 || af.Docs[0] == nil {
		return nil, false
	}
	seq, ok := af.Docs[0].Body.(*ast.SequenceNode)
	if !ok || seq.IsFlowStyle || len(seq.Values) == 0 {
		return nil, false
	}
	if tk := seq.GetToken(); tk == nil || tk.Position == nil || tk.Position.Line != line || tk.Position.Column != indent+1 {
		return nil, false
	}
	return seq, true
}

// itemScan is where the items of a task file's tasks sequence are in its text.
type itemScan struct {
	headEnd   int   // the offset of the line after `tasks:`
	tailStart int   // the offset of the first line after the sequence (len(data) at its end)
	indent    int   // the column of the items' `-`, 0-based
	items     []int // the offset of the line each item starts on
	lines     []int // the 1-based line number each item starts on
}

// scanItems finds the items of the top-level block sequence under `tasks:` in data,
// by its lines: an item starts on a line whose first character outside any scalar or
// flow collection is a `-` (then a space or the line's end) at the column of the
// first item, and the sequence ends at the first such line at column 1 that is not an
// item. To tell where a line starts outside a scalar, it follows quoted scalars
// (over lines too), flow collections, block scalars and comments through the whole
// file. It is false for whatever it is not sure of (see parseItems).
func scanItems(data []byte) (*itemScan, bool) {
	if bytes.IndexByte(data, '\t') >= 0 {
		return nil, false
	}
	for i := bytes.IndexByte(data, '\r'); i >= 0; {
		if i+1 >= len(data) || data[i+1] != '\n' {
			return nil, false // a lone CR, which the YAML scanner takes for a line break
		}
		next := bytes.IndexByte(data[i+1:], '\r')
		if next < 0 {
			break
		}
		i += 1 + next
	}
	s := &lineScanner{blockIndent: -1}
	sc := &itemScan{indent: -1}
	const (
		head  = iota // before `tasks:`
		first        // after `tasks:`: the first item must come
		items        // in the sequence
		tail         // after it
	)
	phase := head
	lineNo := 0
	seen := false // a structural line
	for start := 0; start < len(data); {
		lineNo++
		end := bytes.IndexByte(data[start:], '\n')
		next := len(data)
		if end < 0 {
			end = len(data)
		} else {
			end += start
			next = end + 1
		}
		text := bytes.TrimSuffix(data[start:end], []byte("\r"))
		lineStart := start
		start = next
		if bytes.HasPrefix(text, []byte("---")) || bytes.HasPrefix(text, []byte("...")) || bytes.HasPrefix(text, []byte("%")) {
			if phase == head && !seen && isDocumentStart(text) {
				continue // the document's start, before anything: the rest keeps it
			}
			return nil, false // documents and directives
		}
		indent, structural, ok := s.line(text)
		if !ok {
			return nil, false
		}
		if !structural {
			continue
		}
		seen = true
		entry := isEntry(text[indent:])
		switch phase {
		case head, tail:
			if indent == 0 && isTasksKey(text) {
				if phase == tail {
					return nil, false // a second `tasks:`: the library's error
				}
				phase, sc.headEnd = first, next
				continue // nothing after the key but a comment
			}
		case first:
			if !entry {
				return nil, false
			}
			phase, sc.indent = items, indent
			sc.items, sc.lines = append(sc.items, lineStart), append(sc.lines, lineNo)
		case items:
			switch {
			case indent > sc.indent:
			case indent == sc.indent && entry:
				sc.items, sc.lines = append(sc.items, lineStart), append(sc.lines, lineNo)
			case indent == 0:
				phase, sc.tailStart = tail, lineStart
			default:
				return nil, false
			}
		}
		if !s.rest(text, indent) {
			return nil, false
		}
	}
	if s.quote != 0 || s.flow > 0 || s.blockPending {
		return nil, false
	}
	switch phase {
	case items:
		sc.tailStart = len(data)
	case tail:
	default:
		return nil, false
	}
	return sc, true
}

// isDocumentStart reports whether line is `---` alone, but for blanks and a comment.
func isDocumentStart(line []byte) bool { return isAlone(line, "---") }

// isTasksKey reports whether line is `tasks:` alone, but for blanks and a comment.
func isTasksKey(line []byte) bool { return isAlone(line, "tasks:") }

// isAlone reports whether line is word alone, but for blanks after it and a comment
// (which a blank must come before).
func isAlone(line []byte, word string) bool {
	rest, ok := bytes.CutPrefix(line, []byte(word))
	if !ok {
		return false
	}
	trimmed := bytes.TrimLeft(rest, " ")
	return len(trimmed) == 0 || (trimmed[0] == '#' && len(trimmed) < len(rest))
}

// isEntry reports whether s starts with a block sequence's `-` indicator.
func isEntry(s []byte) bool {
	return len(s) > 0 && s[0] == '-' && (len(s) == 1 || s[1] == ' ')
}

// lineScanner follows, line by line, what the YAML scanner is inside of: a quoted
// scalar, flow collections, a block scalar. It is cautious: whatever it cannot place
// with certainty, it refuses.
type lineScanner struct {
	quote        byte // '"' or '\'' inside a quoted scalar; else 0
	flow         int  // open flow collections
	blockPending bool // a block scalar's header was the last line with content
	blockParent  int  // the indentation of the line of a block scalar's header
	blockIndent  int  // inside a block scalar: its content's indentation; else -1
}

// line reads the start of a line (without its line break) and returns its
// indentation and whether it is structural: its first character is outside any
// scalar, flow collection or comment, so that it may start a key or an item. A
// structural line is left to rest to be read on; any other line is read whole.
func (s *lineScanner) line(text []byte) (indent int, structural, ok bool) {
	indent = len(text) - len(bytes.TrimLeft(text, " "))
	if indent == len(text) { // blank
		return indent, false, true
	}
	if s.blockPending {
		if indent <= s.blockParent {
			return 0, false, false // an empty block scalar: leave it to the library
		}
		s.blockPending, s.blockIndent = false, indent
	}
	if s.blockIndent >= 0 {
		if indent >= s.blockIndent {
			return indent, false, true
		}
		s.blockIndent = -1
	}
	if s.quote != 0 || s.flow > 0 {
		return indent, false, s.scan(text, 0, false, indent)
	}
	if text[indent] == '#' {
		return indent, false, true
	}
	return indent, true, true
}

// rest reads a structural line on from its first character.
func (s *lineScanner) rest(text []byte, indent int) bool {
	return s.scan(text, indent, true, indent)
}

// scan reads text from i, where a value may start when valueStart, as the YAML
// scanner would; indent is the line's indentation. It is false for what it refuses.
func (s *lineScanner) scan(text []byte, i int, valueStart bool, indent int) bool {
	spaceBefore := i == 0 || text[i-1] == ' '
	for i < len(text) {
		c := text[i]
		switch s.quote {
		case '"':
			switch c {
			case '\\':
				i += 2 // an escape; at the line's end, a line continuation
			case '"':
				s.quote = 0
				i++
			default:
				i++
			}
			spaceBefore = false
			continue
		case '\'':
			if c == '\'' {
				if i+1 < len(text) && text[i+1] == '\'' {
					i += 2
					continue
				}
				s.quote = 0
			}
			i++
			spaceBefore = false
			continue
		}
		next := byte(' ') // what follows c: a space stands for the line's end
		if i+1 < len(text) {
			next = text[i+1]
		}
		switch {
		case c == ' ':
			i++
			spaceBefore = true
			continue
		case c == '#' && spaceBefore:
			return true // a comment, to the line's end
		case valueStart && (c == '"' || c == '\''):
			s.quote = c
			valueStart = false
		case c == '[' || c == '{':
			if !valueStart && s.flow == 0 {
				break // part of a plain scalar
			}
			s.flow++
			valueStart = true
		case (c == ']' || c == '}') && s.flow > 0:
			s.flow--
			valueStart = false
		case c == ']' || c == '}':
			if valueStart {
				return false
			}
		case c == ',' && s.flow > 0:
			valueStart = true
		case c == ':' && (next == ' ' || (s.flow > 0 && bytes.IndexByte([]byte(",[]{}\"'"), next) >= 0)):
			valueStart = true
		case c == ':' && s.flow > 0:
			return false // `a:b` in a flow collection: plain or a key, by rules not followed here
		case valueStart && (c == '|' || c == '>'):
			if s.flow > 0 || !blockHeader(text[i+1:]) {
				return false
			}
			s.blockPending, s.blockParent = true, indent
			return true
		case valueStart && c == '-' && next == ' ':
			if s.flow > 0 {
				return false
			}
		case valueStart && c == '?' && next == ' ':
			return false // a complex key
		case valueStart && bytes.IndexByte([]byte("&*!%@`"), c) >= 0:
			return false // anchors, aliases, tags, directives, reserved
		case valueStart && c == '<' && next == '<':
			return false // a merge key
		default:
			valueStart = false
		}
		i++
		spaceBefore = false
	}
	return true
}

// blockHeader reports whether rest, what follows a block scalar's `|` or `>`, is a
// header this reader takes: a chomping indicator at most (no indentation indicator),
// then blanks and maybe a comment.
func blockHeader(rest []byte) bool {
	if len(rest) > 0 && (rest[0] == '-' || rest[0] == '+') {
		rest = rest[1:]
	}
	trimmed := bytes.TrimLeft(rest, " ")
	return len(trimmed) == 0 || (trimmed[0] == '#' && len(trimmed) < len(rest))
}
