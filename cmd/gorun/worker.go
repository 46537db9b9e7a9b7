package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

// WorkerOptions is everything `gorun worker` needs: injected dependencies first, then
// the values of its flags.
type WorkerOptions struct {
	IO         *iostreams.IOStreams
	Connect    func(ctx context.Context, url string, o cluster.ConnOptions) (*cluster.Conn, error)
	StartGuard func(id, cgroupDir string) (*process.Guard, error) // nil: no guard
	Hurry      <-chan struct{}                                    // closed at a second interrupt

	Broker  string
	Conn    ConnFlags
	Name    string // "": host/pid
	Slots   int
	Grace   time.Duration
	AckWait time.Duration
	Verbose bool
	// Res is what the worker announces: its capacity (--cpus, --memory, --gpus; else
	// its machine's) and its labels (--label).
	Res      ResourceFlags
	Capacity jobs.Capacity
}

// NewCmdWorker returns `gorun worker`. runF, when not nil, receives the options
// instead of running them (for tests).
func NewCmdWorker(ios *iostreams.IOStreams, hurry <-chan struct{}, runF func(*WorkerOptions) error) *cobra.Command {
	opts := &WorkerOptions{IO: ios, Connect: cluster.Dial, StartGuard: startGuard, Hurry: hurry}
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

  # with a cluster of three brokers: any of them will do, and it fails over
  gorun worker --broker nats://10.0.0.5:4222,nats://10.0.0.6:4222,nats://10.0.0.7:4222 -j 8

  # as a systemd service: SIGTERM drains it
  ExecStart=/usr/local/bin/gorun worker --broker nats://10.0.0.5:4222 --token-file /etc/gorun/token -j 4 --grace 1m`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Broker == "" {
				return usagef(cmd.CommandPath(), "--broker is required")
			}
			if opts.Slots < 1 {
				return usagef(cmd.CommandPath(), "--workers must be at least 1, got %d", opts.Slots)
			}
			if err := opts.Conn.check(); err != nil {
				return usagef(cmd.CommandPath(), "%v", err)
			}
			if err := opts.resolveCapacity(cmd.CommandPath(), cmd.Flags()); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runWorker(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Broker, "broker", "", "the NATS JetStream broker (nats://HOST:4222; a cluster: its URLs, comma-separated)")
	f.IntVarP(&opts.Slots, "workers", "j", 1, "tasks running at once on this worker")
	f.DurationVar(&opts.Grace, "grace", 5*time.Second, "after SIGTERM, wait this long, then SIGKILL a task's process group; also the drain time")
	f.DurationVar(&opts.AckWait, "ack-wait", cluster.DefaultLease, "no effect: the lease belongs to each run (gorun exec --ack-wait)")
	_ = f.MarkDeprecated("ack-wait", "the lease belongs to each run: set it with gorun exec --ack-wait")
	f.BoolVarP(&opts.Verbose, "verbose", "v", false, "log task events on stderr")
	f.StringVar(&opts.Name, "name", "", "this worker's name in reports and logs (default: HOST/PID)")
	f.StringSliceVar(&opts.Res.Labels, "label", nil, "what this worker is: KEY=VALUE, repeated or comma-separated (gpu=a100); it also takes the tasks whose on: requires labels it all has")
	f.StringVar(&opts.Res.CPUs, "cpus", "", "CPUs this worker has: it announces them and runs no more tasks at once than their resources.cpu fit (default: this machine's)")
	f.StringVar(&opts.Res.Memory, "memory", "", "memory this worker has, announced and kept to as the CPUs (default: the memory available when it starts)")
	f.StringVar(&opts.Res.GPUs, "gpus", "", "GPUs this worker has: a list (0,1) or a count N (0 to N-1), handed to its tasks in CUDA_VISIBLE_DEVICES (default: CUDA_VISIBLE_DEVICES, else none)")
	opts.Conn.addFlags(f)
	return cmd
}

// resolveCapacity reads the worker's --cpus, --memory, --gpus and --label into its
// Capacity, the machine's where not given.
func (o *WorkerOptions) resolveCapacity(cmdPath string, f *pflag.FlagSet) error {
	s := &sources{cmd: cmdPath, from: map[string]string{}}
	f.Visit(func(fl *pflag.Flag) { s.from[fl.Name] = "--" + fl.Name })
	e := &ExecOptions{}
	if err := o.Res.resolve(f, s, e); err != nil {
		return err
	}
	o.Capacity = e.localCapacity()
	return nil
}

