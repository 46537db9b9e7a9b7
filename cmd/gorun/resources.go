package main

import (
	"fmt"
	"maps"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pipeline"
)

// ResourceFlags set the run's capacity, for the tasks that ask for resources or
// labels; exec and validate share them.
type ResourceFlags struct {
	CPUs   string
	Memory string
	GPUs   string
	Labels []string
}

func (g *ResourceFlags) addFlags(f *pflag.FlagSet) {
	f.StringVar(&g.CPUs, "cpus", "", "CPUs the running tasks may hold at once, for tasks that ask for resources.cpu (2, 0.5) (default: this machine's CPUs; with --broker: the live workers')")
	f.StringVar(&g.Memory, "memory", "", "memory the running tasks may hold at once, for tasks that ask for resources.memory (16GiB) (default: the memory available now; with --broker: the live workers')")
	f.StringVar(&g.GPUs, "gpus", "", "GPUs tasks asking for resources.gpu are handed, in CUDA_VISIBLE_DEVICES: a list (0,1 or UUIDs), a count N (0 to N-1), or none (default: CUDA_VISIBLE_DEVICES, else none)")
	f.StringSliceVar(&g.Labels, "label", nil, "what this machine is, for tasks whose on: requires labels: KEY=VALUE, repeated or comma-separated (gpu=a100)")
}

// resolve fills the capacity settings of o: those given, the others nil.
func (g *ResourceFlags) resolve(f *pflag.FlagSet, s *sources, o *ExecOptions) error {
	if f.Changed("cpus") {
		milli, err := input.ParseCPU(g.CPUs)
		if err != nil {
			return s.errorf("cpus", "%v", err)
		}
		o.CPUs = &milli
	}
	if f.Changed("memory") {
		n, err := input.ParseSize(g.Memory)
		if err != nil {
			return s.errorf("memory", "%v", err)
		}
		o.Memory = &n
	}
	if f.Changed("gpus") {
		gpus, err := parseGPUs(g.GPUs)
		if err != nil {
			return s.errorf("gpus", "%v", err)
		}
		o.GPUs = gpus
	}
	for _, l := range g.Labels {
		k, v, err := input.ParseLabel(l)
		if err != nil {
			return s.errorf("label", "%v", err)
		}
		if o.Labels == nil {
			o.Labels = map[string]string{}
		}
		o.Labels[k] = v
	}
	if o.Broker != "" && o.Labels != nil {
		return usagef(s.cmd, "--label says what this machine is: with --broker the tasks run on the workers (gorun worker --label)")
	}
	return nil
}

// parseGPUs reads --gpus: none, a count N (devices 0 to N-1), or a list of devices
// (0,1; a single device as 3, with its comma). The result is never nil.
func parseGPUs(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return []string{}, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 1024 {
			return nil, fmt.Errorf("invalid number of GPUs %d: want 0 to 1024, or a list of devices (0,1)", n)
		}
		gpus := make([]string, n)
		for i := range gpus {
			gpus[i] = strconv.Itoa(i)
		}
		return gpus, nil
	}
	gpus := []string{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.ContainsAny(item, " \t=") {
			return nil, fmt.Errorf("invalid GPU %q: want a device index or UUID", item)
		}
		for _, g := range gpus {
			if g == item {
				return nil, fmt.Errorf("GPU %s is given twice", item)
			}
		}
		gpus = append(gpus, item)
	}
	return gpus, nil
}

// visibleGPUs returns the devices CUDA_VISIBLE_DEVICES names, in its order, up to the
// first that CUDA would take as invalid (a negative index: CUDA hides it and those
// after it); none when it is not set.
func visibleGPUs() []string {
	gpus := []string{}
	for item := range strings.SplitSeq(os.Getenv("CUDA_VISIBLE_DEVICES"), ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.HasPrefix(item, "-") {
			break
		}
		gpus = append(gpus, item)
	}
	return gpus
}

// localCapacity is the run's capacity on this machine: what the flags give, else its
// CPUs, the memory available now, and the GPUs of CUDA_VISIBLE_DEVICES.
func (o *ExecOptions) localCapacity() jobs.Capacity {
	c := jobs.Capacity{MilliCPU: int64(runtime.NumCPU()) * 1000, GPUs: o.GPUs, Labels: maps.Clone(o.Labels)}
	if o.CPUs != nil {
		c.MilliCPU = *o.CPUs
	}
	if o.Memory != nil {
		c.Memory = *o.Memory
	} else if free, err := (pipeline.ProcMachine{}).MemAvailable(); err == nil {
		c.Memory = free
	}
	if c.GPUs == nil {
		c.GPUs = visibleGPUs()
	}
	return c
}

// fitCheck is what it takes to refuse a task of a task file that could never start,
// once the run's capacity is known.
type fitCheck struct {
	file  *input.File
	tasks []jobs.Task
}

// asks reports whether a task asks for resources or labels: only then is there
// anything to check, and a capacity to hand out.
func (c *fitCheck) asks() bool { return c != nil && c.file.AsksResources() }

// check refuses a task that asks for more than c holds, or (labels) for a label it
// lacks.
func (c *fitCheck) check(capacity *jobs.Capacity, labels bool) error {
	if !c.asks() {
		return nil
	}
	return c.file.CheckCapacity(c.tasks, capacity, labels)
}
