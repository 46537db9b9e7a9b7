package input

import (
	"slices"

	"github.com/goccy/go-yaml/ast"
)

// decodeFile decodes the root of a task file into raw, as decodeNode(root, raw) does,
// but reads each plain task (string and whole-number scalars, lists of strings, under
// the keys a task takes, each once) straight from its nodes: the YAML library decodes
// by reflection and builds its map of a struct's fields again for every task, which
// was half the time of a large file. Anything else — a task with `env` or
// `retry_on`, a null, a number where a string goes, a tag — goes to the library, task
// by task; a file with anchors, aliases or merge keys, and any error, goes to the
// library whole, so that what is read and every error are exactly the library's.
func (p *fileParser) decodeFile(root ast.Node, raw *rawFile) error {
	if !p.slow && p.fast(root, raw) {
		return nil
	}
	*raw = rawFile{}
	return p.decodeNode(root, raw)
}

// fast is decodeFile's quick way; false when it cannot be taken, or meets an error.
func (p *fileParser) fast(root ast.Node, raw *rawFile) bool {
	m, ok := root.(*ast.MappingNode)
	if !ok {
		return false
	}
	at := -1
	for i, mv := range m.Values {
		k, ok := mv.Key.(*ast.StringNode)
		if !ok { // a key that is not a string (0:, a tag): what it means is the library's to say
			return false
		}
		if k.Value == "tasks" {
			if at >= 0 {
				return false
			}
			at = i
		}
	}
	if at < 0 {
		return false
	}
	seq, ok := m.Values[at].Value.(*ast.SequenceNode)
	if !ok {
		return false
	}
	rest := *m
	rest.Values = slices.Delete(slices.Clone(m.Values), at, at+1)
	if hasReferences(&rest) || p.decodeNode(&rest, raw) != nil {
		return false
	}
	tasks := make([]rawTask, len(seq.Values))
	for i, n := range seq.Values {
		if plainTask(n, &tasks[i]) {
			continue
		}
		tasks[i] = rawTask{}
		if hasReferences(n) || p.decodeNode(n, &tasks[i]) != nil {
			return false
		}
	}
	raw.Tasks = &tasks
	return true
}

// hasReferences reports whether an anchor, an alias or a merge key is under n: they
// tie nodes to each other, which only the library resolves.
func hasReferences(n ast.Node) bool {
	found := false
	ast.Walk(visitFunc(func(n ast.Node) bool {
		switch n.(type) {
		case *ast.AnchorNode, *ast.AliasNode, *ast.MergeKeyNode:
			found = true
		}
		return !found
	}), n)
	return found
}

// plainTask reads the task n into rt when it is plain; false (rt partly written)
// when it is not.
func plainTask(n ast.Node, rt *rawTask) bool {
	var pairs []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		pairs = m.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{m}
	default:
		return false
	}
	seen := map[string]bool{}
	for _, mv := range pairs {
		k, ok := mv.Key.(*ast.StringNode)
		if !ok || seen[k.Value] {
			return false
		}
		seen[k.Value] = true
		switch k.Value {
		case "id":
			rt.ID, ok = plainString(mv.Value)
		case "run":
			rt.Run, ok = plainString(mv.Value)
		case "cmd":
			rt.Cmd, ok = plainStrings(mv.Value)
		case "needs":
			rt.Needs, ok = plainStrings(mv.Value)
		case "limits":
			rt.Limits, ok = plainStrings(mv.Value)
		case "priority":
			rt.Priority, ok = plainInt(mv.Value)
		case "estimate":
			rt.Estimate, ok = plainString(mv.Value)
		case "timeout":
			rt.Timeout, ok = plainString(mv.Value)
		case "retry_delay":
			rt.RetryDelay, ok = plainString(mv.Value)
		case "shell":
			rt.Shell, ok = plainString(mv.Value)
		case "dir":
			rt.Dir, ok = plainString(mv.Value)
		case "retries":
			rt.Retries, ok = plainInt(mv.Value)
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

func plainString(n ast.Node) (*string, bool) {
	s, ok := n.(*ast.StringNode)
	if !ok {
		return nil, false
	}
	v := s.Value
	return &v, true
}

func plainInt(n ast.Node) (*int, bool) {
	i, ok := n.(*ast.IntegerNode)
	if !ok {
		return nil, false
	}
	v, ok := i.Value.(int64)
	if !ok {
		return nil, false
	}
	x := int(v)
	return &x, true
}

func plainStrings(n ast.Node) ([]string, bool) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok || len(seq.Values) == 0 {
		return nil, false
	}
	list := make([]string, 0, len(seq.Values))
	for _, v := range seq.Values {
		s, ok := v.(*ast.StringNode)
		if !ok {
			return nil, false
		}
		list = append(list, s.Value)
	}
	return list, true
}
