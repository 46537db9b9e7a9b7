package main

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// TestResourceFlags: argv and environment → the run's capacity settings, and the
// values refused with the flag named.
func TestResourceFlags(t *testing.T) {
	tests := []struct {
		argv    string
		env     map[string]string
		cpus    int64 // thousandths; -1: not set
		memory  uint64
		gpus    []string // nil: not set
		labels  map[string]string
		wantErr string
	}{
		{argv: "-", cpus: -1},
		{argv: "--cpus 0.5 --memory 4GiB -", cpus: 500, memory: 4 << 30},
		{argv: "--memory 4G -", cpus: -1, memory: 4e9},
		{argv: "--memory 1048576 -", cpus: -1, memory: 1 << 20},
		{argv: "--gpus 2 -", cpus: -1, gpus: []string{"0", "1"}},
		{argv: "--gpus 0,3 -", cpus: -1, gpus: []string{"0", "3"}},
		{argv: "--gpus 3, -", cpus: -1, gpus: []string{"3"}},
		{argv: "--gpus none -", cpus: -1, gpus: []string{}},
		{argv: "-", env: map[string]string{"GORUN_GPUS": "GPU-a,GPU-b", "GORUN_CPUS": "3"}, cpus: 3000, gpus: []string{"GPU-a", "GPU-b"}},
		{argv: "--label gpu=a100 --label zone=eu -", cpus: -1, labels: map[string]string{"gpu": "a100", "zone": "eu"}},
		{argv: "--label gpu=a100,zone=eu -", cpus: -1, labels: map[string]string{"gpu": "a100", "zone": "eu"}},
		{argv: "--cpus two -", wantErr: `--cpus: invalid number of CPUs "two"`},
		{argv: "--cpus -1 -", wantErr: `--cpus: invalid number of CPUs "-1"`},
		{argv: "--memory lots -", wantErr: `--memory: invalid size "lots"`},
		{argv: "--gpus 0,0 -", wantErr: "--gpus: GPU 0 is given twice"},
		{argv: "--label gpu -", wantErr: `--label: invalid label "gpu": want KEY=VALUE`},
		{argv: "--label gpu=a,b=c=d -", wantErr: `--label: invalid value "c=d" of label b`},
		{argv: "--label gpu=a100 --broker nats://x -", wantErr: "--label says what this machine is"},
	}
	for _, tt := range tests {
		t.Run(tt.argv, func(t *testing.T) {
			got, err := parseExec(t, tt.argv, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cpus := int64(-1); got.CPUs != nil && *got.CPUs != tt.cpus || got.CPUs == nil && tt.cpus != cpus {
				t.Errorf("cpus: got %v, want %d", got.CPUs, tt.cpus)
			}
			if mem := uint64(0); got.Memory != nil {
				mem = *got.Memory
				if mem != tt.memory {
					t.Errorf("memory: got %d, want %d", mem, tt.memory)
				}
			} else if tt.memory != 0 {
				t.Errorf("memory: not set, want %d", tt.memory)
			}
			if (got.GPUs == nil) != (tt.gpus == nil) || !slices.Equal(got.GPUs, tt.gpus) {
				t.Errorf("gpus: got %q, want %q", got.GPUs, tt.gpus)
			}
			if !maps.Equal(got.Labels, tt.labels) {
				t.Errorf("labels: got %v, want %v", got.Labels, tt.labels)
			}
		})
	}
}

// TestVisibleGPUs: CUDA_VISIBLE_DEVICES gives the default GPUs, up to the first
// device CUDA would take as invalid.
func TestVisibleGPUs(t *testing.T) {
	for env, want := range map[string][]string{"": {}, "0,2": {"0", "2"}, "1,-1,3": {"1"}, "GPU-x": {"GPU-x"}} {
		t.Setenv("CUDA_VISIBLE_DEVICES", env)
		if got := visibleGPUs(); !slices.Equal(got, want) {
			t.Errorf("CUDA_VISIBLE_DEVICES=%q: got %q, want %q", env, got, want)
		}
	}
}
