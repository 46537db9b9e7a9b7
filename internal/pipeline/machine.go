package pipeline

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

// Machine reports how busy this machine is, for --load and --memfree.
type Machine interface {
	// Load returns the machine's load and what it is: PSI's "cpu some avg10" (the
	// share of the last 10 s, in percent, in which some task waited for a CPU) where
	// the kernel has it, else the 1-minute load average.
	Load() (load float64, source string, err error)
	// MemAvailable returns the memory available for new work, in bytes.
	MemAvailable() (uint64, error)
}

// ProcMachine reads Linux's /proc: /proc/pressure/cpu, /proc/loadavg and
// /proc/meminfo. Its zero value is ready to use.
type ProcMachine struct{}

// Load implements Machine.
func (ProcMachine) Load() (float64, string, error) {
	if data, err := os.ReadFile("/proc/pressure/cpu"); err == nil {
		for line := range strings.Lines(string(data)) {
			if rest, ok := strings.CutPrefix(line, "some "); ok {
				for field := range strings.FieldsSeq(rest) {
					if v, ok := strings.CutPrefix(field, "avg10="); ok {
						f, err := strconv.ParseFloat(v, 64)
						return f, "psi cpu some avg10", err
					}
				}
			}
		}
	}
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, "", fmt.Errorf("read load: %w", err)
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 0, "", fmt.Errorf("read load: empty /proc/loadavg")
	}
	f, err := strconv.ParseFloat(fields[0], 64)
	return f, "load average", err
}

// MemAvailable implements Machine: MemAvailable of /proc/meminfo.
func (ProcMachine) MemAvailable() (uint64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("read available memory: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("read available memory: no MemAvailable in /proc/meminfo")
}

// MachineInterval is how often the machine gate reads the machine.
const MachineInterval = time.Second

// machineGate holds back every start while the machine is busy (a pool.Gate): while
// its load is above maxLoad (0: no bound) or its available memory below minFree (0:
// no bound). It reads the machine at most once a MachineInterval, and tells notify
// when it starts and stops holding back, and why ("load: ..." or "memfree: ...", ""
// when it stops). A machine it cannot read holds nothing back.
//
// The pool's dispatching goroutine owns a machineGate.
type machineGate struct {
	maxLoad float64
	minFree uint64
	m       Machine
	notify  func(waiting string)
	read    time.Time
	why     string // why it holds back now; "" when it does not
	short   bool   // below half of minFree at the last reading, and no task stopped since
}

// preempt reports whether to stop the youngest running task (pool.Options.Preempt):
// once a reading, while the available memory is below half of minFree, as GNU
// parallel's --memfree does.
func (g *machineGate) preempt(now time.Time) (bool, time.Time) {
	if g.read.IsZero() || now.Sub(g.read) >= MachineInterval {
		g.sample(now)
	}
	stop := g.short
	g.short = false
	return stop, g.read.Add(MachineInterval)
}

// Admit implements pool.Gate.
func (g *machineGate) Admit(t jobs.Task, now time.Time) (bool, time.Time, string) {
	if g.read.IsZero() || now.Sub(g.read) >= MachineInterval {
		g.sample(now)
	}
	if g.why == "" {
		return true, time.Time{}, ""
	}
	return false, g.read.Add(MachineInterval), kind(g.why)
}

func (g *machineGate) sample(now time.Time) {
	g.read = now
	why := ""
	if g.maxLoad > 0 {
		if load, source, err := g.m.Load(); err == nil && load > g.maxLoad {
			why = fmt.Sprintf("load: %s %.2f above %g", source, load, g.maxLoad)
		}
	}
	g.short = false
	if g.minFree > 0 {
		if free, err := g.m.MemAvailable(); err == nil && free < g.minFree {
			g.short = free < g.minFree/2
			if why == "" {
				why = fmt.Sprintf("memfree: %s available, below %s", jobs.FormatBytes(free), jobs.FormatBytes(g.minFree))
			}
		}
	}
	if kind(why) != kind(g.why) && g.notify != nil { // a new load figure is no news
		g.notify(why)
	}
	g.why = why
}

// kind returns what a reason to wait is about: "load" or "memfree" ("" for none).
func kind(why string) string {
	k, _, _ := strings.Cut(why, ":")
	return k
}

// Start implements pool.Gate.
func (g *machineGate) Start(jobs.Task, time.Time) {}

// Done implements pool.Gate.
func (g *machineGate) Done(jobs.Task) {}
