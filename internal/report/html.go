package report

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"html"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorun/gorun/internal/jobs"
)

// The HTML report is one file: the page (report.tmpl), its style and its script are
// embedded here and written inline, and the run's data goes in as one JSON document
// the script reads. It needs no network.
//
// The page has four holes, {{.Title}}, {{.Style}}, {{.Script}} and {{.Data}}, filled
// by one strings.Replacer rather than html/template: linking text/template keeps
// every exported method of every type in the binary (its field lookup calls
// reflect.Value.MethodByName with a name known only at run time), which made gorun
// 5.5 MB larger and every run, local ones too, 2.5 MiB larger in memory. The holes'
// contexts are fixed, so each is escaped here once: the title as HTML text; the data
// as JSON, which escapes <, > and &, so nothing in it ends its script element; the
// style and the script are gorun's own files (TestHTMLPageHolesAreClosed holds that
// neither ends its element early).
var (
	//go:embed html/report.tmpl
	htmlPage string
	//go:embed html/report.css
	htmlStyle string
	//go:embed html/report.js
	htmlScript string
)

// TailBudget bounds the bytes of output tails an HTML report holds, over all tasks
// and both streams: when the tails are longer in all, each is cut to its last C
// bytes, C chosen as large as the budget allows (the JSON report keeps them whole).
const TailBudget = 2 << 20

// maxHTMLCommand bounds a command as an HTML report shows it.
const maxHTMLCommand = 1024

// WriteHTML writes a self-contained HTML report: the run at a glance, a timeline of
// every attempt by worker slot (by worker and host for a run on a broker), with the
// critical path of the needs, a histogram of durations, and a table of the tasks with
// their output tails. Scripts, style and data are inline; it needs no network.
//
// Every task field is data, never markup: the page shows it as text. It calls results
// twice: once to size the output tails within TailBudget, once to write them.
func WriteHTML(w io.Writer, run Run, s *Summary, results Results) error {
	var lens []int
	results(func(r jobs.Result) bool {
		lens = append(lens, len(r.StdoutTail), len(r.StderrTail))
		return true
	})
	b := newHTMLBuilder(run, s, tailCap(lens, TailBudget))
	results(func(r jobs.Result) bool {
		b.add(&r)
		return true
	})
	data, err := json.Marshal(b.finish()) // escapes <, > and &: nothing in it closes the script element
	if err != nil {
		return err
	}
	var page bytes.Buffer
	page.Grow(len(htmlPage) + len(htmlStyle) + len(htmlScript) + len(data) + 256)
	fill := strings.NewReplacer(
		"{{.Title}}", html.EscapeString(htmlTitle(run, s)),
		"{{.Style}}", htmlStyle,
		"{{.Script}}", htmlScript,
		"{{.Data}}", string(data),
	)
	if _, err := fill.WriteString(&page, htmlPage); err != nil {
		return err
	}
	_, err = w.Write(page.Bytes())
	return err
}

func htmlTitle(run Run, s *Summary) string {
	t := "gorun: " + strconv.Itoa(s.Total) + " " + plural(s.Total, "task")
	if s.Failed() > 0 {
		t += ", " + strconv.Itoa(s.Failed()) + " not ok"
	}
	if run.ID != "" {
		t += " (" + run.ID + ")"
	}
	return t
}

// tailCap returns the largest C such that the lengths, each cut to C, sum to at most
// budget; math.MaxInt when they already do.
func tailCap(lens []int, budget int) int {
	slices.Sort(lens)
	left := budget
	for i, l := range lens {
		rest := len(lens) - i
		if l*rest > left {
			return left / rest
		}
		left -= l
	}
	return math.MaxInt
}

// htmlData is what the report's script reads. Tasks and attempts are columns and
// rows of small arrays rather than objects: 10,000 tasks stay well under 5 MB.
type htmlData struct {
	Run      htmlRun       `json:"run"`
	Statuses []jobs.Status `json:"statuses"`
	// Tasks, one row each, in input order: [id, index, status, attempts, exit code or
	// null, signal, duration ms, command, where, error, stdout tail, stderr tail,
	// start ms or null, bytes cut from the stdout tail, from the stderr tail, ms it
	// was ready but held back (before a slot took it, too), what held it back].
	Tasks [][]any `json:"tasks"`
	// Lanes of the timeline, top to bottom: [group, label].
	Lanes [][2]string `json:"lanes"`
	// Bars, one per attempt: [lane, start ms, end ms, status, task row, attempt
	// number, ms waited before the start, exit code or null, signal, last stderr
	// line]; the last attempt's exit, signal and stderr are its task's.
	Bars [][]any `json:"bars"`
	// Critical is the critical path of the needs, first task first (task rows).
	Critical []int `json:"critical"`
	// Cut is the length an output tail was cut to, or 0 when none was.
	Cut int `json:"cut"`
}

type htmlRun struct {
	Run
	Totals
	StartedText string  `json:"started_text,omitempty"`
	SpanMs      float64 `json:"span_ms"`
}

