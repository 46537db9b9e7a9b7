package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/jobs"
)

func newCmdWorker(ios *iostreams.IOStreams, hurry <-chan struct{}) *cobra.Command {
	var (
		url     string
		slots   int
		grace   time.Duration
		ackWait time.Duration
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "worker --broker URL [-j N]",
		Short: "Run tasks from a NATS JetStream broker",
		Long: `Execute attempts of the runs that gorun exec --broker submits, N at a time, with the
same executor as a local run (process groups or cgroups, the task environment plus
GORUN_RUN_ID). A worker only executes: the submitter decides retries, timeouts and
halts. An attempt is fetched only when a slot is free; while it runs, the worker
renews its lease (the run's --ack-wait) and streams its output to the submitter; when
it ends, its end is reported before the attempt is acknowledged. A worker that cannot
renew a lease for the whole lease time stops that attempt: the broker may have
delivered it elsewhere.

The first SIGINT or SIGTERM drains the worker: it takes no new attempt, lets running
ones finish for up to --grace, hands those still running back to the broker (they run
elsewhere), and exits. A second signal kills its tasks at once.`,
		Example: `  # on each machine of the fleet
  gorun worker --broker nats://broker.internal:4222 -j 8

  # as a systemd service: SIGTERM drains it
  ExecStart=/usr/local/bin/gorun worker --broker nats://10.0.0.5:4222 -j 4 --grace 1m`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if url == "" {
				return usagef(cmd.CommandPath(), "--broker is required")
			}
			if slots < 1 {
				return usagef(cmd.CommandPath(), "--workers must be at least 1, got %d", slots)
			}
			conn, err := cluster.Connect(cmd.Context(), url)
			if err != nil {
				return err
			}
			defer conn.Close()
			// A guard kills this worker's tasks if the worker dies; the broker then
			// delivers them again, to another worker.
			guardID := newRunID()
			runner := &jobs.Runner{Grace: grace, BaseEnv: append(os.Environ(), jobs.GuardVar+"="+guardID)}
			containment, why := runner.Contain(guardID)
			g, err := startGuard(guardID, runner.CgroupDir())
			if err != nil {
				_ = runner.Close()
				return err
			}
			defer func() {
				_ = runner.Close() // stops reaping before the guard, this worker's child, exits
				_ = g.Close()
			}()
			defer onHurry(hurry, runner.KillAll)()
			w := &cluster.Worker{Conn: conn, Runner: runner, Slots: slots, Grace: grace}
			if verbose {
				w.Log = (&ExecOptions{Verbose: true, LogFormat: "text"}).logger(ios.ErrOut)
				w.Log.Info("worker containment", "containment", containment)
				if why != nil {
					w.Log.Info("containment limited", "containment", containment, "reason", why.Error())
				}
			}
			err = w.Run(cmd.Context())
			if cmd.Context().Err() != nil {
				return nil // drained on a signal: a clean end
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "broker", "", "the NATS JetStream broker (nats://HOST:4222)")
	f.IntVarP(&slots, "workers", "j", 1, "tasks running at once on this worker")
	f.DurationVar(&grace, "grace", 5*time.Second, "after SIGTERM, wait this long, then SIGKILL a task's process group; also the drain time")
	f.DurationVar(&ackWait, "ack-wait", cluster.DefaultLease, "no effect: the lease belongs to each run (gorun exec --ack-wait)")
	_ = f.MarkDeprecated("ack-wait", "the lease belongs to each run: set it with gorun exec --ack-wait")
	f.BoolVarP(&verbose, "verbose", "v", false, "log task events on stderr")
	return cmd
}

func newCmdBroker(ios *iostreams.IOStreams) *cobra.Command {
	var store, listen string
	cmd := &cobra.Command{
		Use:   "broker --store DIR [--listen 127.0.0.1:4222]",
		Short: "Run an embedded NATS JetStream broker for small fleets and tests",
		Long: `Run a NATS server with JetStream, its streams stored in DIR, for gorun exec --broker and
gorun worker. It prints its URL on stdout once it takes connections, and stops on
SIGINT or SIGTERM. It binds to 127.0.0.1 unless told otherwise: anyone who can publish
to it can run commands on every worker. For production, run nats-server 2.10 or newer
with authentication, TLS and replicated streams.`,
		Example: `  # a broker for one machine's tests, on a free port
  gorun broker --store /tmp/gorun-broker --listen 127.0.0.1:0

  # a small fleet on a private network
  gorun broker --store /var/lib/gorun/broker --listen 10.0.0.5:4222`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if store == "" {
				return usagef(cmd.CommandPath(), "--store is required")
			}
			s, err := cluster.Serve(store, listen)
			if err != nil {
				return err
			}
			if _, err := ios.Out.Write([]byte(s.ClientURL() + "\n")); err != nil {
				s.Shutdown()
				return err
			}
			<-cmd.Context().Done()
			s.Shutdown()
			s.WaitForShutdown()
			return nil
		},
	}
	cmd.Flags().StringVar(&store, "store", "", "directory of the JetStream store")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:4222", "address to listen on (port 0: any free port)")
	return cmd
}
