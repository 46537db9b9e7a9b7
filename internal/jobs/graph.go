package jobs

import (
	"fmt"
	"strings"
	"time"
)

// Graph holds the `needs` of a task file's tasks: which tasks each task waits for.
// It schedules in O(tasks + edges): a task becomes ready the moment its last need
// succeeds, and when a need does not succeed, everything that depends on it, directly
// or not, is skipped at once. A Graph is used by one goroutine at a time.
type Graph struct {
	tasks      []Task
	dependents [][]int // by position: the positions that need it
	waiting    []int   // by position: needs not yet succeeded
	final      []bool  // by position: ended (or skipped)
	taken      []bool  // by position: handed to the runner, which reports its end
}

// NewGraph builds the graph of tasks, whose needs (by position in tasks) are checked:
// no unknown task, no cycle.
func NewGraph(tasks []Task, needs [][]int) *Graph {
	g := &Graph{tasks: tasks, dependents: make([][]int, len(tasks)), waiting: make([]int, len(tasks)),
		final: make([]bool, len(tasks)), taken: make([]bool, len(tasks))}
	for i, ns := range needs {
		g.waiting[i] = len(ns)
		for _, n := range ns {
			g.dependents[n] = append(g.dependents[n], i)
		}
	}
	return g
}

// Len returns the number of tasks.
func (g *Graph) Len() int { return len(g.tasks) }

// Task returns the task at position i.
func (g *Graph) Task(i int) *Task { return &g.tasks[i] }

// Final reports whether the task at position i has ended or been skipped.
func (g *Graph) Final(i int) bool { return g.final[i] }

// Ready reports whether every task that the task at position i needs has succeeded.
func (g *Graph) Ready(i int) bool { return g.waiting[i] == 0 }

// Take marks the task at position i as handed to the runner: from then on it reports
// its own end (as not started, if the run stops first), and is never skipped here.
func (g *Graph) Take(i int) { g.taken[i] = true }

// Taken reports whether the task at position i was handed to the runner.
func (g *Graph) Taken(i int) bool { return g.taken[i] }

// Roots returns the positions of the tasks that need nothing, in input order.
func (g *Graph) Roots() []int {
	var r []int
	for i, w := range g.waiting {
		if w == 0 {
			r = append(r, i)
		}
	}
	return r
}

// Skip is a task that will not run because a task it needs did not succeed.
type Skip struct {
	Pos    int
	Reason string
}

// Finish records the end of the task at position i with status st, and returns the
// tasks that became ready (in input order of their last need's end) and those that
// are skipped because of it, transitively. Finishing a task twice does nothing.
func (g *Graph) Finish(i int, st Status) (ready []int, skipped []Skip) {
	if g.final[i] {
		return nil, nil
	}
	g.final[i] = true
	if st == Succeeded {
		for _, d := range g.dependents[i] {
			if g.waiting[d]--; g.waiting[d] == 0 && !g.final[d] {
				ready = append(ready, d)
			}
		}
		return ready, nil
	}
	// Skip every task that depends on i, directly or not, naming what it waited for.
	type item struct {
		pos    int
		reason string
	}
	stack := []item{}
	for _, d := range g.dependents[i] {
		stack = append(stack, item{d, fmt.Sprintf("needs %q, which %s", g.tasks[i].ID, verb(st))})
	}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if g.final[it.pos] || g.taken[it.pos] {
			continue // ended, or it will report its own end
		}
		g.final[it.pos] = true
		skipped = append(skipped, Skip{Pos: it.pos, Reason: it.reason})
		for _, d := range g.dependents[it.pos] {
			stack = append(stack, item{d, fmt.Sprintf("needs %q, which was skipped (%s)", g.tasks[it.pos].ID, it.reason)})
		}
	}
	return nil, skipped
}

func verb(st Status) string {
	switch st {
	case Failed:
		return "failed"
	case TimedOut:
		return "timed out"
	case Cancelled:
		return "was cancelled"
	}
	return "was skipped"
}

// Order returns the positions of the tasks in an order that respects their needs
// (input order where needs leave a choice), and the longest chain of needs.
func Order(tasks []Task, needs [][]int) (order []int, chain []int) {
	g := NewGraph(tasks, needs)
	queue := g.Roots()
	depth := make([]int, len(tasks))
	from := make([]int, len(tasks))
	for i := range from {
		from[i] = -1
	}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		order = append(order, i)
		for _, d := range g.dependents[i] {
			if depth[i]+1 > depth[d] {
				depth[d], from[d] = depth[i]+1, i
			}
			if g.waiting[d]--; g.waiting[d] == 0 {
				queue = append(queue, d)
			}
		}
	}
	end := -1
	for i, d := range depth {
		if end < 0 || d > depth[end] {
			end = i
		}
	}
	for i := end; i >= 0; i = from[i] {
		chain = append([]int{i}, chain...)
	}
	return order, chain
}

// ChainString writes a chain of tasks as "a → b → c".
func ChainString(tasks []Task, chain []int) string {
	ids := make([]string, len(chain))
	for k, i := range chain {
		ids[k] = tasks[i].ID
	}
	return strings.Join(ids, " → ")
}

// UnitWork is the expected work of a task that gives no Estimate, for Remaining.
const UnitWork = time.Second

// Remaining returns, by position, the expected work from the start of each task to
// the end of the longest chain of needs that follows it, the task itself included:
// its Estimate (UnitWork when it gives none) plus the largest Remaining among the
// tasks that need it. A scheduler that starts the task with the most Remaining first
// (critical path first) shortens the run when the chains differ in length. needs is
// by position, as for NewGraph, and has no cycle.
func Remaining(tasks []Task, needs [][]int) []time.Duration {
	order, _ := Order(tasks, needs)
	rem := make([]time.Duration, len(tasks))
	for k := len(order) - 1; k >= 0; k-- {
		i := order[k]
		w := tasks[i].Estimate
		if w <= 0 {
			w = UnitWork
		}
		rem[i] += w // rem[i] already holds the most that follows i
		for _, n := range needs[i] {
			rem[n] = max(rem[n], rem[i])
		}
	}
	return rem
}
