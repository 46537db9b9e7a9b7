package pipeline

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
)

func graphRun(t *testing.T, yaml string, opts Options) (map[string]jobs.Result, *scripted) {
	t.Helper()
	f, err := input.Parse("g.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	sc := &scripted{}
	opts.Runner = sc
	if opts.Workers == 0 {
		opts.Workers = 4
	}
	opts.Output, opts.Stdout, opts.Stderr = None, io.Discard, io.Discard
	got := map[string]jobs.Result{}
	src := input.NewGraphSource(f.Tasks(jobs.Settings{}), f.Needs)
	if err := Run(context.Background(), src, opts, func(r jobs.Result) {
		if _, dup := got[r.ID]; dup {
			t.Errorf("%s reported twice", r.ID)
		}
		got[r.ID] = r
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != f.Len() {
		t.Fatalf("got %d results, want %d", len(got), f.Len())
	}
	return got, sc
}

func TestGraphRunsInNeedsOrder(t *testing.T) {
	got, sc := graphRun(t, `version: 1
tasks:
  - {id: publish, run: ok, needs: [left, right]}
  - {id: left, run: wait-30, needs: [fetch]}
  - {id: right, run: wait-60, needs: [fetch]}
  - {id: fetch, run: wait-30}
  - {id: chain-2, run: ok, needs: [chain-1]}
  - {id: chain-1, run: ok}
`, Options{})
	for id, r := range got {
		if r.Status != jobs.Succeeded {
			t.Errorf("%s: %s", id, r.Status)
		}
	}
	start := func(id string) time.Time { return sc.starts[got[id].Index][0] }
	if !start("left").After(start("fetch")) || !start("publish").After(start("right")) || !start("chain-2").After(start("chain-1")) {
		t.Error("a task started before its needs")
	}
}

func TestGraphFailureInTheMiddle(t *testing.T) {
	got, sc := graphRun(t, `version: 1
tasks:
  - {id: a, run: ok}
  - {id: b, run: fail, needs: [a]}
  - {id: c, run: ok, needs: [b]}
  - {id: d, run: ok, needs: [c]}
  - {id: e, run: ok, needs: [a]}
  - {id: f, run: ok}
`, Options{})
	want := map[string]jobs.Status{"a": jobs.Succeeded, "b": jobs.Failed, "c": jobs.Skipped, "d": jobs.Skipped, "e": jobs.Succeeded, "f": jobs.Succeeded}
	for id, st := range want {
		if got[id].Status != st {
			t.Errorf("%s: got %s, want %s", id, got[id].Status, st)
		}
	}
	if r := got["c"]; r.Error != `needs "b", which failed` || len(sc.starts[r.Index]) != 0 {
		t.Errorf("c: reason %q, want the task it waited for named, and no start", r.Error)
	}
	if r := got["d"]; r.Error != `needs "c", which was skipped (needs "b", which failed)` {
		t.Errorf("d: reason %q", r.Error)
	}
}

// TestGraphStartsWhenNeedsAreMet: a task starts the moment its own needs succeed, not
// when every task of its "level" is done.
func TestGraphStartsWhenNeedsAreMet(t *testing.T) {
	got, sc := graphRun(t, `version: 1
tasks:
  - {id: quick, run: wait-50}
  - {id: slow, run: wait-1500}
  - {id: after-quick, run: ok, needs: [quick]}
  - {id: after-slow, run: ok, needs: [slow]}
`, Options{})
	begin := sc.starts[got["quick"].Index][0]
	if d := sc.starts[got["after-quick"].Index][0].Sub(begin); d > 1000*time.Millisecond {
		t.Errorf("after-quick started %v after the run began, want soon after quick (50ms), not after slow (1.5s)", d)
	}
	if d := sc.starts[got["after-slow"].Index][0].Sub(begin); d < 1500*time.Millisecond {
		t.Errorf("after-slow started %v after the run began, before slow ended", d)
	}
}

func TestGraphWithRetriesHaltAndResume(t *testing.T) {
	// A need that fails once and is retried: its dependant waits for the last attempt.
	got, _ := graphRun(t, `version: 1
tasks:
  - {id: flaky, run: fail-until-2, retries: 2, retry_delay: 1ms}
  - {id: next, run: ok, needs: [flaky]}
`, Options{})
	if got["flaky"].Attempts != 2 || got["next"].Status != jobs.Succeeded {
		t.Errorf("got flaky %s after %d, next %s", got["flaky"].Status, got["flaky"].Attempts, got["next"].Status)
	}
	// Halt: nothing starts after the failure, dependants or not.
	h, _ := ParseHalt("soon,fail=1")
	got, _ = graphRun(t, `version: 1
tasks:
  - {id: bad, run: fail}
  - {id: other, run: ok, needs: [bad]}
  - {id: later, run: wait-10, needs: [gate]}
  - {id: gate, run: wait-100}
`, Options{Halt: h, Workers: 1})
	if got["later"].Status != jobs.Skipped || got["other"].Status != jobs.Skipped {
		t.Errorf("halt: got later %s, other %s, want both skipped", got["later"].Status, got["other"].Status)
	}
	// Resume: a need that already succeeded counts as done.
	done := map[string]bool{"k1": true}
	got, sc := graphRun(t, `version: 1
tasks:
  - {id: first, run: fail}
  - {id: second, run: ok, needs: [first]}
`, Options{Key: func(t *jobs.Task) string { return "k" + string(rune('0'+t.Index)) }, Done: func(k string) (string, bool) { return "already succeeded", done[k] }})
	if got["first"].Status != jobs.Skipped || got["second"].Status != jobs.Succeeded || len(sc.starts[1]) != 0 {
		t.Errorf("resume: got first %s, second %s", got["first"].Status, got["second"].Status)
	}
}
