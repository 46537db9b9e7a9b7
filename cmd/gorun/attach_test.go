package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/report"
)

func TestAttachOptions(t *testing.T) {
	tests := []struct {
		name, argv string
		report     string
		format     report.Format
		wantErr    string
	}{
		{name: "plain", argv: "attach abc --broker nats://b:4222"},
		{name: "report by extension", argv: "attach abc --broker nats://b:4222 --report r.json --journal j.jsonl", report: "r.json", format: report.FormatOf("r.json")},
		{name: "report format", argv: "attach abc --broker nats://b:4222 --report r.out --report-format markdown", report: "r.out", format: report.FormatOf("r.md")},
		{name: "unknown report extension", argv: "attach abc --broker nats://b:4222 --report r.out", wantErr: "--report r.out"},
		{name: "bad report format", argv: "attach abc --broker nats://b:4222 --report r.json --report-format pdf", wantErr: "--report-format"},
		{name: "no run", argv: "attach --broker nats://b:4222", wantErr: "takes one run id"},
		{name: "no broker", argv: "attach abc", wantErr: "--broker is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GORUN_BROKER", "")
			var got *AttachOptions
			ios, _, _, _ := iostreams.Test()
			err := parseCmd(t, NewCmdAttach(ios, nil, func(o *AttachOptions) error { got = o; return nil }), tt.argv)
			checkParsed(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			if got.Run != "abc" || got.Broker != "nats://b:4222" || got.Report != tt.report || got.ReportFmt != tt.format {
				t.Errorf("got run %q, broker %q, report %q (%s)", got.Run, got.Broker, got.Report, got.ReportFmt)
			}
		})
	}
}

func TestExecDetachNeeds(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tasks.txt")
	if err := os.WriteFile(file, []byte("true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ argv, wantErr string }{
		{"exec " + file + " --broker nats://b:4222 --detach", ""},
		{"exec " + file + " --detach", "--detach needs a --broker"},
		{"exec - --broker nats://b:4222 --detach", "--detach needs an input FILE"},
		{"exec " + file + " --broker nats://b:4222 --detach --dry-run", "do not go together"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(strings.Fields(tt.argv)[2:], " "), func(t *testing.T) {
			var got *ExecOptions
			ios, _, _, _ := iostreams.Test()
			err := parseCmd(t, NewCmdExec(ios, nil, func(o *ExecOptions) error { got = o; return nil }), tt.argv)
			checkParsed(t, err, tt.wantErr)
			if tt.wantErr == "" && !got.Detach {
				t.Error("Detach not set")
			}
		})
	}
}