// runWorker serves tasks until ctx ends: a drain on a signal is a clean end.
func runWorker(ctx context.Context, opts *WorkerOptions) error {
	co, err := opts.Conn.options(opts.IO.ErrOut)
	if err != nil {
		return err
	}
	conn, err := opts.Connect(ctx, opts.Broker, co)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A guard kills this worker's tasks if the worker dies; the broker then
	// delivers them again, to another worker.
	guardID := newRunID()
	host, _ := os.Hostname()
	runner := &process.Runner{Grace: opts.Grace, BaseEnv: append(os.Environ(), process.GuardVar+"="+guardID), Host: host}
	containment, why, release, err := guardRunner(runner, guardID, opts.StartGuard, opts.Hurry)
	if err != nil {
		return err
	}
	defer release()
	w := &cluster.Worker{Conn: conn, Runner: runner, Slots: opts.Slots, Grace: opts.Grace, Name: opts.Name,
		Labels: opts.Capacity.Labels, MilliCPU: opts.Capacity.MilliCPU, Memory: opts.Capacity.Memory, GPUs: opts.Capacity.GPUs}
	if w.Log = newLogger(opts.Verbose, "text", opts.IO.ErrOut); w.Log != nil {
		w.Log.Info("worker containment", "containment", containment)
		if why != nil {
			w.Log.Info("containment limited", "containment", containment, "reason", why.Error())
		}
	}
	err = w.Run(ctx)
	if ctx.Err() != nil {
		return nil // drained on a signal: a clean end
	}
	return err
}

// BrokerOptions is everything `gorun broker` needs: injected dependencies first, then
// the values of its flags.
type BrokerOptions struct {
	IO    *iostreams.IOStreams
	Serve func(store, listen string, sec cluster.BrokerSecurity) (Server, error) // with the cluster flags below
	// Provision sets up the stream and buckets on the served broker at replicas and
	// returns the replication they have; it waits while the cluster forms.
	Provision func(ctx context.Context, s Server, sec cluster.BrokerSecurity, replicas int) (int, error)

	Store         string
	Listen        string
	Sec           BrokerSecFlags
	Name          string   // server name; "": the host name
	ClusterListen string   // host:port for the routes of the other brokers; "": alone
	Routes        []string // nats-route URLs of the other brokers
	Replicas      int      // 0: DefaultReplicas(len(Routes)+1)
}

// Server is a running broker, as cluster.Serve starts it.
type Server interface {
	ClientURL() string
	Shutdown()
	WaitForShutdown()
}

