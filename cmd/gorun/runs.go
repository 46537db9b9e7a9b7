package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/jobs"
)

// ControlOptions is everything `gorun runs`, `gorun status` and `gorun cancel` need:
// injected dependencies first, then the values of their flags and arguments.
type ControlOptions struct {
	IO      *iostreams.IOStreams
	Connect func(ctx context.Context, url string, o cluster.ConnOptions) (*cluster.Conn, error)
	Now     func() time.Time

	Broker string
	Conn   ConnFlags
	JSON   bool   // runs, status: JSON instead of text
	Watch  bool   // status: again at each change, until the run ends
	Run    string // status, cancel: the run's id
}

// controlFlags are the flags the control commands share: the broker and how to reach
// it, settable as GORUN_* variables or config keys as exec's are.
type controlFlags struct {
	set    *pflag.FlagSet
	broker string
	conn   ConnFlags
}

func newControlFlags(cmd *cobra.Command) *controlFlags {
	g := &controlFlags{set: pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)}
	g.set.StringVar(&g.broker, "broker", "", "the NATS JetStream broker (nats://HOST:4222; a cluster: its URLs, comma-separated)")
	g.conn.addFlags(g.set)
	cmd.Flags().AddFlagSet(g.set)
	return g
}

// resolve fills o from the flags, the environment and the config file.
func (g *controlFlags) resolve(cmd *cobra.Command, o *ControlOptions) error {
	configFile, _ := cmd.Flags().GetString("config")
	if _, err := applyEnvAndConfig(cmd.CommandPath(), configFile, g.set); err != nil {
		return err
	}
	if o.Broker = strings.TrimSpace(g.broker); o.Broker == "" {
		return usagef(cmd.CommandPath(), "--broker is required (or GORUN_BROKER)")
	}
	if err := g.conn.check(); err != nil {
		return usagef(cmd.CommandPath(), "%v", err)
	}
	o.Conn = g.conn
	return nil
}

func newControlOptions(ios *iostreams.IOStreams) *ControlOptions {
	return &ControlOptions{IO: ios, Connect: cluster.Dial, Now: time.Now}
}

// oneRun takes the run's id as the one argument.
func oneRun(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usagef(cmd.CommandPath(), "%s takes one run id (gorun runs lists them), got %d arguments", cmd.CommandPath(), len(args))
	}
	return nil
}

// NewCmdRuns returns `gorun runs`. runF, when not nil, receives the options instead
// of running them (for tests).
func NewCmdRuns(ios *iostreams.IOStreams, runF func(*ControlOptions) error) *cobra.Command {
	opts := newControlOptions(ios)
	cmd := &cobra.Command{
		Use:   "runs --broker URL [--json]",
		Short: "List the runs on a broker",
		Long: `List the runs a broker knows, oldest first: running ones, and finished ones until their
retention (exec --retain) has passed. For each: its id, its submitter's host, its
state (running, done or cancelled; a running run whose submitter has been silent for
a while says so), its tasks (all, or - for a stream), how many finished per status,
how many run now, and when it started.`,
		Example: `  gorun runs --broker nats://10.0.0.5:4222
  gorun runs --broker nats://10.0.0.5:4222 --json | jq -r '.[] | select(.state == "running") | .id'`,
		Args: noArgs,
	}
	flags := newControlFlags(cmd)
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the runs' records as a JSON array")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := flags.resolve(cmd, opts); err != nil {
			return err
		}
		if runF != nil {
			return runF(opts)
		}
		return runRuns(cmd.Context(), opts)
	}
	return cmd
}

// NewCmdStatus returns `gorun status`. runF, when not nil, receives the options
// instead of running them (for tests).
func NewCmdStatus(ios *iostreams.IOStreams, runF func(*ControlOptions) error) *cobra.Command {
	opts := newControlOptions(ios)
	cmd := &cobra.Command{
		Use:   "status RUN --broker URL [--json]",
		Short: "Show one run on a broker: its counts and running tasks",
		Long: `Show a run as its submitter last wrote it (every 2 seconds while it runs): its state,
submitter and last heartbeat, start and end, exit code, tasks per status, and each
running task with its attempt, its worker and how long it has run. With --watch, again
at each change until the run ends (on a terminal, in place of the last).`,
		Example: `  gorun status 3f9c2a71d0e84b15 --broker nats://10.0.0.5:4222

  # follow it until it ends
  gorun status 3f9c2a71d0e84b15 --broker nats://10.0.0.5:4222 --watch`,
		Args: oneRun,
	}
	flags := newControlFlags(cmd)
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the run's record as JSON")
	cmd.Flags().BoolVarP(&opts.Watch, "watch", "w", false, "print it again at each change (every 2s while it runs), until the run ends")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts.Run = args[0]
		if err := flags.resolve(cmd, opts); err != nil {
			return err
		}
		if runF != nil {
			return runF(opts)
		}
		return runStatus(cmd.Context(), opts)
	}
	return cmd
}

