package input

import (
	"strings"
	"testing"
	"time"
)

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in      string
		want    Timeout
		wantErr string
	}{
		{in: "30", want: Timeout{Fixed: 30 * time.Second}},
		{in: "0.5", want: Timeout{Fixed: 500 * time.Millisecond}},
		{in: "0", want: Timeout{}},
		{in: " 1m30s ", want: Timeout{Fixed: 90 * time.Second}},
		{in: "200%", want: Timeout{Percent: 200}},
		{in: "150.5%", want: Timeout{Percent: 150.5}},
		{in: "-1", wantErr: "must not be negative"},
		{in: "-1s", wantErr: "must not be negative"},
		{in: "0%", wantErr: "above 0"},
		{in: "x%", wantErr: "above 0"},
		{in: "soon", wantErr: `invalid duration "soon"`},
		{in: "1e300", wantErr: "too long"},
	}
	for _, tt := range tests {
		got, err := ParseTimeout(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseTimeout(%q): got %v, %v, want an error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseTimeout(%q): got %+v, %v, want %+v", tt.in, got, err, tt.want)
		}
		if back, err := ParseTimeout(got.String()); err != nil || back != got {
			t.Errorf("ParseTimeout(%q).String() = %q reads back as %+v, %v", tt.in, got.String(), back, err)
		}
	}
}

func TestParseWorkers(t *testing.T) {
	tests := []struct {
		in      string
		cpus    int
		want    int
		wantErr string
	}{
		{in: "8", cpus: 2, want: 8},
		{in: "+2", cpus: 2, want: 4},
		{in: "-1", cpus: 4, want: 3},
		{in: "-8", cpus: 4, want: 1},
		{in: "200%", cpus: 2, want: 4},
		{in: "50%", cpus: 3, want: 1},
		{in: "1%", cpus: 2, want: 1},
		{in: "0", cpus: 2, wantErr: "must be at least 1, got 0"},
		{in: "lots", cpus: 2, wantErr: `invalid number "lots"`},
		{in: "0%", cpus: 2, wantErr: `invalid number "0%"`},
		{in: "1.5", cpus: 2, wantErr: `invalid number "1.5"`},
	}
	for _, tt := range tests {
		got, err := ParseWorkers(tt.in, tt.cpus)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseWorkers(%q, %d): got %d, %v, want an error containing %q", tt.in, tt.cpus, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseWorkers(%q, %d): got %d, %v, want %d", tt.in, tt.cpus, got, err, tt.want)
		}
	}
}
