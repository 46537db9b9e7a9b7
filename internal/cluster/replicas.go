package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterName is the name of the NATS cluster that `gorun broker`s form.
const ClusterName = "gorun"

// MaxReplicas is the highest replication JetStream allows.
const MaxReplicas = 5

// ErrIncompatible is wrapped by the error of Connect and Provision when a stream or
// bucket gorun needs exists with settings gorun cannot work with. gorun never changes
// them: an operator removes or fixes the object.
var ErrIncompatible = errors.New("incompatible with gorun")

// DefaultReplicas is the replication of gorun's streams, consumers and buckets in a
// cluster of size brokers: 3 in a cluster of three or more, else 1.
func DefaultReplicas(size int) int {
	if size >= 3 {
		return 3
	}
	return 1
}

// ServeOption changes the options of the server Serve starts.
type ServeOption func(*server.Options) error

// WithCluster makes the server Serve starts a member of a JetStream cluster: name is
// its server name (unique in the cluster), listen the host:port it takes routes from
// the other members on, routes their nats-route URLs (nats-route://HOST:PORT). An
// empty listen leaves the server alone, with name as its server name.
func WithCluster(name, listen string, routes []string) ServeOption {
	return func(o *server.Options) error {
		if name != "" {
			o.ServerName = name
		}
		if listen == "" {
			if len(routes) > 0 {
				return errors.New("routes need a cluster listen address")
			}
			return nil
		}
		host, portText, err := net.SplitHostPort(listen)
		if err != nil {
			return fmt.Errorf("cluster listen %q: want host:port: %w", listen, err)
		}
		port, err := strconv.Atoi(portText)
		if err != nil || port < 1 || port > 65535 {
			return fmt.Errorf("cluster listen %q: want a port from 1 to 65535 that the other brokers route to", listen)
		}
		o.Cluster = server.ClusterOpts{Name: ClusterName, Host: host, Port: port}
		for _, r := range routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" || u.Scheme != "nats-route" && u.Scheme != "nats" && u.Scheme != "tls" {
				return fmt.Errorf("route %q: want nats-route://HOST:PORT", r)
			}
			o.Routes = append(o.Routes, u)
		}
		return nil
	}
}

// failover are the options of every client connection: reconnect without limit, to
// any broker of the given list or of the cluster, and take a broker that stopped
// answering (a machine that died without closing its connections) for dead within
// about 15 seconds instead of nats.go's default of minutes.
var failover = []nats.Option{
	nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
	nats.PingInterval(5 * time.Second), nats.MaxPingsOutstanding(3),
}

// submitterAway is how long a worker keeps asking a submitter whose subjects have no
// responders before it takes it for gone: while the broker of a submitter dies and
// the submitter reconnects to another broker of the cluster, its subscriptions are
// nowhere for a moment.
const submitterAway = 2 * time.Second

// awayClock tells when responders have been missing for submitterAway.
type awayClock struct{ since time.Time }

// gone records one more request without responders and reports whether they have
// been missing for submitterAway.
func (a *awayClock) gone() bool {
	if a.since.IsZero() {
		a.since = time.Now()
	}
	return time.Since(a.since) >= submitterAway
}

// objects are the stream and buckets gorun needs, at replicas.
func objects(replicas int) (jetstream.StreamConfig, []jetstream.KeyValueConfig) {
	return jetstream.StreamConfig{
			Name: TasksStream, Subjects: []string{"gorun.task.>"}, Retention: jetstream.WorkQueuePolicy,
			Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute, Replicas: replicas,
		}, []jetstream.KeyValueConfig{
			{Bucket: RunsBucket, TTL: 7 * 24 * time.Hour, Storage: jetstream.FileStorage, Replicas: replicas},
			{Bucket: WorkersBucket, TTL: workerTTL, Storage: jetstream.FileStorage, Replicas: replicas},
		}
}

// ensure sets up the streams and buckets gorun needs. One that exists is used as it
// is when compatible (an ErrIncompatible error when not); its replication is raised
// when raise is set (the broker's --replicas), and never lowered. A missing task
// stream is created at want replicas, missing buckets and the results stream at the
// task stream's.
// c.Replicas becomes the replication of the task stream.
func (c *Conn) ensure(ctx context.Context, want int, raise bool) error {
	streamCfg, _ := objects(want)
	var err error
	if c.Tasks, err = ensureStream(ctx, c.JS, streamCfg, raise, checkTasks); err != nil {
		return fmt.Errorf("tasks stream: %w", err)
	}
	c.Replicas = max(c.Tasks.CachedInfo().Config.Replicas, 1)
	_, buckets := objects(c.Replicas) // the stream's: want, or more when it had more
	kvs := make([]jetstream.KeyValue, len(buckets))
	for i, b := range buckets {
		if kvs[i], err = ensureBucket(ctx, c.JS, b, raise); err != nil {
			return fmt.Errorf("%s bucket: %w", b.Bucket, err)
		}
	}
	c.Runs, c.Workers = kvs[0], kvs[1]
	if c.Results, err = ensureStream(ctx, c.JS, resultsConfig(c.Replicas), raise, checkResults); err != nil {
		return fmt.Errorf("results stream: %w", err)
	}
	return nil
}