// NewCmdCancel returns `gorun cancel`. runF, when not nil, receives the options
// instead of running them (for tests).
func NewCmdCancel(ios *iostreams.IOStreams, runF func(*ControlOptions) error) *cobra.Command {
	opts := newControlOptions(ios)
	cmd := &cobra.Command{
		Use:   "cancel RUN --broker URL",
		Short: "Cancel a run on a broker, from any machine",
		Long: `Cancel a running run, whether its submitter is alive or gone. Its state becomes
cancelled and its queued attempts are removed at once; every worker stops the run's
running tasks (SIGTERM to the tree, the run's --grace, SIGKILL). A live submitter ends
as on an interrupt: running tasks cancelled, the rest skipped, its summary, journal
and report written, and it exits 3.

Cancelling a run that was already cancelled does nothing and succeeds; a run that
ended otherwise, or that the broker does not know, is an error (exit 1).`,
		Example: `  gorun cancel 3f9c2a71d0e84b15 --broker nats://10.0.0.5:4222`,
		Args:    oneRun,
	}
	flags := newControlFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts.Run = args[0]
		if err := flags.resolve(cmd, opts); err != nil {
			return err
		}
		if runF != nil {
			return runF(opts)
		}
		return runCancel(cmd.Context(), opts)
	}
	return cmd
}

// dial connects to the broker of opts.
func (o *ControlOptions) dial(ctx context.Context) (*cluster.Conn, error) {
	co, err := o.Conn.options(o.IO.ErrOut)
	if err != nil {
		return nil, err
	}
	return o.Connect(ctx, o.Broker, co)
}

func runRuns(ctx context.Context, opts *ControlOptions) error {
	conn, err := opts.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	runs, err := conn.ListRuns(ctx)
	if err != nil {
		return fmt.Errorf("broker %s: %w", opts.Broker, err)
	}
	if opts.JSON {
		out := make([]runJSON, 0, len(runs))
		for i := range runs {
			out = append(out, toJSON(&runs[i]))
		}
		return writeJSON(opts.IO.Out, out)
	}
	return writeRuns(opts.IO.Out, runs, opts.Now())
}

func runStatus(ctx context.Context, opts *ControlOptions) error {
	conn, err := opts.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	show := func(r *cluster.RunEntry) error {
		if opts.JSON {
			return writeJSON(opts.IO.Out, toJSON(r))
		}
		return writeStatus(opts.IO.Out, r, opts.Now())
	}
	if !opts.Watch {
		r, err := conn.GetRun(ctx, opts.Run)
		if err != nil {
			return fmt.Errorf("broker %s: %w", opts.Broker, err)
		}
		return show(&r)
	}
	// A run cancelled from elsewhere has one more record to come when its submitter
	// lives: its end and exit code. Wait a little for it.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var (
		werr  error
		first = true
		last  *time.Timer
	)
	err = conn.WatchRun(wctx, opts.Run, func(r cluster.RunEntry) bool {
		switch {
		case first:
		case opts.IO.IsStdoutTTY() && !opts.JSON:
			fmt.Fprint(opts.IO.Out, "\033[H\033[2J") // in place of the last
		case !opts.JSON:
			fmt.Fprintln(opts.IO.Out)
		}
		first = false
		if werr = show(&r); werr != nil || r.State == cluster.StateRunning {
			return werr == nil
		}
		if r.ExitCode != nil { // its submitter's last record
			return false
		}
		if last == nil {
			last = time.AfterFunc(lastRecordWait, stopWatch)
		}
		return true
	})
	if last != nil {
		last.Stop()
	}
	switch {
	case werr != nil:
		return werr
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case err != nil && wctx.Err() == nil:
		return fmt.Errorf("broker %s: %w", opts.Broker, err)
	}
	return nil
}

// lastRecordWait is how long status --watch waits, after a cancel, for the last
// record of a submitter that may be alive.
const lastRecordWait = 5 * time.Second

