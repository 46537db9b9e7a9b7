package report

import (
	"cmp"
	"encoding/json"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/gorun/gorun/internal/jobs"
)

// WriteTrace writes the run in the Chrome trace event format (the JSON object form),
// which Perfetto (ui.perfetto.dev) and chrome://tracing open: a process per host (per
// worker for a run on a broker), a thread per worker slot, a complete event per
// attempt named by its task's id, with its status as the category, a "waiting" event
// before an attempt that waited for the rate limit or a free worker, and a flow
// arrow from each retried attempt to the next. Times are microseconds since the run
// started. It calls results twice, as WriteHTML does.
func WriteTrace(w io.Writer, run Run, s *Summary, results Results) error {
	b := newHTMLBuilder(run, s, 0) // lanes and attempts as the HTML timeline has them; no output tails
	results(func(r jobs.Result) bool {
		b.add(&r)
		return true
	})
	d := b.finish()
	ew := &errWriter{w: w}
	ew.write([]byte(`{"displayTimeUnit":"ms","otherData":`))
	meta, err := json.Marshal(map[string]string{"generator": "gorun", "run_id": run.ID, "command": run.Command, "input": run.Input})
	if err != nil {
		return err
	}
	ew.write(meta)
	ew.write([]byte(`,"traceEvents":[`))
	first := true
	emit := func(e traceEvent) {
		line, err := json.Marshal(e)
		if err != nil {
			ew.err = err
			return
		}
		if !first {
			ew.write([]byte(","))
		}
		first = false
		ew.write([]byte("\n"))
		ew.write(line)
	}
	// Processes for groups, threads for lanes, in the HTML timeline's order.
	pids := map[string]int{}
	for i, l := range d.Lanes {
		pid, ok := pids[l[0]]
		if !ok {
			pid = len(pids) + 1
			pids[l[0]] = pid
			emit(traceEvent{Name: "process_name", Ph: "M", Pid: pid, Args: map[string]any{"name": l[0]}})
			emit(traceEvent{Name: "process_sort_index", Ph: "M", Pid: pid, Args: map[string]any{"sort_index": pid}})
		}
		emit(traceEvent{Name: "thread_name", Ph: "M", Pid: pid, Tid: i + 1, Args: map[string]any{"name": l[1]}})
		emit(traceEvent{Name: "thread_sort_index", Ph: "M", Pid: pid, Tid: i + 1, Args: map[string]any{"sort_index": i + 1}})
	}
	last := map[int][]any{} // by task row: its attempt before this one, in attempt order
	for _, bar := range sortedByAttempt(d.Bars) {
		lane := bar[0].(int)
		pid, tid := pids[d.Lanes[lane][0]], lane+1
		start, end, wait := us(bar[1]), us(bar[2]), us(bar[6])
		row := bar[4].(int)
		t := d.Tasks[row]
		st := jobs.Statuses[bar[3].(int)]
		if wait > 0 {
			emit(traceEvent{Name: "waiting", Cat: "wait", Ph: "X", Ts: start - wait, Dur: ptr(wait), Pid: pid, Tid: tid,
				Args: map[string]any{"task": t[0]}})
		}
		args := map[string]any{"task": t[0], "index": t[1], "attempt": bar[5], "status": st, "command": t[7]}
		exit, signal := bar[7], bar[8]
		if bar[5] == t[3] { // the last attempt: its exit is its task's
			exit, signal = t[4], t[5]
			if t[8] != "" {
				args["ran_on"] = t[8]
			}
		} else if e, _ := bar[9].(string); e != "" {
			args["stderr_last"] = e
		}
		args["exit_code"] = exit
		if signal != "" {
			args["signal"] = signal
		}
		emit(traceEvent{Name: t[0].(string), Cat: string(st), Ph: "X", Ts: start, Dur: ptr(max(end-start, 1)), Pid: pid, Tid: tid, Args: args})
		if prev, ok := last[row]; ok {
			id := strconv.Itoa(row) + "." + strconv.Itoa(bar[5].(int))
			pl := prev[0].(int)
			emit(traceEvent{Name: "retry", Cat: "retry", Ph: "s", ID: id, Ts: us(prev[1]), Pid: pids[d.Lanes[pl][0]], Tid: pl + 1})
			emit(traceEvent{Name: "retry", Cat: "retry", Ph: "f", BP: "e", ID: id, Ts: start, Pid: pid, Tid: tid})
		}
		last[row] = bar
	}
	ew.write([]byte("\n]}\n"))
	return ew.err
}

// traceEvent is one event of the Chrome trace event format.
type traceEvent struct {
	Name string         `json:"name"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	Ts   int64          `json:"ts"`
	Dur  *int64         `json:"dur,omitempty"`
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	ID   string         `json:"id,omitempty"`
	BP   string         `json:"bp,omitempty"`
	Args map[string]any `json:"args,omitempty"`
}

func ptr(n int64) *int64 { return &n }

// us converts a bar's milliseconds to whole microseconds.
func us(ms any) int64 { return int64(math.Round(ms.(float64) * 1000)) }

// sortedByAttempt returns the bars in start order, so that each task's attempts come
// first to last.
func sortedByAttempt(bars [][]any) [][]any {
	out := slices.Clone(bars)
	slices.SortStableFunc(out, func(a, b []any) int { return cmp.Compare(a[1].(float64), b[1].(float64)) })
	return out
}
