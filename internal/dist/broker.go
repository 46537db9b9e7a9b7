// Package dist runs tasks across machines on NATS JetStream: a submitter publishes a
// run's tasks to a work-queue stream and collects their results from a results stream;
// workers fetch tasks one per free slot and run them with the same executor as a local
// run. Delivery is at least once: a task whose worker dies is delivered again after
// the ack wait, and the submitter counts the first result of each task.
package dist

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream objects a run uses.
const (
	TasksStream   = "GORUN_TASKS"   // work queue: subject gorun.task.<run>
	ResultsStream = "GORUN_RESULTS" // results: subject gorun.res.<run>.<index>
	ConsumerName  = "gorun-workers" // the durable pull consumer all workers share
	RunsBucket    = "gorun_runs"    // key <run> -> "running" | "cancelling" | "done"
)

// Run states in the RunsBucket.
const (
	StateRunning    = "running"
	StateCancelling = "cancelling"
	StateDone       = "done"
)

// DefaultAckWait is how long a delivered task may go without a heartbeat before the
// broker delivers it again, to another worker.
const DefaultAckWait = 30 * time.Second

// MaxDeliver bounds deliveries of one task (crashes of its workers included).
const MaxDeliver = 10

func taskSubject(run string) string { return "gorun.task." + run }

func resultSubject(run string, index int) string {
	return "gorun.res." + run + "." + strconv.Itoa(index)
}

// MinServer is the oldest server gorun accepts: older ones stall other runs when one
// run's subject is purged.
var MinServer = [2]int{2, 10}

// Conn is a connection to the broker with its JetStream objects set up.
type Conn struct {
	NC      *nats.Conn
	JS      jetstream.JetStream
	Tasks   jetstream.Stream
	Cons    jetstream.Consumer
	Runs    jetstream.KeyValue
	AckWait time.Duration
}

// Connect connects to the broker at url, checks the server's version, and creates
// (or updates) the streams, the consumer and the bucket a run needs. The connection
// reconnects by itself if the broker restarts.
func Connect(ctx context.Context, url string, ackWait time.Duration) (*Conn, error) {
	nc, err := nats.Connect(url, nats.Name("gorun"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("connect to broker %s: %w", url, err)
	}
	if err := checkVersion(nc.ConnectedServerVersion()); err != nil {
		nc.Close()
		return nil, fmt.Errorf("broker %s: %w", url, err)
	}
	c := &Conn{NC: nc, AckWait: ackWait}
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
	c.Tasks, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: TasksStream, Subjects: []string{"gorun.task.>"}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("tasks stream: %w", err)
	}
	if _, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: ResultsStream, Subjects: []string{"gorun.res.>"}, Retention: jetstream.LimitsPolicy,
		Storage: jetstream.FileStorage, MaxAge: 7 * 24 * time.Hour, Duplicates: 10 * time.Minute,
	}); err != nil {
		return fmt.Errorf("results stream: %w", err)
	}
	c.Cons, err = js.CreateOrUpdateConsumer(ctx, TasksStream, jetstream.ConsumerConfig{
		Durable: ConsumerName, AckPolicy: jetstream.AckExplicitPolicy, AckWait: c.AckWait,
		MaxDeliver: MaxDeliver, FilterSubject: "gorun.task.>", MaxAckPending: 100_000,
	})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	c.Runs, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: RunsBucket, TTL: 7 * 24 * time.Hour})
	if err != nil {
		return fmt.Errorf("runs bucket: %w", err)
	}
	return nil
}

// Close drains and closes the connection.
func (c *Conn) Close() {
	_ = c.NC.Drain()
}

// Serve runs an embedded NATS server with JetStream, its store in dir, listening on
// listen (host:port; port 0 picks one). It returns once the server takes connections;
// call Shutdown on the result to stop it.
func Serve(dir, listen string) (*server.Server, error) {
	host, portText, ok := strings.Cut(listen, ":")
	if !ok {
		return nil, fmt.Errorf("listen %q: want host:port", listen)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("listen %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "gorun-broker", Host: host, Port: port, JetStream: true, StoreDir: dir, NoSigs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("broker: not ready after 10s")
	}
	return s, nil
}
