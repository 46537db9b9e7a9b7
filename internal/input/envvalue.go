package input

import (
	"fmt"
	"strings"
)

// envValue is one value of a task file's `env` as written: a literal (a string, or
// a number or boolean written as it reads), or `{from_worker: NAME}`, the name of a
// variable of the environment of the machine that runs the task. The parser checks
// it (see envOf), where it can name its position.
type envValue struct{ raw any }

// UnmarshalYAML implements the YAML decoder's InterfaceUnmarshaler.
func (v *envValue) UnmarshalYAML(unmarshal func(any) error) error { return unmarshal(&v.raw) }

// envOf returns the literal value of v, or the variable it reads from the running
// machine (ref true), or a message saying why it is neither.
func envOf(v envValue) (value string, ref bool, bad string) {
	switch x := v.raw.(type) {
	case nil:
		return "", false, ""
	case string:
		return x, false, ""
	case map[string]any:
		name, ok := x["from_worker"].(string)
		if len(x) != 1 || !ok || name == "" {
			return "", false, "want a string, or {from_worker: VARIABLE}"
		}
		if !validVarName(name) {
			return "", false, fmt.Sprintf("from_worker: invalid variable name %q", name)
		}
		return name, true, ""
	case []any:
		return "", false, "want a string, or {from_worker: VARIABLE}"
	}
	return fmt.Sprint(v.raw), false, ""
}

// validVarName tells whether name can be an environment variable's name.
func validVarName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "=\x00")
}
