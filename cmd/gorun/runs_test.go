package main

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/iostreams"
)

func TestControlOptions(t *testing.T) {
	conn := ConnFlags{ConnectTimeout: 30 * time.Second}
	commands := map[string]func(*iostreams.IOStreams, func(*ControlOptions) error) *cobra.Command{
		"runs": NewCmdRuns, "status": NewCmdStatus, "cancel": NewCmdCancel,
	}
	tests := []struct {
		name, argv string
		env        string // GORUN_BROKER
		want       ControlOptions
		wantErr    string
	}{
		{name: "runs", argv: "runs --broker nats://b:4222", want: ControlOptions{Broker: "nats://b:4222", Conn: conn}},
		{name: "runs json", argv: "runs --broker nats://b:4222 --json", want: ControlOptions{Broker: "nats://b:4222", Conn: conn, JSON: true}},
		{name: "runs from the environment", argv: "runs", env: "nats://e:4222", want: ControlOptions{Broker: "nats://e:4222", Conn: conn}},
		{name: "runs security", argv: "runs --broker tls://b:4222 --token-file t --tls-ca ca.pem --connect-timeout 0",
			want: ControlOptions{Broker: "tls://b:4222", Conn: ConnFlags{TokenFile: "t", TLSCA: "ca.pem"}}},
		{name: "runs without broker", argv: "runs", wantErr: "--broker is required"},
		{name: "runs with an argument", argv: "runs --broker nats://b:4222 abc", wantErr: "takes no arguments"},
		{name: "status", argv: "status abc --broker nats://b:4222 --json", want: ControlOptions{Broker: "nats://b:4222", Conn: conn, JSON: true, Run: "abc"}},
		{name: "status watch", argv: "status abc --broker nats://b:4222 -w", want: ControlOptions{Broker: "nats://b:4222", Conn: conn, Watch: true, Run: "abc"}},
		{name: "runs has no --watch", argv: "runs --broker nats://b:4222 --watch", wantErr: "unknown flag: --watch"},
		{name: "status without run", argv: "status --broker nats://b:4222", wantErr: "takes one run id"},
		{name: "cancel", argv: "cancel abc --broker nats://b:4222", want: ControlOptions{Broker: "nats://b:4222", Conn: conn, Run: "abc"}},
		{name: "cancel two runs", argv: "cancel abc def --broker nats://b:4222", wantErr: "takes one run id"},
		{name: "cancel cert without key", argv: "cancel abc --broker nats://b:4222 --tls-cert c.pem", wantErr: "--tls-cert and --tls-key go together"},
		{name: "cancel has no --json", argv: "cancel abc --broker nats://b:4222 --json", wantErr: "unknown flag: --json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GORUN_BROKER", tt.env)
			var got *ControlOptions
			ios, _, _, _ := iostreams.Test()
			name := strings.Fields(tt.argv)[0]
			err := parseCmd(t, commands[name](ios, func(o *ControlOptions) error { got = o; return nil }), tt.argv)
			checkParsed(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			if got.Connect == nil || got.Now == nil {
				t.Error("dependencies not injected")
			}
			got.IO, got.Connect, got.Now = nil, nil, nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestRunControlUnreachable(t *testing.T) {
	refused := errors.New("connection refused")
	for name, run := range map[string]func(context.Context, *ControlOptions) error{"runs": runRuns, "status": runStatus, "cancel": runCancel} {
		ios, _, out, errOut := iostreams.Test()
		opts := &ControlOptions{IO: ios, Broker: "nats://b:4222", Run: "abc", Now: time.Now,
			Connect: func(context.Context, string, cluster.ConnOptions) (*cluster.Conn, error) { return nil, refused }}
		if err := run(context.Background(), opts); !errors.Is(err, refused) {
			t.Errorf("%s: got error %v, want %v", name, err, refused)
		}
		if out.Len()+errOut.Len() != 0 {
			t.Errorf("%s: got stdout %q, stderr %q, want nothing: main prints the error", name, out, errOut)
		}
	}
}

func TestWriteRunsAndStatus(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.Local)
	code := 3
	runs := []cluster.RunEntry{
		{ID: "aaaa", Written: now.Add(-time.Second), RunRecord: cluster.RunRecord{State: cluster.StateRunning, Host: "node-1", PID: 42,
			Started: now.Add(-time.Minute), Heartbeat: now.Add(-time.Second), Total: 10,
			Counts:  map[string]int{"succeeded": 4, "failed": 1},
			Running: []cluster.RunningTask{{ID: "t7", Attempt: 2, Worker: "w1", Since: now.Add(-11 * time.Second)}}}},
		{ID: "bbbb", Written: now.Add(-time.Minute), RunRecord: cluster.RunRecord{State: cluster.StateRunning, Host: "node-2", Started: now.Add(-time.Hour), Total: -1}},
		{ID: "cccc", Written: now, RunRecord: cluster.RunRecord{State: cluster.StateCancelled, Host: "node-3", Started: now.Add(-time.Hour),
			Ended: now, ExitCode: &code, Reason: "by gorun cancel on ops", Total: 2, Counts: map[string]int{"cancelled": 1, "skipped": 1}}},
	}
	var b strings.Builder
	if err := writeRuns(&b, runs, now); err != nil {
		t.Fatal(err)
	}
	want := `RUN   HOST    STATE               TASKS  SUCCEEDED  FAILED  TIMED_OUT  CANCELLED  SKIPPED  RUNNING  STARTED
aaaa  node-1  running             10     4          1       0          0          0        1        2025-03-01 11:59:00
bbbb  node-2  running (silent 1m0s)  -      0          0       0          0          0        0        2025-03-01 11:00:00
cccc  node-3  cancelled           2      0          0       0          1          1        0        2025-03-01 11:00:00
`
	want = alignLike(t, b.String(), want)
	if b.String() != want {
		t.Errorf("runs:\n%s\nwant:\n%s", b.String(), want)
	}

	tests := []struct {
		run  int
		want []string
	}{
		{0, []string{"state      running\n", "submitter  node-1 pid 42\n", "tasks      10: 4 succeeded, 1 failed, 1 running, 4 waiting\n",
			"TASK  ATTEMPT  WORKER  RUNNING FOR\nt7    2        w1      10s\n"}},
		{1, []string{"state      running (silent 1m0s)\n", "tasks      -: none finished\n"}},
		{2, []string{"state      cancelled\n", "reason     by gorun cancel on ops\n", "exit code  3\n", "tasks      2: 1 cancelled, 1 skipped\n"}},
	}
	for _, tt := range tests {
		var b strings.Builder
		if err := writeStatus(&b, &runs[tt.run], now); err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("status of %s:\n%s\nwant it to contain %q", runs[tt.run].ID, b.String(), w)
			}
		}
	}
}

// alignLike returns want unless got differs from it only in the spaces between
// columns, which tabwriter decides: the test checks cells, not padding.
func alignLike(t *testing.T, got, want string) string {
	t.Helper()
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	if len(g) != len(w) {
		return want
	}
	for i := range g {
		if strings.Join(strings.Fields(g[i]), " ") != strings.Join(strings.Fields(w[i]), " ") {
			return want
		}
	}
	return got
}

func TestExitCodeOfCancel(t *testing.T) {
	ios, _, _, errOut := iostreams.Test()
	if got := exitCode(ios, &cancelledError{run: "abc", reason: "by gorun cancel on ops"}); got != 3 {
		t.Errorf("exit %d, want 3", got)
	}
	if got := errOut.String(); got != "gorun: run abc cancelled: by gorun cancel on ops\n" {
		t.Errorf("stderr %q", got)
	}
}
