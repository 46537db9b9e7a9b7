package pipeline

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The scheduling benchmarks run the real scheduler on the wall clock with a runner
// that sleeps for each task's time (no processes): they measure the order the
// scheduler chooses, not what a process costs. `make bench` runs them once each
// (-benchtime 1x); docs/benchmarks.md quotes them.

// BenchmarkScheduleDAG: the makespan of seeded random graphs of 200 tasks with skewed
// durations (randomDAG) at 4 workers, critical path first (with estimates, and
// counting 1 per task without) against input order: the mean over seeds 1 to 3.
func BenchmarkScheduleDAG(b *testing.B) {
	for _, c := range []struct {
		name       string
		estimates  bool
		inputOrder bool
	}{
		{"order=input", true, true},
		{"order=critical-path/estimates", true, false},
		{"order=critical-path/task-count", false, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			var total time.Duration
			runs := 0
			for b.Loop() {
				for seed := uint64(1); seed <= 3; seed++ {
					total += runFile(b, randomDAG(seed, 200, c.estimates), Options{Workers: 4, InputOrder: c.inputOrder}).makespan()
					runs++
				}
			}
			b.ReportMetric(total.Seconds()/float64(runs), "makespan-s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkPriorityWait: 200 tasks of 20ms at 4 workers, one in 10 of priority 10, all
// ready at once: how long the high-priority tasks wait to start (mean and most) and
// how long the others wait, with priorities and in input order.
func BenchmarkPriorityWait(b *testing.B) {
	var file strings.Builder
	file.WriteString("tasks:\n")
	for i := range 200 {
		prio := 0
		if i%10 == 9 {
			prio = 10
		}
		fmt.Fprintf(&file, "  - {id: t%d, run: sleep-20ms, priority: %d}\n", i, prio)
	}
	for _, inputOrder := range []bool{false, true} {
		name := "order=priority"
		if inputOrder {
			name = "order=input"
		}
		b.Run(name, func(b *testing.B) {
			var hiSum, hiMax, loSum time.Duration
			var hiN, loN int
			for b.Loop() {
				sl := runFile(b, file.String(), Options{Workers: 4, InputOrder: inputOrder})
				first := sl.starts["t0"]
				for _, st := range sl.starts {
					if st.Before(first) {
						first = st
					}
				}
				for i := range 200 {
					wait := sl.starts[fmt.Sprintf("t%d", i)].Sub(first)
					if i%10 == 9 {
						hiSum += wait
						hiMax = max(hiMax, wait)
						hiN++
					} else {
						loSum += wait
						loN++
					}
				}
			}
			b.ReportMetric(hiSum.Seconds()*1000/float64(hiN), "high-wait-mean-ms")
			b.ReportMetric(hiMax.Seconds()*1000, "high-wait-max-ms")
			b.ReportMetric(loSum.Seconds()*1000/float64(loN), "other-wait-mean-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