// learnReplicas is the replication a client creates missing objects at: the task
// stream's when it exists, else DefaultReplicas of the brokers the client knows of
// in a cluster (the URLs it was given and those its server advertises).
func (c *Conn) learnReplicas(ctx context.Context) (int, error) {
	s, err := c.JS.Stream(ctx, TasksStream)
	switch {
	case err == nil:
		return max(s.CachedInfo().Config.Replicas, 1), nil
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return 0, fmt.Errorf("tasks stream: %w", err)
	}
	if c.NC.ConnectedClusterName() == "" {
		return 1, nil
	}
	hosts := map[string]bool{}
	for _, s := range c.NC.Servers() {
		if u, err := url.Parse(s); err == nil {
			hosts[u.Host] = true
		}
	}
	return DefaultReplicas(len(hosts)), nil
}

func checkTasks(cfg jetstream.StreamConfig) error {
	if cfg.Retention != jetstream.WorkQueuePolicy {
		return fmt.Errorf("retention is %s, gorun needs workqueue: %w", strings.ToLower(cfg.Retention.String()), ErrIncompatible)
	}
	for _, s := range cfg.Subjects {
		if s == "gorun.task.>" {
			return nil
		}
	}
	return fmt.Errorf("subjects %v lack gorun.task.>: %w", cfg.Subjects, ErrIncompatible)
}

// ensureStream returns the stream cfg.Name: as it exists when check accepts its
// config (its replication raised to cfg.Replicas when raise is set), or created with
// cfg.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, raise bool, check func(jetstream.StreamConfig) error) (jetstream.Stream, error) {
	for {
		s, err := js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // another client created it meanwhile: use theirs
			}
			return s, err
		}
		if err != nil {
			return nil, err
		}
		have := s.CachedInfo().Config
		if err := check(have); err != nil {
			return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
		if !raise || have.Replicas >= cfg.Replicas {
			return s, nil
		}
		have.Replicas = cfg.Replicas
		if s, err = js.UpdateStream(ctx, have); err != nil {
			return nil, fmt.Errorf("raise the replicas of stream %s to %d: %w", cfg.Name, cfg.Replicas, err)
		}
		return s, nil
	}
}

// ensureBucket is ensureStream for a key-value bucket. A bucket must expire its keys
// when gorun's does (the workers bucket lists only live workers).
func ensureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, raise bool) (jetstream.KeyValue, error) {
	for {
		kv, err := js.KeyValue(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(ctx, cfg)
			if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue
			}
			return kv, err
		}
		if err != nil {
			return nil, err
		}
		st, err := kv.Status(ctx)
		if err != nil {
			return nil, err
		}
		have := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
		if cfg.TTL > 0 && have.MaxAge == 0 {
			return nil, fmt.Errorf("bucket %s keeps its keys forever, gorun needs them to expire: %w", cfg.Bucket, ErrIncompatible)
		}
		if !raise || have.Replicas >= cfg.Replicas {
			return kv, nil
		}
		have.Replicas = cfg.Replicas
		if _, err := js.UpdateStream(ctx, have); err != nil {
			return nil, fmt.Errorf("raise the replicas of bucket %s to %d: %w", cfg.Bucket, cfg.Replicas, err)
		}
		return kv, nil
	}
}

// Provision connects to the broker at url (a comma-separated list of URLs) and sets
// up the stream and buckets runs need at replicas: missing ones are created at it,
// existing ones of a lower replication are raised to it, none is ever lowered or
// otherwise changed. While the cluster forms (too few members, no leader yet) it
// tries again, calling waiting with each new error, until ctx ends. An incompatible
// object is an error at once, wrapping ErrIncompatible; the end of ctx an error
// wrapping ctx.Err(). It returns the replication of the task stream.
func Provision(ctx context.Context, urls string, replicas int, waiting func(error), opts ...nats.Option) (int, error) {
	opts = append(append([]nats.Option{nats.Name("gorun broker")}, failover...), opts...)
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return 0, fmt.Errorf("connect to %s: %w", urls, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	c := &Conn{NC: nc, JS: js}
	last := ""
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.ensure(actx, replicas, true)
		if err == nil {
			err = c.replicated(actx)
		}
		cancel()
		if err == nil {
			return c.Replicas, nil
		}
		if errors.Is(err, ErrIncompatible) {
			return 0, err
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%w: streams not ready: %v", ctx.Err(), err)
		}
		if msg := err.Error(); msg != last && waiting != nil {
			last = msg
			waiting(err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: streams not ready: %v", ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// replicated reports an error until every peer of the stream and the buckets is
// current (a raised replication takes a moment to catch up).
func (c *Conn) replicated(ctx context.Context) error {
	for _, name := range []string{TasksStream, "KV_" + RunsBucket, "KV_" + WorkersBucket, ResultsStream} {
		s, err := c.JS.Stream(ctx, name)
		if err != nil {
			return err
		}
		info := s.CachedInfo()
		if info.Config.Replicas <= 1 {
			continue
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return fmt.Errorf("stream %s has no leader yet", name)
		}
		current := 1
		for _, p := range info.Cluster.Replicas {
			if p.Current && !p.Offline {
				current++
			}
		}
		if current < info.Config.Replicas {
			return fmt.Errorf("stream %s: %d of %d replicas current", name, current, info.Config.Replicas)
		}
	}
	return nil
}
