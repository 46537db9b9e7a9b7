package input

import (
	"bytes"
	"fmt"
	"reflect"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"github.com/gorun/gorun/internal/jobs"
)

// MaxDepth bounds how deeply collections (mappings and lists) nest in a task file or
// a JSON Lines line. A task file needs 5 levels (the file, `tasks`, a task, its `env`,
// a `from_worker` value); the limit refuses input nested deeper before the YAML parser sees it,
// because the parser's memory grows with the square of the depth (100,000 levels in
// 500 KB took it past 19 GB).
const MaxDepth = 64

// bom is the UTF-8 byte-order mark some editors write at the start of a file.
var bom = []byte("\ufeff")

// trimBOM returns data without a leading UTF-8 byte-order mark.
func trimBOM(data []byte) []byte { return bytes.TrimPrefix(data, bom) }

// parseYAML parses data (without its byte-order mark) as YAML, refusing collections
// nested deeper than MaxDepth with an *InputError at the place the limit was passed.
// Two checks guard the parser: a scan of the bytes that allocates nothing and stops
// at the limit, so that a deep file is refused at once; and, for nesting the scan
// cannot see, a count on the scanner's tokens, whose memory is linear in the input.
func parseYAML(name string, data []byte) (*ast.File, error) {
	data = trimBOM(data)
	if line, col := prescanDepth(data); line > 0 {
		return nil, depthError(name, line, col)
	}
	tokens := lexer.Tokenize(string(data))
	if tk := tokenDepth(tokens); tk != nil {
		return nil, depthError(name, tk.Position.Line, tk.Position.Column)
	}
	return parser.Parse(tokens, 0)
}

func depthError(name string, line, col int) error {
	return &jobs.InputError{File: name, Line: line, Col: col,
		Msg: fmt.Sprintf("nested deeper than %d levels (a task file needs 5)", MaxDepth)}
}

// prescanDepth walks data once, allocating nothing, and returns the line and column
// (1-based, in characters) where collections nest deeper than MaxDepth, or 0, 0.
//
// It counts flow collections ([ and { where a value starts) and the block indicators
// (- and ?) that open a line, and steps over quoted scalars, comments and block
// scalars; a line that may continue a plain scalar does not open with an indicator.
// It is built to count only nesting that the YAML scanner sees too, so that
// it never refuses what the parser reads within the limit; nesting it misses, the
// token count of tokenDepth finds.
func prescanDepth(data []byte) (line, col int) {
	var (
		flow        int // open flow collections
		lead        int // block indicators opening the current line
		valueStart  = true
		blockIndent = -1 // inside a block scalar: the indentation of its header's line
		lineNo      = 1
		lineStart   = 0
		indent      = 0 // of the current line
		// plain: the last thing read was plain scalar text, which a line that
		// follows may continue ("0" then "[[["): that line's first `[`, `{`, `-` or
		// `?` is then not counted, as it may be text.
		plain bool
		cont  bool // the current line may continue a plain scalar: plain at its start
	)
	pos := func(i int) (int, int) { return lineNo, utf8.RuneCount(data[lineStart:i]) + 1 }
	space := func(i int) bool {
		return i >= len(data) || data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'
	}
	for i := 0; i < len(data); {
		if i == lineStart {
			j := i
			for j < len(data) && data[j] == ' ' {
				j++
			}
			indent = j - i
			k := j
			for k < len(data) && (data[k] == ' ' || data[k] == '\t' || data[k] == '\r') {
				k++
			}
			blank := k == len(data) || data[k] == '\n'
			if blockIndent >= 0 && (blank || indent > blockIndent) {
				i = skipLine(data, j)
				if i < len(data) {
					i++ // the newline
					lineNo++
					lineStart = i
				}
				continue
			}
			blockIndent = -1
			lead = 0
			if flow == 0 {
				valueStart = true
			}
			cont = flow == 0 && plain && !blank
			if j == i { // an empty indentation: go on with the line's first byte
				indent = 0
			} else {
				i = j
				continue
			}
		}
		c := data[i]
		switch {
		case c == '\n' || c == '\r' && (i+1 == len(data) || data[i+1] != '\n'): // a lone CR ends a line too, as the scanner reads it
			i++
			lineNo++
			lineStart = i
			continue
		case c == ' ' || c == '\t' || c == '\r':
			i++
			continue
		case c == '#' && (i == lineStart || data[i-1] == ' ' || data[i-1] == '\t'):
			i = skipLine(data, i)
			continue
		}
		if valueStart && cont && (c == '[' || c == '{' || c == '-' || c == '?') {
			valueStart = false // may be text of the scalar the line continues
		}
		cont = false
		if valueStart {
			plain = false
			switch c {
			case '[', '{':
				flow++
				if flow+lead > MaxDepth {
					return pos(i)
				}
				i++
				continue
			case '"', '\'':
				i, lineNo, lineStart = skipQuoted(data, i, lineNo, lineStart)
				valueStart = false
				continue
			case '-', '?':
				if flow == 0 && space(i+1) {
					lead++
					if lead > MaxDepth {
						return pos(i)
					}
					i++
					continue
				}
			case '|', '>':
				if flow == 0 {
					blockIndent = indent
					i = skipLine(data, i)
					continue
				}
			case '!', '&': // a tag or an anchor: the value comes after it
				for i < len(data) && !space(i) {
					i++
				}
				continue
			}
		}
		plain = false
		switch {
		case (c == ']' || c == '}') && flow > 0:
			flow--
			valueStart = false
			i++
			continue
		case c == ',' && flow > 0:
			valueStart = true
			i++
			continue
		case c == ':' && (space(i+1) || (flow > 0 && bytes.IndexByte([]byte(",]}\"'"), data[i+1]) >= 0)):
			// In a flow collection the scanner takes "a":"b" as a key and a quoted value.
			valueStart = true
			i++
			continue
		}
		valueStart, plain = false, true // plain scalar text
		i++
	}
	return 0, 0
}

