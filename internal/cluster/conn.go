// Package cluster runs attempts of tasks on other machines, through NATS JetStream.
// It holds the two ends of a remote attempt: the Executor, which the scheduler of a
// run (the pipeline) uses as its runner, publishes each attempt to a work-queue
// stream and receives its output and its end; the Worker takes attempts one per free
// slot, runs each with the local executor under a lease, streams its output, and
// reports its end. The Worker decides nothing: retries, timeouts, halts and order are
// the scheduler's. Delivery is at least once: an attempt whose worker dies or loses
// its lease is delivered again, and every execution is counted.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gorun/gorun/internal/jobs"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream objects a run uses.
const (
	TasksStream   = "GORUN_TASKS"   // work queue of attempts: subject gorun.task.<run>
	RunsBucket    = "gorun_runs"    // key <run> -> RunRecord (JSON): state, lease, the control plane's record
	WorkersBucket = "gorun_workers" // key <worker> -> its slots, while it lives
	// legacyConsumer is the consumer all workers shared before each run had its own;
	// it would overlap the runs' consumers on the work queue, so Connect removes it.
	legacyConsumer = "gorun-workers"
)

// Run states in the RunsBucket.
const (
	StateRunning = "running"
	StateDone    = "done"
)

// DefaultLease is how long a delivered attempt may go without its worker renewing
// the lease before the broker delivers it again, to another worker.
const DefaultLease = 30 * time.Second

// MinLease is the shortest lease a run may have.
const MinLease = 100 * time.Millisecond

// MaxDeliver bounds deliveries of one attempt (crashes of its workers included).
const MaxDeliver = 10

// workerTTL is how long a worker stays listed in the WorkersBucket after its last
// announcement; it announces itself every third of it.
const workerTTL = 15 * time.Second

func taskSubject(run string) string { return "gorun.task." + run }

// consumerName is the durable consumer of a run's attempts.
func consumerName(run string) string { return "gorun-run-" + run }

// runInfo is what a worker reads of a run's entry in the RunsBucket (a RunRecord).
type runInfo struct {
	State string              `json:"state"`
	Lease time.Duration       `json:"lease"`
	On    []map[string]string `json:"on,omitempty"`    // the label sets of its routes: see Routes
	Needs []jobs.Resources    `json:"needs,omitempty"` // the requests of its routes
}

// MinServer is the oldest server gorun accepts: older ones stall other runs when one
// run's subject is purged.
var MinServer = [2]int{2, 10}

// Conn is a connection to the broker with its JetStream objects set up.
type Conn struct {
	NC      *nats.Conn
	JS      jetstream.JetStream
	Tasks   jetstream.Stream
	Runs    jetstream.KeyValue
	Workers jetstream.KeyValue
	Results jetstream.Stream // what each run did: see ResultsStream
	// Replicas is the replication of the task stream; the consumers of runs are
	// created at it.
	Replicas int
}

// Connect connects to the broker at url (or to one of a comma-separated list of URLs
// of one cluster's brokers), checks the server's version, and sets up the stream and
// the buckets runs need: those that exist are used as they are when compatible (an
// error wrapping ErrIncompatible when not), never changed; missing ones are created
// at the task stream's replication, or when it is missing too, at DefaultReplicas
// of the cluster's brokers the client knows of. The connection reconnects by itself,
// without limit, to any broker of the list or of the cluster when its broker goes.
// extra adds options (credentials, TLS: see Dial).
func Connect(ctx context.Context, url string, extra ...nats.Option) (*Conn, error) {
	opts := append(append([]nats.Option{nats.Name("gorun")}, failover...), extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to broker %s: %w", url, err)
	}
	if err := checkVersion(nc.ConnectedServerVersion()); err != nil {
		nc.Close()
		return nil, fmt.Errorf("broker %s: %w", url, err)
	}
	c := &Conn{NC: nc}
	if err := c.setup(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("broker %s: %w", url, err)
	}
	return c, nil
}

func checkVersion(v string) error {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) >= 2 {
		major, err1 := strconv.Atoi(parts[0])
		minor, err2 := strconv.Atoi(parts[1])
		if err1 == nil && err2 == nil && (major > MinServer[0] || major == MinServer[0] && minor >= MinServer[1]) {
			return nil
		}
	}
	return fmt.Errorf("nats-server %s is too old: gorun needs %d.%d or newer (older servers stall other runs when one run is purged)", v, MinServer[0], MinServer[1])
}

func (c *Conn) setup(ctx context.Context) error {
	js, err := jetstream.New(c.NC)
	if err != nil {
		return err
	}
	c.JS = js
	replicas, err := c.learnReplicas(ctx)
	if err != nil {
		return err
	}
	if err := c.ensure(ctx, replicas, false); err != nil {
		return err
	}
	if err := js.DeleteConsumer(ctx, TasksStream, legacyConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("remove the shared consumer of older versions: %w", err)
	}
	return nil
}

// LiveSlots returns the slots of the workers that announced themselves within the
// last 15 seconds, summed; 0 when none did.
func (c *Conn) LiveSlots(ctx context.Context) (int, error) {
	keys, err := c.Workers.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("list workers: %w", err)
	}
	total := 0
	for k := range keys.Keys() {
		e, err := c.Workers.Get(ctx, k)
		if err != nil {
			continue // gone meanwhile
		}
		if w, ok := decodeWorker(e.Value()); ok {
			total += w.Slots
		}
	}
	return total, nil
}

// Close drains and closes the connection.
func (c *Conn) Close() {
	_ = c.NC.Drain()
}

// Serve runs an embedded NATS server with JetStream, its store in dir (locked: a
// second broker on it is refused with ErrStoreInUse), listening on listen (host:port,
// [::1]:port for IPv6; port 0 picks one), guarded by sec: off loopback, it refuses
// to start without a token or client certificates (ErrAnonymous). Options such as
// WithCluster change the server's options. It returns once the server takes
// connections, or at once if it cannot listen (the port is taken); call Shutdown on
// the result to stop it.
func Serve(dir, listen string, sec BrokerSecurity, options ...ServeOption) (*Broker, error) {
	host, port, err := parseListen(listen)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	opts := &server.Options{ServerName: "gorun-broker", Host: host, Port: port, JetStream: true, StoreDir: dir, NoSigs: true}
	if err := sec.apply(opts); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	for _, o := range options {
		if err := o(opts); err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
	}
	if err := sec.guardRoutes(opts); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return start(opts)
}
