package input

import "strings"

// TagString is a --tagstring template: text with replacement strings ({}, {.}, {/},
// {//}, {/.}, {#}, {%}, {1}, {2.}, …) that becomes the tag of each output line of a task. It is only
// ever text: nothing runs it. A TagString is immutable and safe for concurrent use.
type TagString struct {
	parts []part
}

// NewTagString compiles s.
func NewTagString(s string) *TagString { return &TagString{parts: splitWord(s)} }

// Expand returns the tag for values (one per input source), the task's 1-based
// sequence number and its slot.
func (ts *TagString) Expand(values []string, seq, slot int) string {
	var b strings.Builder
	for _, p := range ts.parts {
		if p.isRe {
			b.WriteString(p.repl.Value(values, seq, slot))
		} else {
			b.WriteString(p.lit)
		}
	}
	return b.String()
}