// htmlBuilder gathers the data of an HTML report, or of a trace, from results taken
// one at a time; finish lays the attempts out in lanes. Times are milliseconds since
// t0: the run's start, or, for a journal's report, the first start it met (finish
// shifts every time when an attempt began earlier).
type htmlBuilder struct {
	data   htmlData
	s      *Summary
	tail   int
	t0     time.Time
	status map[jobs.Status]int
	tries  []htmlTry // every attempt that ran, for the lanes
	ends   []float64 // by task row: when its last attempt ended (ms), -1 if never started
	starts []float64
	needs  [][]string
	ids    map[string]int
}

// htmlTry is an attempt before it has a lane.
type htmlTry struct {
	group string // a worker@host, or the host
	slot  int    // the local slot; 0: pack into the group's lanes
	bar   []any
}

func newHTMLBuilder(run Run, s *Summary, tail int) *htmlBuilder {
	b := &htmlBuilder{s: s, tail: tail, t0: run.StartedAt, status: map[jobs.Status]int{}, ids: map[string]int{}}
	for i, st := range jobs.Statuses {
		b.status[st] = i
	}
	b.data.Run = htmlRun{Run: run, Totals: TotalsOf(s)}
	if !run.StartedAt.IsZero() {
		b.data.Run.StartedText = run.StartedAt.Format("2006-01-02 15:04:05 MST")
	}
	b.data.Statuses = jobs.Statuses
	if tail != math.MaxInt {
		b.data.Cut = tail
	}
	return b
}

func (b *htmlBuilder) ms(t time.Time) float64 {
	if b.t0.IsZero() {
		b.t0 = t
	}
	return roundMs(t.Sub(b.t0))
}

func roundMs(d time.Duration) float64 { return math.Round(float64(d)/1e5) / 10 }

func (b *htmlBuilder) add(r *jobs.Result) {
	row := len(b.data.Tasks)
	out, outCut := cutTail(r.StdoutTail, b.tail)
	errTail, errCut := cutTail(r.StderrTail, b.tail)
	var exit any
	if r.ExitCode != nil {
		exit = *r.ExitCode
	}
	var start any
	end := -1.0
	startMs := -1.0
	if !r.StartedAt.IsZero() {
		startMs = b.ms(r.StartedAt)
		start = startMs
		end = b.ms(r.StartedAt.Add(time.Duration(r.Duration)))
	}
	b.data.Tasks = append(b.data.Tasks, []any{
		text(r.ID), r.Index, b.status[r.Status], r.Attempts, exit, r.Signal, roundMs(time.Duration(r.Duration)),
		text(clipText(r.Command, maxHTMLCommand)), text(ranWhere(r.Worker, r.Host)), text(r.Error), text(out), text(errTail), start, outCut, errCut,
		roundMs(time.Duration(r.Wait)), text(strings.Join(r.WaitedFor, ", ")),
	})
	b.ends = append(b.ends, end)
	b.starts = append(b.starts, startMs)
	b.needs = append(b.needs, r.Needs)
	b.ids[r.ID] = row
	for i := range r.Earlier {
		e := &r.Earlier[i]
		if e.StartedAt.IsZero() {
			continue
		}
		var ecode any
		if e.ExitCode != nil {
			ecode = *e.ExitCode
		}
		s := b.ms(e.StartedAt)
		b.tries = append(b.tries, htmlTry{group: b.group(e.Worker, e.Host), slot: localSlot(e.Worker, e.Slot), bar: []any{
			0, s, b.ms(e.StartedAt.Add(time.Duration(e.Duration))), b.status[e.Status], row, i + 1,
			roundMs(time.Duration(e.Waited)), ecode, e.Signal, text(e.StderrLast),
		}})
	}
	if start != nil {
		b.tries = append(b.tries, htmlTry{group: b.group(r.Worker, r.Host), slot: localSlot(r.Worker, r.Slot), bar: []any{
			0, startMs, end, b.status[r.Status], row, r.Attempts, roundMs(time.Duration(r.Waited)), nil, "", "",
		}})
	}
}

// finish lays the attempts out in lanes, finds the critical path and returns the data.
func (b *htmlBuilder) finish() *htmlData {
	// A journal's first start may not be its earliest: shift every time so that the
	// earliest start is 0 or later.
	shift := 0.0
	for _, t := range b.tries {
		shift = min(shift, t.bar[1].(float64)-t.bar[6].(float64))
	}
	span := 0.0
	for i := range b.tries {
		bar := b.tries[i].bar
		bar[1], bar[2] = bar[1].(float64)-shift, bar[2].(float64)-shift
		span = max(span, bar[2].(float64))
	}
	for _, row := range b.data.Tasks {
		if st, ok := row[12].(float64); ok {
			row[12] = st - shift
		}
	}
	b.data.Run.SpanMs = max(span, roundMs(b.s.Wall))
	b.data.Lanes, b.data.Bars = layLanes(b.tries)
	b.data.Critical = criticalPath(b.ids, b.needs, b.starts, b.ends)
	if b.data.Tasks == nil {
		b.data.Tasks = [][]any{}
	}
	return &b.data
}

