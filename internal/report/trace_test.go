package report

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestTraceHasATrackPerSlotAndAnEventPerAttempt(t *testing.T) {
	results := hostile()
	s := Summarize(results)
	var buf bytes.Buffer
	if err := WriteTrace(&buf, Run{ID: "r1", StartedAt: start, Hostname: "h"}, s, SliceResults(results)); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		TraceEvents []struct {
			Name string         `json:"name"`
			Cat  string         `json:"cat"`
			Ph   string         `json:"ph"`
			Ts   int64          `json:"ts"`
			Dur  int64          `json:"dur"`
			Pid  int            `json:"pid"`
			Tid  int            `json:"tid"`
			ID   string         `json:"id"`
			Args map[string]any `json:"args"`
		} `json:"traceEvents"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	threads := map[int]string{}
	var attempts, flows int
	for _, e := range doc.TraceEvents {
		switch {
		case e.Ph == "M" && e.Name == "thread_name":
			threads[e.Tid] = e.Args["name"].(string)
		case e.Ph == "X":
			attempts++
			if _, ok := threads[e.Tid]; !ok {
				t.Errorf("event %q on thread %d, which has no name", e.Name, e.Tid)
			}
		case e.Ph == "s" || e.Ph == "f":
			flows++
		}
		if e.Name == `"><img src=x onerror=alert(3)>` && e.Ph == "X" && e.Args["attempt"].(float64) == 1 {
			if e.Ts != 1000*1000 || e.Dur != 200*1000 || e.Tid != 1 || e.Args["stderr_last"] != "<b>first</b>" {
				t.Errorf("first attempt of task 2: %+v", e)
			}
		}
	}
	if len(threads) != 2 || threads[1] != "slot 1" || threads[2] != "slot 2" {
		t.Errorf("threads %v, want slot 1 and slot 2", threads)
	}
	if attempts != 3 || flows != 2 {
		t.Errorf("%d attempts and %d flow events, want 3 and 2 (one retry)", attempts, flows)
	}
}
