package jobs_test

import (
	"strings"
	"testing"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
)

func parseNeeds(t *testing.T, src string) (*input.File, error) {
	t.Helper()
	return input.Parse("f.yaml", []byte(src))
}

func TestNeedsErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unknown id", "version: 1\ntasks:\n  - id: a\n    run: x\n  - id: b\n    run: y\n    needs: [a, c]\n",
			`f.yaml:7:16: task "b": needs: unknown task "c"`},
		{"self", "version: 1\ntasks:\n  - id: a\n    run: x\n    needs: [a]\n",
			`f.yaml:5:13: task "a": needs: a task cannot need itself`},
		{"cycle", "version: 1\ntasks:\n  - id: a\n    run: x\n    needs: [c]\n  - id: b\n    run: y\n    needs: [a]\n  - id: c\n    run: z\n    needs: [b]\n",
			`task "a": needs: cycle: a → c → b → a`},
		{"not a list", "version: 1\ntasks:\n  - id: a\n    run: x\n    needs: b\n", `f.yaml:5:12: needs: `},
	}
	for _, tt := range tests {
		_, err := parseNeeds(t, tt.src)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}

func diamond(t *testing.T) (*input.File, []jobs.Task) {
	f, err := parseNeeds(t, `version: 1
tasks:
  - {id: fetch, run: x}
  - {id: left, run: x, needs: [fetch]}
  - {id: right, run: x, needs: [fetch]}
  - {id: publish, run: x, needs: [left, right]}
  - {id: alone, run: x}
`)
	if err != nil {
		t.Fatal(err)
	}
	return f, f.Tasks(jobs.Settings{})
}

func TestGraphDiamond(t *testing.T) {
	f, tasks := diamond(t)
	g := jobs.NewGraph(tasks, f.Needs)
	if got := g.Roots(); len(got) != 2 || got[0] != 0 || got[1] != 4 {
		t.Fatalf("roots %v, want fetch and alone", got)
	}
	ready, _ := g.Finish(0, jobs.Succeeded)
	if len(ready) != 2 {
		t.Fatalf("after fetch: ready %v, want left and right", ready)
	}
	if ready, _ := g.Finish(1, jobs.Succeeded); len(ready) != 0 {
		t.Errorf("publish ready after left alone: %v", ready)
	}
	if ready, _ := g.Finish(2, jobs.Succeeded); len(ready) != 1 || ready[0] != 3 {
		t.Errorf("after right: ready %v, want publish", ready)
	}
}

func TestGraphFailureSkipsExactlyItsDependants(t *testing.T) {
	f, tasks := diamond(t)
	g := jobs.NewGraph(tasks, f.Needs)
	g.Finish(0, jobs.Succeeded)
	g.Finish(1, jobs.Succeeded)
	_, skipped := g.Finish(2, jobs.Failed)
	if len(skipped) != 1 || skipped[0].Pos != 3 || skipped[0].Reason != `needs "right", which failed` {
		t.Errorf("got %+v, want publish skipped for right", skipped)
	}
	g2 := jobs.NewGraph(tasks, f.Needs)
	_, skipped = g2.Finish(0, jobs.TimedOut)
	var names []string
	for _, s := range skipped {
		names = append(names, tasks[s.Pos].ID+": "+s.Reason)
	}
	got := strings.Join(names, "\n")
	if len(skipped) != 3 || !strings.Contains(got, `publish: needs "`) || !strings.Contains(got, `which was skipped (needs "fetch", which timed out)`) {
		t.Errorf("fetch timed out: got\n%s\nwant left, right and publish skipped, alone untouched", got)
	}
}

func TestOrderAndLongestChain(t *testing.T) {
	f, tasks := diamond(t)
	order, chain := jobs.Order(tasks, f.Needs)
	pos := map[int]int{}
	for k, i := range order {
		pos[i] = k
	}
	for i, ns := range f.Needs {
		for _, n := range ns {
			if pos[n] > pos[i] {
				t.Errorf("%s comes before its need %s", tasks[i].ID, tasks[n].ID)
			}
		}
	}
	if got := jobs.ChainString(tasks, chain); got != "fetch → left → publish" {
		t.Errorf("longest chain %q, want fetch → left → publish", got)
	}
}