// layLanes gives each attempt a lane: its slot, for a local run; for a run on a
// broker, the first lane of its worker free at its start, so that a worker shows as
// many lanes as it ran attempts at once. Groups are sorted by name, lanes by slot.
func layLanes(tries []htmlTry) ([][2]string, [][]any) {
	type lane struct {
		group string
		slot  int
	}
	slices.SortStableFunc(tries, func(a, b htmlTry) int {
		if c := strings.Compare(a.group, b.group); c != 0 {
			return c
		}
		return cmp.Compare(a.bar[1].(float64), b.bar[1].(float64))
	})
	free := map[string][]float64{} // by group: when each packed lane is next free
	seen := map[lane]bool{}
	var lanes []lane
	slotOf := make([]int, len(tries))
	for i, t := range tries {
		slot := t.slot
		if slot == 0 {
			ends := free[t.group]
			start := t.bar[1].(float64) - t.bar[6].(float64)
			slot = slices.IndexFunc(ends, func(e float64) bool { return e <= start })
			if slot < 0 {
				ends = append(ends, 0)
				slot = len(ends) - 1
			}
			ends[slot] = t.bar[2].(float64)
			free[t.group] = ends
			slot++
		}
		slotOf[i] = slot
		if l := (lane{t.group, slot}); !seen[l] {
			seen[l] = true
			lanes = append(lanes, l)
		}
	}
	slices.SortFunc(lanes, func(a, b lane) int {
		if c := strings.Compare(a.group, b.group); c != 0 {
			return c
		}
		return a.slot - b.slot
	})
	index := make(map[lane]int, len(lanes))
	names := make([][2]string, len(lanes))
	for i, l := range lanes {
		index[l] = i
		names[i] = [2]string{text(l.group), "slot " + strconv.Itoa(l.slot)}
	}
	bars := make([][]any, len(tries))
	for i, t := range tries {
		t.bar[0] = index[lane{t.group, slotOf[i]}]
		bars[i] = t.bar
	}
	return names, bars
}

// criticalPath returns the chain of needs that ended last: from the task that ended
// last among those in a graph of needs, back through the need of each that ended last,
// first task first. It is empty when no task needs another.
func criticalPath(ids map[string]int, needs [][]string, starts, ends []float64) []int {
	rows := needRows(ids)
	inGraph := make([]bool, len(needs))
	found := false
	for i, ns := range needs {
		for _, n := range ns {
			for _, j := range rows(n) {
				inGraph[i], inGraph[j], found = true, true, true
			}
		}
	}
	if !found {
		return []int{}
	}
	last := -1
	for i := range ends {
		if inGraph[i] && ends[i] >= 0 && (last < 0 || ends[i] > ends[last]) {
			last = i
		}
	}
	var path []int
	for cur := last; cur >= 0 && len(path) <= len(needs); {
		path = append(path, cur)
		next := -1
		for _, n := range needs[cur] {
			for _, j := range rows(n) {
				if ends[j] >= 0 && ends[j] <= starts[cur]+1 && (next < 0 || ends[j] > ends[next]) {
					next = j
				}
			}
		}
		cur = next
	}
	slices.Reverse(path)
	return path
}

// needRows returns how a need resolves to rows: the row of its id, or for the id of
// a matrix task, whose results are its combinations (ID[axis=value,…]), their rows.
func needRows(ids map[string]int) func(need string) []int {
	var combos map[string][]int // made at the first need that is not a row's id
	return func(need string) []int {
		if j, ok := ids[need]; ok {
			return []int{j}
		}
		if combos == nil {
			combos = map[string][]int{}
			for id, j := range ids {
				if !strings.HasSuffix(id, "]") {
					continue
				}
				for p := range len(id) {
					if id[p] == '[' {
						combos[id[:p]] = append(combos[id[:p]], j)
					}
				}
			}
			for _, js := range combos {
				slices.Sort(js)
			}
		}
		return combos[need]
	}
}

// group names the lanes an attempt ran in: its worker and host, or the run's host
// when the attempt names none.
func (b *htmlBuilder) group(worker, host string) string {
	if worker == "" && host == "" {
		host = b.data.Run.Hostname
	}
	return group(worker, host)
}

func group(worker, host string) string {
	switch {
	case worker != "" && host != "" && worker != host:
		return worker + " @ " + host
	case worker != "":
		return worker
	case host != "":
		return host
	}
	return "local"
}

// localSlot is the slot a lane is drawn for: the run's slot for a local attempt; 0
// for a remote one, whose lane is found by packing (the run's slot is not the
// worker's).
func localSlot(worker string, slot int) int {
	if worker != "" {
		return 0
	}
	return slot
}

func ranWhere(worker, host string) string {
	if worker == "" && host == "" {
		return ""
	}
	return group(worker, host)
}

// cutTail keeps the last n bytes of s, from a rune boundary; it returns how many
// bytes it dropped.
func cutTail(s string, n int) (string, int) {
	if len(s) <= n {
		return s, 0
	}
	cut := len(s) - n
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return s[cut:], cut
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// text makes s valid UTF-8 (invalid bytes become U+FFFD), as JSON holds it.
func text(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
