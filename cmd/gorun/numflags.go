package main

import (
	"runtime"

	"github.com/gorun/gorun/internal/input"
)

// The flags that take GNU parallel's numbers: a --timeout in bare seconds or as a
// percentage of the median duration, a -j relative to the CPUs. Each is a pflag.Value,
// so that a value from the command line, a GORUN_* variable and the config file goes
// through the same parser.

// timeoutValue is --timeout: 30, 30s, 1m30s, 200%.
type timeoutValue struct{ t input.Timeout }

func (v *timeoutValue) String() string { return v.t.String() }
func (v *timeoutValue) Type() string   { return "timeout" }
func (v *timeoutValue) Set(s string) error {
	t, err := input.ParseTimeout(s)
	if err != nil {
		return err
	}
	v.t = t
	return nil
}

// workersValue is -j: 8, +2, -1, 200%. A relative value is resolved against the CPUs
// of this machine when it is set.
type workersValue struct {
	n    int
	text string
}

func (v *workersValue) String() string {
	if v.text == "" {
		return "0"
	}
	return v.text
}
func (v *workersValue) Type() string { return "workers" }
func (v *workersValue) Set(s string) error {
	n, err := input.ParseWorkers(s, runtime.NumCPU())
	if err != nil {
		return err
	}
	v.n, v.text = n, s
	return nil
}
