package jobs

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Resources are what one attempt of a task holds while it runs: CPUs (in thousandths,
// so that half a CPU is exact), memory and GPUs. The zero value asks for nothing; such
// a task is bounded by the run's workers alone.
type Resources struct {
	MilliCPU int64  `json:"cpu_milli,omitempty"` // thousandths of a CPU: 500 is cpu: 0.5
	Memory   uint64 `json:"memory,omitempty"`    // bytes
	GPU      int    `json:"gpu,omitempty"`       // GPUs, each a whole device
}

// IsZero reports whether r asks for nothing.
func (r Resources) IsZero() bool { return r == Resources{} }

// String writes r as a task file would: "cpu 0.5, memory 512MiB, gpu 1"; "-" for
// nothing.
func (r Resources) String() string {
	var parts []string
	if r.MilliCPU > 0 {
		parts = append(parts, "cpu "+FormatCPU(r.MilliCPU))
	}
	if r.Memory > 0 {
		parts = append(parts, "memory "+FormatBytes(r.Memory))
	}
	if r.GPU > 0 {
		parts = append(parts, "gpu "+strconv.Itoa(r.GPU))
	}
	if parts == nil {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// FormatCPU writes thousandths of a CPU as a number of CPUs: 2, 0.5, 1.25.
func FormatCPU(milli int64) string {
	return strconv.FormatFloat(float64(milli)/1000, 'f', -1, 64)
}

// FormatBytes writes a number of bytes as 1.5GiB, 512MiB, 300KiB or 12B.
func FormatBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f, u := float64(n), 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	return strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), ".0") + units[u]
}

// Capacity is what a run hands out to the attempts running at once: a task starts
// only when its Resources fit in what the running ones leave (see
// pipeline.Options.Capacity), and only where its labels (Task.On) are all given.
type Capacity struct {
	MilliCPU int64
	Memory   uint64
	// GPUs are the devices, by the names CUDA_VISIBLE_DEVICES takes (indices or
	// UUIDs); a task that asks for n of them gets n free ones.
	GPUs []string
	// Labels are what the machine that runs the tasks is (gpu=a100); a task's `on:`
	// must be a subset.
	Labels map[string]string
}

// Over returns the first resource of r that c can never hold, even with nothing else
// running: "cpu", "memory" or "gpu"; "" when r fits.
func (c *Capacity) Over(r Resources) string {
	switch {
	case r.MilliCPU > c.MilliCPU:
		return "cpu"
	case r.Memory > c.Memory:
		return "memory"
	case r.GPU > len(c.GPUs):
		return "gpu"
	}
	return ""
}

// Describe writes what the capacity holds of the resource named: "4 CPUs",
// "2GiB of memory", "GPUs 0,1" or "no GPU".
func (c *Capacity) Describe(resource string) string {
	switch resource {
	case "cpu":
		return FormatCPU(c.MilliCPU) + " CPUs"
	case "memory":
		return FormatBytes(c.Memory) + " of memory"
	}
	if len(c.GPUs) == 0 {
		return "no GPU"
	}
	return "GPUs " + strings.Join(c.GPUs, ",")
}

// Missing returns the first label of on, in key order, that labels lack or give
// another value: "gpu=a100"; "" when labels hold them all.
func Missing(on, labels map[string]string) string {
	for _, k := range slices.Sorted(maps.Keys(on)) {
		if v, ok := labels[k]; !ok || v != on[k] {
			return k + "=" + on[k]
		}
	}
	return ""
}

// FormatLabels writes labels as k=v pairs in key order, comma-separated.
func FormatLabels(labels map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(labels)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + labels[k])
	}
	return b.String()
}
