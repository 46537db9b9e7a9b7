package input

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/gorun/gorun/internal/jobs"
)

// resources converts `resources:` and `on:` of a task or of `defaults`.
func (p *fileParser) resources(path, where string, r *RawSettings, d *jobs.Defaults) error {
	if rr := r.Resources; rr != nil {
		rpath, rwhere := path+".resources", where+"resources."
		if rr.CPU != nil {
			milli, err := cpuOf(rr.CPU)
			if err != nil {
				return p.errAt(rpath+".cpu", rwhere+"cpu", "%v", err)
			}
			d.MilliCPU = &milli
		}
		if rr.Memory != nil {
			n, err := memoryOf(rr.Memory)
			if err != nil {
				return p.errAt(rpath+".memory", rwhere+"memory", "%v", err)
			}
			d.Memory = &n
		}
		if rr.GPU != nil {
			if *rr.GPU < 0 {
				return p.errAt(rpath+".gpu", rwhere+"gpu", "must be 0 or more, got %d", *rr.GPU)
			}
			d.GPU = rr.GPU
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.On)) {
		if err := CheckLabel(k, r.On[k]); err != nil {
			return p.errAt(path+".on."+k, where+"on."+k, "%v", err)
		}
	}
	d.On = r.On
	return nil
}

// cpuOf converts a cpu request: a number of CPUs, whole or not (0.5), to thousandths.
func cpuOf(v any) (int64, error) {
	var f float64
	switch x := v.(type) {
	case uint64:
		f = float64(x)
	case int64:
		f = float64(x)
	case float64:
		f = x
	case string:
		return ParseCPU(x)
	default:
		return 0, fmt.Errorf("want a number of CPUs (2, 0.5), got %s", describeValue(v))
	}
	return milliCPU(f, fmt.Sprint(v))
}

// ParseCPU reads a number of CPUs, whole or not (4, 0.5), as thousandths of a CPU.
func ParseCPU(s string) (int64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, fmt.Errorf("invalid number of CPUs %q: want a number (2, 0.5)", s)
	}
	return milliCPU(f, s)
}

func milliCPU(f float64, as string) (int64, error) {
	if math.IsNaN(f) || f < 0 || f > 1e9 {
		return 0, fmt.Errorf("invalid number of CPUs %q: want a number from 0 up (2, 0.5)", as)
	}
	milli := int64(math.Round(f * 1000))
	if f > 0 && milli == 0 {
		return 0, fmt.Errorf("invalid number of CPUs %q: the smallest share is 0.001", as)
	}
	return milli, nil
}

// memoryOf converts a memory request: a size (512MiB, 4GiB, 4G) or a number of bytes.
func memoryOf(v any) (uint64, error) {
	switch x := v.(type) {
	case uint64:
		return x, nil
	case int64:
		if x >= 0 {
			return uint64(x), nil
		}
	case string:
		return ParseSize(x)
	}
	return 0, fmt.Errorf("want a size (512MiB, 4GiB) or a number of bytes, got %s", describeValue(v))
}

// CheckLabel refuses a label a machine could not advertise or a task require: a key
// must be a word of letters, digits, -, _, . or /; a value must not be empty nor hold
// blanks, commas or =.
func CheckLabel(key, value string) error {
	if key == "" || strings.IndexFunc(key, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./", r))
	}) >= 0 {
		return fmt.Errorf("invalid label name %q: want letters, digits, -, _, . or /", key)
	}
	if value == "" || strings.ContainsAny(value, " \t\r\n,=") {
		return fmt.Errorf("invalid value %q of label %s: want a word without blanks, commas or =", value, key)
	}
	return nil
}

// ParseLabel reads a label as given on the command line: KEY=VALUE.
func ParseLabel(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		return "", "", fmt.Errorf("invalid label %q: want KEY=VALUE (gpu=a100)", s)
	}
	return key, value, CheckLabel(key, value)
}

// askResources reports whether a task of f, or its defaults, asks for resources or
// labels.
func askResources(f *File) bool {
	asks := func(d *jobs.Defaults) bool {
		return d.MilliCPU != nil || d.Memory != nil || d.GPU != nil || len(d.On) > 0
	}
	if asks(&f.Defaults) {
		return true
	}
	for i := range f.specList.Len() {
		if sp := f.Spec(i); asks(&sp.Defaults) {
			return true
		}
	}
	return false
}

// AsksResources reports whether a task of f asks for resources or labels: only then
// does the run's capacity matter.
func (f *File) AsksResources() bool { return f.parser != nil }

// CheckCapacity refuses a task of f, resolved as tasks (f.Tasks), that could never
// start: it asks for more of a resource than c holds even with nothing else running,
// or, when labels is true, for a label c lacks. The error is an *InputError at the
// key that asks: the task's own, or the defaults' it inherits.
func (f *File) CheckCapacity(tasks []jobs.Task, c *jobs.Capacity, labels bool) error {
	if f.parser == nil {
		return nil
	}
	next := 0 // the first task of spec i: a matrix's combinations ask for the same
	for i := range f.specList.Len() {
		if next >= len(tasks) {
			break
		}
		t := &tasks[next]
		next++
		if m := f.matrix(i); m != nil {
			next += m.size - 1
		}
		spec := f.Spec(i)
		sp := &spec.Defaults
		if res := c.Over(t.Resources); res != "" {
			own := map[string]bool{"cpu": sp.MilliCPU != nil, "memory": sp.Memory != nil, "gpu": sp.GPU != nil}[res]
			asked := map[string]string{"cpu": jobs.FormatCPU(t.Resources.MilliCPU), "memory": jobs.FormatBytes(t.Resources.Memory),
				"gpu": strconv.Itoa(t.Resources.GPU)}[res]
			flag := map[string]string{"cpu": "--cpus", "memory": "--memory", "gpu": "--gpus"}[res]
			return f.errAt(i, own, "resources."+res, "asks for %s %s, and the run has %s (%s): it could never start",
				res, asked, c.Describe(res), flag)
		}
		if !labels {
			continue
		}
		if miss := jobs.Missing(t.On, c.Labels); miss != "" {
			key, _, _ := strings.Cut(miss, "=")
			have := jobs.FormatLabels(c.Labels)
			if have == "" {
				have = "none"
			}
			return f.errAt(i, sp.On[key] != "", "on."+key, "needs label %s, and the run's labels are %s (--label): it could never start",
				miss, have)
		}
	}
	return nil
}

// errAt places an error at key of task i when the task gives it itself (own), else at
// the key of `defaults` it inherits.
func (f *File) errAt(i int, own bool, key, format string, args ...any) error {
	path, where := "$.defaults."+key, fmt.Sprintf("task %q: defaults.%s", f.ID(i), key)
	if own {
		path, where = fmt.Sprintf("$.tasks[%d].%s", i, key), fmt.Sprintf("task %q: %s", f.ID(i), key)
	}
	return f.parser.errAt(path, where, format, args...)
}
