package jobs

import (
	"strconv"
	"unicode/utf8"
)

// Input returns what the input gave for a task that it did not name: a template's
// item, or a command line read from a stream; "" for a task of a task file, or one the
// input named. It names the task better than its number does (task-25787).
func (t *Task) Input() string {
	switch {
	case t.Named || t.Invalid != nil:
		return ""
	case t.Template != nil:
		return t.Item
	case t.Line > 0:
		return t.Run
	}
	return ""
}

// MaxLabelRunes bounds the input shown in a Label; a longer one is ellipsised.
const MaxLabelRunes = 40

// Label returns how a person reads which task this is: its id, and for a task with an
// input (see Task.Input) that input, quoted, control characters and invalid UTF-8
// escaped, ellipsised after MaxLabelRunes: task-3 "photo 1.jpg". It is always one line.
func Label(id, input string) string {
	if input == "" {
		return id
	}
	return id + " " + QuoteInput(input)
}

// QuoteInput quotes an input value for a one-line display: as a Go string literal
// (control characters and invalid UTF-8 escaped), ellipsised after MaxLabelRunes.
func QuoteInput(input string) string {
	cut := false
	if utf8.RuneCountInString(input) > MaxLabelRunes {
		n := 0
		for i := range input {
			if n == MaxLabelRunes {
				input, cut = input[:i], true
				break
			}
			n++
		}
	}
	q := strconv.Quote(input)
	if cut {
		q = q[:len(q)-1] + `…"`
	}
	return q
}
