package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/journal"
	"github.com/gorun/gorun/internal/process"
	"github.com/gorun/gorun/internal/report"
)

// parseCmd runs `gorun ARGV` with cmd in place of the root's command of the same name,
// up to the point where cmd's runF receives the options.
func parseCmd(t *testing.T, cmd *cobra.Command, argv string) error {
	t.Helper()
	t.Chdir(t.TempDir()) // no ./gorun.yaml
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	ios, _, _, _ := iostreams.Test()
	root := NewCmdRoot(ios, nil)
	for _, c := range root.Commands() {
		if c.Name() == cmd.Name() {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(cmd)
	root.SetArgs(strings.Fields(argv))
	return root.ExecuteContext(context.Background())
}

// checkParsed checks the error of a parse: a usage error containing wantErr, or none.
func checkParsed(t *testing.T, err error, wantErr string) {
	t.Helper()
	var ue *usageError
	switch {
	case wantErr == "" && err != nil:
		t.Fatalf("got error %v, want none", err)
	case wantErr != "" && (!errors.As(err, &ue) || !strings.Contains(err.Error(), wantErr)):
		t.Fatalf("got error %v, want a usage error containing %q", err, wantErr)
	}
}

// TestWorkerCapacity: what a worker announces: its flags, else its machine's.
func TestWorkerCapacity(t *testing.T) {
	var got *WorkerOptions
	ios, _, _, _ := iostreams.Test()
	err := parseCmd(t, NewCmdWorker(ios, nil, func(o *WorkerOptions) error { got = o; return nil }),
		"worker --broker nats://b:4222 --cpus 6 --memory 8GiB --gpus 0,1 --label gpu=a100 --label zone=eu")
	if err != nil {
		t.Fatal(err)
	}
	want := jobs.Capacity{MilliCPU: 6000, Memory: 8 << 30, GPUs: []string{"0", "1"}, Labels: map[string]string{"gpu": "a100", "zone": "eu"}}
	if !reflect.DeepEqual(got.Capacity, want) {
		t.Errorf("got %+v, want %+v", got.Capacity, want)
	}
	err = parseCmd(t, NewCmdWorker(ios, nil, func(o *WorkerOptions) error { return nil }), "worker --broker nats://b:4222 --label gpu")
	checkParsed(t, err, `--label: invalid label "gpu": want KEY=VALUE`)
}

func TestWorkerOptions(t *testing.T) {
	tests := []struct {
		name, argv string
		want       WorkerOptions
		wantErr    string
	}{
		{name: "defaults", argv: "worker --broker nats://b:4222",
			want: WorkerOptions{Broker: "nats://b:4222", Slots: 1, Grace: 5 * time.Second, AckWait: cluster.DefaultLease, Conn: ConnFlags{ConnectTimeout: 30 * time.Second}}},
		{name: "flags", argv: "worker --broker nats://b:4222 -j 8 --grace 1m --ack-wait 10s -v --name w1",
			want: WorkerOptions{Broker: "nats://b:4222", Slots: 8, Grace: time.Minute, AckWait: 10 * time.Second, Verbose: true, Name: "w1", Conn: ConnFlags{ConnectTimeout: 30 * time.Second}}},
		{name: "security", argv: "worker --broker tls://b:4222 --token-file t --creds c --tls-cert c.pem --tls-key k.pem --tls-ca ca.pem --connect-timeout 0",
			want: WorkerOptions{Broker: "tls://b:4222", Slots: 1, Grace: 5 * time.Second, AckWait: cluster.DefaultLease,
				Conn: ConnFlags{TokenFile: "t", Creds: "c", TLSCert: "c.pem", TLSKey: "k.pem", TLSCA: "ca.pem"}}},
		{name: "cert without key", argv: "worker --broker nats://b:4222 --tls-cert c.pem", wantErr: "--tls-cert and --tls-key go together"},
		{name: "negative connect timeout", argv: "worker --broker nats://b:4222 --connect-timeout -1s", wantErr: "--connect-timeout must not be negative"},
		{name: "no broker", argv: "worker -j 2", wantErr: "--broker is required"},
		{name: "no slots", argv: "worker --broker nats://b:4222 -j 0", wantErr: "--workers must be at least 1, got 0"},
		{name: "an argument", argv: "worker --broker nats://b:4222 extra", wantErr: "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *WorkerOptions
			ios, _, _, _ := iostreams.Test()
			err := parseCmd(t, NewCmdWorker(ios, nil, func(o *WorkerOptions) error { got = o; return nil }), tt.argv)
			checkParsed(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			if got.Connect == nil || got.StartGuard == nil {
				t.Error("dependencies not injected")
			}
			got.IO, got.Connect, got.StartGuard = nil, nil, nil
			if got.Capacity.MilliCPU < 1000 || got.Capacity.GPUs == nil { // the machine's: see TestWorkerCapacity
				t.Errorf("capacity %+v, want this machine's", got.Capacity)
			}
			got.Res, got.Capacity = ResourceFlags{}, jobs.Capacity{}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestRunWorker(t *testing.T) {
	refused := errors.New("connection refused")
	ios, _, out, errOut := iostreams.Test()
	opts := &WorkerOptions{IO: ios, Broker: "nats://b:4222", Slots: 1,
		Connect: func(context.Context, string, cluster.ConnOptions) (*cluster.Conn, error) { return nil, refused },
		StartGuard: func(string, string) (*process.Guard, error) {
			t.Error("started a guard without a broker")
			return nil, nil
		}}
	if err := runWorker(context.Background(), opts); !errors.Is(err, refused) {
		t.Errorf("got error %v, want %v", err, refused)
	}
	if out.Len()+errOut.Len() != 0 {
		t.Errorf("got stdout %q, stderr %q, want nothing: main prints the error", out, errOut)
	}
}

func TestBrokerOptions(t *testing.T) {
	tests := []struct {
		name, argv string
		want       BrokerOptions
		wantErr    string
	}{
		{name: "defaults", argv: "broker --store /tmp/s", want: BrokerOptions{Store: "/tmp/s", Listen: "127.0.0.1:4222", Replicas: 1}},
		{name: "listen", argv: "broker --store s --listen 10.0.0.5:0", want: BrokerOptions{Store: "s", Listen: "10.0.0.5:0", Replicas: 1}},
		{name: "no store", argv: "broker", wantErr: "--store is required"},
		{name: "security", argv: "broker --store s --listen [::1]:0 --token-file t --tls-cert c.pem --tls-key k.pem --tls-ca ca.pem --store-key-file sk",
			want: BrokerOptions{Store: "s", Listen: "[::1]:0", Sec: BrokerSecFlags{TokenFile: "t", TLSCert: "c.pem", TLSKey: "k.pem", TLSCA: "ca.pem", StoreKeyFile: "sk"}, Replicas: 1}},
		{name: "key without cert", argv: "broker --store s --tls-key k.pem", wantErr: "--tls-cert and --tls-key go together"},
		{name: "client CA without a certificate", argv: "broker --store s --tls-ca ca.pem", wantErr: "--tls-ca needs the broker's own --tls-cert"},
		{name: "cluster of three", argv: "broker --store s --name b1 --cluster-listen 10.0.0.5:6222 --routes nats-route://b:6222,nats-route://c:6222",
			want: BrokerOptions{Store: "s", Listen: "127.0.0.1:4222", Name: "b1", ClusterListen: "10.0.0.5:6222",
				Routes: []string{"nats-route://b:6222", "nats-route://c:6222"}, Replicas: 3}},
		{name: "cluster of two", argv: "broker --store s --cluster-listen :6222 --routes nats-route://b:6222",
			want: BrokerOptions{Store: "s", Listen: "127.0.0.1:4222", ClusterListen: ":6222", Routes: []string{"nats-route://b:6222"}, Replicas: 1}},
		{name: "replicas given", argv: "broker --store s --cluster-listen :6222 --routes nats-route://b:6222 --replicas 2",
			want: BrokerOptions{Store: "s", Listen: "127.0.0.1:4222", ClusterListen: ":6222", Routes: []string{"nats-route://b:6222"}, Replicas: 2}},
		{name: "too many replicas", argv: "broker --store s --cluster-listen :6222 --routes nats-route://b:6222 --replicas 3",
			wantErr: "--replicas 3 needs a cluster of 3 brokers: --routes lists 1 others"},
		{name: "replicas out of range", argv: "broker --store s --replicas 7", wantErr: "--replicas must be 1 to 5, got 7"},
		{name: "routes alone", argv: "broker --store s --routes nats-route://b:6222", wantErr: "--routes needs --cluster-listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *BrokerOptions
			ios, _, _, _ := iostreams.Test()
			err := parseCmd(t, NewCmdBroker(ios, func(o *BrokerOptions) error { got = o; return nil }), tt.argv)
			checkParsed(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			if got.Store != tt.want.Store || got.Listen != tt.want.Listen || got.Name != tt.want.Name ||
				got.ClusterListen != tt.want.ClusterListen || !slices.Equal(got.Routes, tt.want.Routes) ||
				got.Replicas != tt.want.Replicas || got.Sec != tt.want.Sec || got.Serve == nil || got.Provision == nil {
				t.Errorf("got %+v, want %+v and a Serve", *got, tt.want)
			}
		})
	}
}

// fakeServer is a broker that is up at once.
type fakeServer struct{ down bool }

func (s *fakeServer) ClientURL() string { return "nats://127.0.0.1:4999" }
func (s *fakeServer) Shutdown()         { s.down = true }
func (s *fakeServer) WaitForShutdown()  {}

func TestRunBroker(t *testing.T) {
	failed := errors.New("store: permission denied")
	tests := []struct {
		name     string
		serveErr error
		provErr  error // of Provision
		wantOut  string
	}{
		{name: "prints its URL and stops with the context", wantOut: "nats://127.0.0.1:4999\n"},
		{name: "cannot serve", serveErr: failed},
		{name: "cannot set up the streams", provErr: cluster.ErrIncompatible},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, out, errOut := iostreams.Test()
			srv := &fakeServer{}
			var gotStore, gotListen string
			opts := &BrokerOptions{IO: ios, Store: "s", Listen: "127.0.0.1:0", Serve: func(store, listen string, _ cluster.BrokerSecurity) (Server, error) {
				gotStore, gotListen = store, listen
				if tt.serveErr != nil {
					return nil, tt.serveErr
				}
				return srv, nil
			}, Replicas: 3, Provision: func(ctx context.Context, s Server, _ cluster.BrokerSecurity, replicas int) (int, error) {
				if replicas != 3 {
					t.Errorf("provisioned at %d replicas, want 3", replicas)
				}
				return replicas, tt.provErr
			}}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := runBroker(ctx, opts)
			if want := errors.Join(tt.serveErr, tt.provErr); want == nil && err != nil ||
				tt.serveErr != nil && !errors.Is(err, tt.serveErr) || tt.provErr != nil && !errors.Is(err, tt.provErr) {
				t.Errorf("got error %v, want %v", err, want)
			}
			if gotStore != "s" || gotListen != "127.0.0.1:0" {
				t.Errorf("served %q on %q, want s on 127.0.0.1:0", gotStore, gotListen)
			}
			if out.String() != tt.wantOut || errOut.Len() != 0 {
				t.Errorf("got stdout %q, stderr %q, want %q and nothing", out, errOut, tt.wantOut)
			}
			if tt.serveErr == nil && !srv.down {
				t.Error("the broker was not shut down")
			}
		})
	}
}

func TestReportOptions(t *testing.T) {
	tests := []struct {
		name, argv string
		want       ReportOptions
		wantErr    string
	}{
		{name: "defaults", argv: "report run.journal", want: ReportOptions{Journal: "run.journal", Format: report.Text}},
		{name: "junit", argv: "report run.journal --format junit", want: ReportOptions{Journal: "run.journal", Format: report.JUnit}},
		{name: "bad format", argv: "report run.journal --format pdf", wantErr: "--format: "},
		{name: "no journal", argv: "report", wantErr: "report takes one journal file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *ReportOptions
			ios, _, _, _ := iostreams.Test()
			err := parseCmd(t, NewCmdReport(ios, func(o *ReportOptions) error { got = o; return nil }), tt.argv)
			checkParsed(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			if got.Journal != tt.want.Journal || got.Format != tt.want.Format {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestRunReport(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.journal")
	w, err := journal.Create(path, journal.Header{RunID: "r1", StartedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	notJournal := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notJournal, []byte("shopping list\nmilk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	three := 3
	if err := w.Write(jobs.Result{ID: "b", Index: 1, Status: jobs.Failed, ExitCode: &three, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, journal string
		format        report.Format
		wantOut       string
		wantInputErr  bool
	}{
		{name: "text", journal: path, format: report.Text, wantOut: "b  failed  exit 3"},
		{name: "json", journal: path, format: report.JSON, wantOut: `"status":"failed"`},
		{name: "not a journal", journal: notJournal, wantInputErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, out, errOut := iostreams.Test()
			err := runReport(&ReportOptions{IO: ios, Journal: tt.journal, Format: tt.format})
			var ie *jobs.InputError
			if got := errors.As(err, &ie); got != tt.wantInputErr || (!tt.wantInputErr && err != nil) {
				t.Fatalf("got error %v, want an input error: %v", err, tt.wantInputErr)
			}
			if !strings.Contains(out.String(), tt.wantOut) || errOut.Len() != 0 {
				t.Errorf("got stdout %q, stderr %q, want %q and nothing", out, errOut, tt.wantOut)
			}
		})
	}
}

func TestValidateOptions(t *testing.T) {
	dur := func(d time.Duration) *time.Duration { return &d }
	tests := []struct {
		name, argv string
		env        map[string]string
		want       ValidateOptions
		wantErr    string
	}{
		{name: "defaults", argv: "validate t.yaml", want: ValidateOptions{File: "t.yaml", Format: "yaml"}},
		{name: "flags", argv: "validate t.txt -t 5s --format lines", want: ValidateOptions{File: "t.txt", Format: "lines", Settings: jobs.Settings{Timeout: dur(5 * time.Second)}}},
		{name: "environment", argv: "validate t.yaml", env: map[string]string{"GORUN_TIMEOUT": "5m"},
			want: ValidateOptions{File: "t.yaml", Format: "yaml", Settings: jobs.Settings{Timeout: dur(5 * time.Minute)}}},
		{name: "a bad exec setting", argv: "validate t.yaml", env: map[string]string{"GORUN_WORKERS": "lots"}, wantErr: `GORUN_WORKERS: invalid number "lots"`},
		{name: "no file", argv: "validate", wantErr: "validate takes one task file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var got *ValidateOptions
			ios, _, _, _ := iostreams.Test()
			err := parseCmd(t, NewCmdValidate(ios, func(o *ValidateOptions) error { got = o; return nil }), tt.argv)
			checkParsed(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			got.IO = nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestRunValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("version: 1\ntasks:\n  - id: hello\n    run: echo hi\n"), 0o644)
	os.WriteFile(bad, []byte("version: 1\ntasks:\n  - id: hello\n    timeout: soon\n    run: echo hi\n"), 0o644)
	tests := []struct {
		name, file   string
		wantOut      string
		wantInputErr bool
	}{
		{name: "good", file: good, wantOut: "hello  -        0        .    echo hi"},
		{name: "bad", file: bad, wantInputErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, out, errOut := iostreams.Test()
			err := runValidate(&ValidateOptions{IO: ios, File: tt.file, Format: "yaml"})
			var ie *jobs.InputError
			if got := errors.As(err, &ie); got != tt.wantInputErr || (!tt.wantInputErr && err != nil) {
				t.Fatalf("got error %v, want an input error: %v", err, tt.wantInputErr)
			}
			if !strings.Contains(out.String(), tt.wantOut) || errOut.Len() != 0 {
				t.Errorf("got stdout %q, stderr %q, want %q and nothing", out, errOut, tt.wantOut)
			}
		})
	}
}

// TestCompletionOffersFlagValues: shell completion offers the values of every flag
// that takes one of a few.
func TestCompletionOffersFlagValues(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"exec", "--output", ""}, []string{"grouped", "line", "tag", "jsonl", "none"}},
		{[]string{"exec", "--format", ""}, []string{"auto", "yaml", "json", "jsonl", "lines"}},
		{[]string{"exec", "--halt", ""}, []string{"never", "soon,fail=1", "now,fail=1"}},
		{[]string{"exec", "--report-format", ""}, []string{"text", "json", "junit", "markdown"}},
		{[]string{"exec", "--progress", ""}, []string{"auto", "always", "never"}},
		{[]string{"exec", "--containment", ""}, []string{"auto", "subreaper", "process-group"}},
		{[]string{"exec", "--log-format", ""}, []string{"text", "json"}},
		{[]string{"validate", "--format", ""}, []string{"yaml", "jsonl"}},
		{[]string{"report", "x.journal", "--format", ""}, []string{"text", "json", "junit", "markdown"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ios, _, out, _ := iostreams.Test()
			root := NewCmdRoot(ios, nil)
			root.SetArgs(append([]string{"__complete"}, tt.args...))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSpace(out.String()), "\n")
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("got %q, want %q among them", got, w)
				}
			}
		})
	}
}

// TestManPages: `gorun man` is listed in the help, and each page is headed by its own
// command's name.
func TestManPages(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	root := NewCmdRoot(ios, nil)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "\n  man ") {
		t.Errorf("help does not list man:\n%s", out)
	}
	dir := t.TempDir()
	root = NewCmdRoot(ios, nil)
	root.SetArgs([]string{"man", dir})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for page, title := range map[string]string{"gorun.1": `"GORUN"`, "gorun-exec.1": `"GORUN-EXEC"`, "gorun-report.1": `"GORUN-REPORT"`} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Fatal(err)
		}
		if want := ".TH " + title + ` "1"`; !strings.Contains(string(b), want) {
			t.Errorf("%s: got header %q, want %s", page, firstLine(string(b[:min(len(b), 200)])), want)
		}
	}
}