func runCancel(ctx context.Context, opts *ControlOptions) error {
	conn, err := opts.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	host, _ := os.Hostname()
	r, changed, err := conn.CancelRun(ctx, opts.Run, fmt.Sprintf("by gorun cancel on %s", host))
	switch {
	case err != nil:
		return fmt.Errorf("broker %s: %w", opts.Broker, err)
	case changed:
		_, err = fmt.Fprintf(opts.IO.Out, "run %s cancelled\n", r.ID)
		return err
	case r.State == cluster.StateCancelled:
		_, err = fmt.Fprintf(opts.IO.Out, "run %s was already cancelled (%s)\n", r.ID, r.Reason)
		return err
	}
	return fmt.Errorf("run %s already ended (%s): nothing to cancel", r.ID, r.State)
}

// runJSON is a run's record as --json prints it.
type runJSON struct {
	ID string `json:"id"`
	cluster.RunRecord
	Written time.Time `json:"written"` // the broker's time of the record's last write
}

func toJSON(r *cluster.RunEntry) runJSON {
	return runJSON{ID: r.ID, RunRecord: r.RunRecord, Written: r.Written}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// silentAfter is how long a running run's record may go unwritten before runs and
// status say that its submitter is silent: a few missed heartbeats.
const silentAfter = 10 * time.Second

// stateText is a run's state, and for a running run whose record has not been
// written for a while, since when.
func stateText(r *cluster.RunEntry, now time.Time) string {
	if r.State == cluster.StateRunning && !r.Written.IsZero() && now.Sub(r.Written) > silentAfter {
		return fmt.Sprintf("running (silent %v)", now.Sub(r.Written).Round(time.Second))
	}
	return r.State
}

func totalText(r *cluster.RunEntry) string {
	if r.Total < 0 {
		return "-"
	}
	return fmt.Sprint(r.Total)
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// writeRuns prints a table of the runs.
func writeRuns(w io.Writer, runs []cluster.RunEntry, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tHOST\tSTATE\tTASKS\tSUCCEEDED\tFAILED\tTIMED_OUT\tCANCELLED\tSKIPPED\tRUNNING\tSTARTED")
	for i := range runs {
		r := &runs[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", r.ID, dash(r.Host), stateText(r, now), totalText(r),
			r.Counts[string(jobs.Succeeded)], r.Counts[string(jobs.Failed)]+r.Counts[string(jobs.Invalid)], r.Counts[string(jobs.TimedOut)],
			r.Counts[string(jobs.Cancelled)], r.Counts[string(jobs.Skipped)], runningCount(r), timeText(r.Started))
	}
	return tw.Flush()
}

// writeStatus prints one run.
func writeStatus(w io.Writer, r *cluster.RunEntry, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s\n", r.ID)
	fmt.Fprintf(tw, "state\t%s\n", stateText(r, now))
	if r.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s\n", r.Reason)
	}
	if r.Host != "" {
		fmt.Fprintf(tw, "submitter\t%s pid %d\n", r.Host, r.PID)
	}
	if !r.Written.IsZero() {
		fmt.Fprintf(tw, "written\t%v ago\n", now.Sub(r.Written).Round(time.Second))
	}
	fmt.Fprintf(tw, "started\t%s\n", timeText(r.Started))
	if !r.Ended.IsZero() {
		fmt.Fprintf(tw, "ended\t%s\n", timeText(r.Ended))
	}
	if r.ExitCode != nil {
		fmt.Fprintf(tw, "exit code\t%d\n", *r.ExitCode)
	}
	fmt.Fprintf(tw, "tasks\t%s\n", countsText(r))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Running) == 0 {
		return nil
	}
	if n := runningCount(r); n > len(r.Running) {
		fmt.Fprintf(w, "\nthe %d longest running of %d:\n", len(r.Running), n)
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tATTEMPT\tWORKER\tRUNNING FOR")
	for _, t := range r.Running {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%v\n", t.ID, t.Attempt, t.Worker, r.Heartbeat.Sub(t.Since).Round(time.Second))
	}
	return tw.Flush()
}

// countsText is "N: a succeeded, b failed, …, r running, q waiting": the statuses
// with a count, in report order.
func countsText(r *cluster.RunEntry) string {
	var parts []string
	done := 0
	for _, s := range jobs.Statuses {
		if n := r.Counts[string(s)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
			done += n
		}
	}
	if n := runningCount(r); n > 0 {
		parts = append(parts, fmt.Sprintf("%d running", n))
	}
	if r.Total >= 0 && r.State == cluster.StateRunning {
		if n := r.Total - done - runningCount(r); n > 0 {
			parts = append(parts, fmt.Sprintf("%d waiting", n))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "none finished")
	}
	return totalText(r) + ": " + strings.Join(parts, ", ")
}

// runningCount is how many tasks run: the record lists at most a thousand of them.
func runningCount(r *cluster.RunEntry) int { return max(r.RunningN, len(r.Running)) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
