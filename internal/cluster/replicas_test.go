package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// serveCluster starts three embedded brokers that form one JetStream cluster and
// returns the comma-separated list of their client URLs.
func serveCluster(t *testing.T) string {
	t.Helper()
	routes := freePorts(t, 3)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		urls []string
		errs []error
	)
	for i := range 3 {
		var others []string
		for j, p := range routes {
			if j != i {
				others = append(others, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Serve(t.TempDir(), "127.0.0.1:0", BrokerSecurity{}, WithCluster(fmt.Sprintf("b%d", i+1), fmt.Sprintf("127.0.0.1:%d", routes[i]), others))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
			urls = append(urls, s.ClientURL())
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	return strings.Join(urls, ",")
}

// replicasOf returns the configured replication of gorun's stream and buckets.
func replicasOf(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, name := range []string{TasksStream, "KV_" + RunsBucket, "KV_" + WorkersBucket} {
		s, err := js.Stream(context.Background(), name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		got[name] = s.CachedInfo().Config.Replicas
	}
	return got
}

func wantReplicas(t *testing.T, js jetstream.JetStream, want int) {
	t.Helper()
	for name, r := range replicasOf(t, js) {
		if r != want {
			t.Errorf("%s has %d replicas, want %d", name, r, want)
		}
	}
}

func TestReplicasInACluster(t *testing.T) {
	urls := serveCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	// A stream at 1 replica, as gorun before clusters or a careless client made it.
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	streamCfg, _ := objects(1)
	untilFormed(t, ctx, func(ctx context.Context) (err error) { _, err = js.CreateStream(ctx, streamCfg); return err })

	// A client uses what it finds: it never changes the replication.
	c, err := Connect(ctx, urls)
	if err != nil {
		t.Fatal(err)
	}
	if c.Replicas != 1 {
		t.Errorf("client learned %d replicas from an R1 stream, want 1", c.Replicas)
	}
	c.Close()
	wantReplicas(t, js, 1)

	// The broker raises it ...
	got, err := Provision(ctx, urls, 3, nil)
	if err != nil || got != 3 {
		t.Fatalf("provision at 3: got %d, %v", got, err)
	}
	wantReplicas(t, js, 3)
	// ... and never lowers it.
	if got, err = Provision(ctx, urls, 1, nil); err != nil || got != 3 {
		t.Fatalf("provision at 1 on R3 streams: got %d, %v; want 3 kept", got, err)
	}
	wantReplicas(t, js, 3)

	// Clients learn 3 and create the run's consumer at it.
	c, err = Connect(ctx, urls)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Replicas != 3 {
		t.Errorf("client learned %d replicas, want 3", c.Replicas)
	}
	e, err := Open(ctx, c, "r1", time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, TasksStream, consumerName("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if r := cons.CachedInfo().Config.Replicas; r != 3 {
		t.Errorf("the run's consumer has %d replicas, want 3", r)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	wantReplicas(t, js, 3)
}

func TestClientCreatesAtTheClustersReplication(t *testing.T) {
	urls := serveCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	// Nothing exists: a client that knows of three brokers creates everything at 3.
	var c *Conn
	untilFormed(t, ctx, func(ctx context.Context) (err error) { c, err = Connect(ctx, urls); return err })
	defer c.Close()
	if c.Replicas != 3 {
		t.Errorf("client created the stream at %d replicas, want 3", c.Replicas)
	}
	wantReplicas(t, c.JS, 3)
}

func TestIncompatibleObjectsAreRefusedUnchanged(t *testing.T) {
	srv, err := Serve(t.TempDir(), "127.0.0.1:0", BrokerSecurity{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()

	limits := jetstream.StreamConfig{Name: TasksStream, Subjects: []string{"gorun.task.>"}, Retention: jetstream.LimitsPolicy}
	if _, err := js.CreateStream(ctx, limits); err != nil {
		t.Fatal(err)
	}
	for _, connect := range []func() error{
		func() error { c, err := Connect(ctx, srv.ClientURL()); closeConn(c); return err },
		func() error { _, err := Provision(ctx, srv.ClientURL(), 1, nil); return err },
	} {
		err := connect()
		if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "retention is limits, gorun needs workqueue") {
			t.Errorf("got %v, want a clear refusal of the limits stream", err)
		}
	}
	s, _ := js.Stream(ctx, TasksStream)
	if r := s.CachedInfo().Config.Retention; r != jetstream.LimitsPolicy {
		t.Errorf("the stream's retention became %v: gorun changed it", r)
	}

	// A workers bucket that never expires its keys would list dead workers forever.
	if err := js.DeleteStream(ctx, TasksStream); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: WorkersBucket}); err != nil {
		t.Fatal(err)
	}
	c, err := Connect(ctx, srv.ClientURL())
	closeConn(c)
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "gorun_workers bucket: bucket gorun_workers keeps its keys forever") {
		t.Errorf("got %v, want a clear refusal of the workers bucket", err)
	}
}

// untilFormed calls f until it succeeds, each call with 2 s to answer, while the
// cluster forms.
func untilFormed(t *testing.T, ctx context.Context, f func(context.Context) error) {
	t.Helper()
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := f(actx)
		cancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the cluster did not form: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func closeConn(c *Conn) {
	if c != nil {
		c.Close()
	}
}

func TestWithCluster(t *testing.T) {
	tests := []struct {
		name, listen string
		routes       []string
		wantErr      string
		wantPort     int
	}{
		{name: "alone", wantPort: 0},
		{name: "member", listen: "127.0.0.1:6222", routes: []string{"nats-route://h:6223"}, wantPort: 6222},
		{name: "ipv6", listen: "[::1]:6222", wantPort: 6222},
		{name: "routes alone", routes: []string{"nats-route://h:6223"}, wantErr: "routes need a cluster listen address"},
		{name: "bad listen", listen: "6222", wantErr: `cluster listen "6222": want host:port`},
		{name: "any port", listen: "127.0.0.1:0", wantErr: `cluster listen "127.0.0.1:0": want a port from 1 to 65535`},
		{name: "bad route", listen: ":6222", routes: []string{"h:6223"}, wantErr: `route "h:6223": want nats-route://HOST:PORT`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o server.Options
			err := WithCluster("b1", tt.listen, tt.routes)(&o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || o.ServerName != "b1" || o.Cluster.Port != tt.wantPort || len(o.Routes) != len(tt.routes) {
				t.Errorf("got %v, %+v", err, o)
			}
			if tt.listen != "" && o.Cluster.Name != ClusterName {
				t.Errorf("cluster name %q, want %q", o.Cluster.Name, ClusterName)
			}
		})
	}
}