// skipLine returns the index of the newline that ends the line holding data[i], or
// len(data).
func skipLine(data []byte, i int) int {
	if n := bytes.IndexByte(data[i:], '\n'); n >= 0 {
		return i + n
	}
	return len(data)
}

// skipQuoted steps over the quoted scalar that starts at data[i], counting the lines
// it spans, and returns the index after its closing quote.
func skipQuoted(data []byte, i, lineNo, lineStart int) (int, int, int) {
	q := data[i]
	for i++; i < len(data); i++ {
		switch c := data[i]; {
		case c == '\n':
			lineNo++
			lineStart = i + 1
		case q == '"' && c == '\\':
			if i+1 < len(data) && data[i+1] == '\n' {
				lineNo++
				lineStart = i + 2
			}
			i++
		case c == q && q == '\'' && i+1 < len(data) && data[i+1] == '\'':
			i++ // '' is a quote inside single quotes
		case c == q:
			return i + 1, lineNo, lineStart
		}
	}
	return i, lineNo, lineStart
}

// tokenDepth returns the token at which collections nest deeper than MaxDepth, as
// the parser will build them from tokens, or nil. Flow collections count by their
// brackets; block collections by the columns of their indicators and keys.
func tokenDepth(tokens token.Tokens) *token.Token { return tokensDeeper(tokens, MaxDepth) }

// tokensDeeper is tokenDepth with the limit limit.
func tokensDeeper(tokens token.Tokens, limit int) *token.Token {
	type level struct {
		col int
		seq bool // a block sequence; else a block mapping
	}
	var (
		flow  int
		block []level
	)
	for _, tk := range tokens {
		if tk.Position == nil {
			continue
		}
		switch tk.Type {
		case token.DocumentHeaderType:
			flow, block = 0, block[:0]
			continue
		case token.SequenceStartType, token.MappingStartType:
			flow++
		case token.SequenceEndType, token.MappingEndType:
			flow = max(flow-1, 0)
			continue
		case token.SequenceEntryType, token.MappingKeyType, token.MappingValueType:
			if flow > 0 {
				continue
			}
			col, seq := tk.Position.Column, tk.Type == token.SequenceEntryType
			if tk.Type == token.MappingValueType && tk.Prev != nil && tk.Prev.Position != nil &&
				tk.Prev.Position.Line == tk.Position.Line {
				col = tk.Prev.Position.Column // a mapping sits at its key's column
			}
			for len(block) > 0 {
				top := block[len(block)-1]
				if top.col > col || (top.col == col && top.seq && !seq) {
					block = block[:len(block)-1]
					continue
				}
				break
			}
			// A sequence may sit at its parent key's column (`tasks:` then `- run: x`).
			if n := len(block); n == 0 || block[n-1].col < col || (block[n-1].col == col && seq && !block[n-1].seq) {
				block = append(block, level{col, seq})
			}
		default:
			continue
		}
		if flow+len(block) > limit {
			return tk
		}
	}
	return nil
}

// decodeNode decodes node into v as yaml.NodeToValue does, strictly. A panic of the
// YAML library on a tree it cannot read (a tag on a value of the wrong kind has been
// one) becomes an *InputError at the first tag under node, the likely culprit, else at
// node's start: bad input is an error, never a crash.
func (p *fileParser) decodeNode(node ast.Node, v any) (err error) {
	defer func() {
		if recover() != nil {
			line, col := nodePos(node)
			if tag := firstTag(node); tag != nil {
				line, col = nodePos(tag)
			}
			err = &jobs.InputError{File: p.name, Line: line, Col: col, Msg: "malformed YAML the parser cannot read"}
		}
	}()
	return yaml.NodeToValue(node, v, yaml.DisallowUnknownField(), yaml.Strict())
}

// firstTag returns the first tag node under n, or nil.
func firstTag(n ast.Node) ast.Node {
	var found ast.Node
	ast.Walk(visitFunc(func(n ast.Node) bool {
		if _, ok := n.(*ast.TagNode); ok && found == nil {
			found = n
		}
		return found == nil
	}), n)
	return found
}

// visitFunc is an ast.Visitor that visits the nodes under a node while it returns true.
type visitFunc func(ast.Node) bool

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	if n == nil || reflect.ValueOf(n).IsNil() || !f(n) {
		return nil
	}
	return f
}