// NewCmdBroker returns `gorun broker`. runF, when not nil, receives the options
// instead of running them (for tests).
func NewCmdBroker(ios *iostreams.IOStreams, runF func(*BrokerOptions) error) *cobra.Command {
	opts := &BrokerOptions{IO: ios}
	opts.Serve = func(store, listen string, sec cluster.BrokerSecurity) (Server, error) {
		name := opts.Name
		if name == "" && opts.ClusterListen != "" {
			name, _ = os.Hostname()
		}
		return cluster.Serve(store, listen, sec, cluster.WithCluster(name, opts.ClusterListen, opts.Routes))
	}
	opts.Provision = func(ctx context.Context, s Server, sec cluster.BrokerSecurity, replicas int) (int, error) {
		said := false
		// In process: the broker's own connection needs no TLS, only its token.
		url := s.ClientURL()
		var conn []nats.Option
		if b, ok := s.(*cluster.Broker); ok {
			conn = append(conn, nats.InProcessServer(b.Server))
			url = strings.Replace(url, "tls://", "nats://", 1) // in process, TLS is not required
		}
		if sec.Token != "" {
			conn = append(conn, nats.Token(sec.Token))
		}
		return cluster.Provision(ctx, url, replicas, func(err error) {
			if !said { // once: the errors of a forming cluster vary
				said = true
				fmt.Fprintf(ios.ErrOut, "gorun broker: waiting for the cluster to set up the streams at %d replicas: %v\n", replicas, err)
			}
		}, conn...)
	}
	cmd := &cobra.Command{
		Use:   "broker --store DIR [--listen 127.0.0.1:4222] [--cluster-listen HOST:PORT --routes URL,URL]",
		Short: "Run an embedded NATS JetStream broker, alone or in a cluster",
		Long: `Run a NATS server with JetStream, its streams stored in DIR, for gorun exec --broker and
gorun worker. It sets up the stream and buckets runs use, then prints its URL on stdout,
and stops on SIGINT or SIGTERM. It binds to 127.0.0.1 unless told otherwise: anyone who
can publish to it can run commands on every worker, so on any other address it refuses
to start without a token (--token-file or GORUN_TOKEN) or client certificates
(--tls-ca). Its store is locked while it runs: a second broker on it is refused.

With --cluster-listen and --routes, brokers on three (or five) machines form one
JetStream cluster: each lists the route URLs of all the others, and the cluster's size
is taken as the routes plus one. The streams, consumers and buckets are replicated on
--replicas brokers (default: 3 in a cluster of three or more, else 1), so a run
survives the loss of a broker. A broker in a cluster prints its URL once the cluster
has formed and the streams exist at that replication. gorun raises the replication of
existing streams to --replicas, never lowers it, and never changes their other
settings: it refuses streams it cannot work with.`,
		Example: `  # a broker for one machine's tests, on a free port
  gorun broker --store /tmp/gorun-broker --listen 127.0.0.1:0

  # a small fleet on a private network
  gorun broker --store /var/lib/gorun/broker --listen 10.0.0.5:4222 --token-file /etc/gorun/token

  # with TLS, and client certificates instead of a token
  gorun broker --store /var/lib/gorun/broker --listen 10.0.0.5:4222 \
    --tls-cert broker.pem --tls-key broker-key.pem --tls-ca ca.pem

  # one of three brokers of a cluster (the same on 10.0.0.6 and 10.0.0.7)
  gorun broker --store /var/lib/gorun/broker --listen 10.0.0.5:4222 --name b1 --token-file /etc/gorun/token \
    --cluster-listen 10.0.0.5:6222 --routes nats-route://10.0.0.6:6222,nats-route://10.0.0.7:6222`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Store == "" {
				return usagef(cmd.CommandPath(), "--store is required")
			}
			if err := opts.Sec.check(); err != nil {
				return usagef(cmd.CommandPath(), "%v", err)
			}
			if len(opts.Routes) > 0 && opts.ClusterListen == "" {
				return usagef(cmd.CommandPath(), "--routes needs --cluster-listen")
			}
			size := len(opts.Routes) + 1
			switch {
			case opts.Replicas == 0:
				opts.Replicas = cluster.DefaultReplicas(size)
			case opts.Replicas < 0 || opts.Replicas > cluster.MaxReplicas:
				return usagef(cmd.CommandPath(), "--replicas must be 1 to %d, got %d", cluster.MaxReplicas, opts.Replicas)
			case opts.Replicas > size:
				return usagef(cmd.CommandPath(), "--replicas %d needs a cluster of %d brokers: --routes lists %d others", opts.Replicas, opts.Replicas, len(opts.Routes))
			}
			if runF != nil {
				return runF(opts)
			}
			return runBroker(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Store, "store", "", "directory of the JetStream store")
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:4222", "address to listen on for clients, HOST:PORT or [IPv6]:PORT (port 0: any free port)")
	opts.Sec.addFlags(f)
	f.StringVar(&opts.Name, "name", "", "the broker's name, unique in its cluster (default: the host name in a cluster)")
	f.StringVar(&opts.ClusterListen, "cluster-listen", "", "address to listen on for the routes of the other brokers of a cluster (HOST:PORT)")
	f.StringSliceVar(&opts.Routes, "routes", nil, "route URLs of the other brokers of the cluster (nats-route://HOST:PORT,...)")
	f.IntVar(&opts.Replicas, "replicas", 0, "replication of streams, consumers and buckets (default: 3 with 2 or more --routes, else 1)")
	return cmd
}

// runBroker serves until ctx ends, once the streams are set up and it has printed its
// URL.
func runBroker(ctx context.Context, opts *BrokerOptions) error {
	sec, err := opts.Sec.security()
	if err != nil {
		return err
	}
	s, err := opts.Serve(opts.Store, opts.Listen, sec)
	if err != nil {
		return err
	}
	stop := func() {
		s.Shutdown()
		s.WaitForShutdown()
	}
	if _, err := opts.Provision(ctx, s, sec, max(opts.Replicas, 1)); err != nil {
		stop()
		if errors.Is(err, context.Canceled) {
			return nil // stopped while the cluster formed
		}
		return fmt.Errorf("broker: %w", err)
	}
	if _, err := opts.IO.Out.Write([]byte(s.ClientURL() + "\n")); err != nil {
		stop()
		return err
	}
	<-ctx.Done()
	stop()
	return nil
}
