package jobs

import "testing"

func TestInputErrorIsOneLine(t *testing.T) {
	e := &InputError{File: "f.yaml", Line: 3, Col: 5, Key: "0\n00", Msg: "bad\tvalue"}
	want := `f.yaml:3:5: 0\n00: bad\tvalue`
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
