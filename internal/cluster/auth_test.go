package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestParseListen(t *testing.T) {
	tests := []struct {
		in, host string
		port     int
		wantErr  string
	}{
		{in: "127.0.0.1:4222", host: "127.0.0.1", port: 4222},
		{in: "[::1]:0", host: "::1", port: -1},
		{in: "localhost:0", host: "localhost", port: -1},
		{in: "::1:4222", wantErr: "want host:port ([::1]:port for IPv6)"},
		{in: "127.0.0.1:http", wantErr: `bad port "http"`},
		{in: "127.0.0.1", wantErr: "want host:port"},
	}
	for _, tt := range tests {
		host, port, err := parseListen(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: got error %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || host != tt.host || port != tt.port {
			t.Errorf("%s: got %q, %d, %v; want %q, %d", tt.in, host, port, err, tt.host, tt.port)
		}
	}
}

func TestServeRefusesAnonymousOffLoopback(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", "[::]:0", ":0"} {
		if _, err := Serve(t.TempDir(), listen, BrokerSecurity{}); !errors.Is(err, ErrAnonymous) {
			t.Errorf("%s: got error %v, want %v", listen, err, ErrAnonymous)
		}
	}
	if !loopback("127.0.0.2") || !loopback("::1") || !loopback("localhost") || loopback("10.0.0.5") || loopback("") {
		t.Error("loopback misjudges an address")
	}
}

func TestServeStoreInUse(t *testing.T) {
	dir := t.TempDir()
	s, err := Serve(dir, "127.0.0.1:0", BrokerSecurity{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Serve(dir, "127.0.0.1:0", BrokerSecurity{}); !errors.Is(err, ErrStoreInUse) || !strings.Contains(err.Error(), dir) {
		t.Errorf("got error %v, want %v naming %s", err, ErrStoreInUse, dir)
	}
	s.Shutdown()
	s2, err := Serve(dir, "127.0.0.1:0", BrokerSecurity{}) // released by Shutdown
	if err != nil {
		t.Fatalf("after the first broker's shutdown: %v", err)
	}
	s2.Shutdown()
}

func TestDialToken(t *testing.T) {
	s, err := Serve(t.TempDir(), "127.0.0.1:0", BrokerSecurity{Token: "t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	start := time.Now()
	_, err = Dial(context.Background(), s.ClientURL(), ConnOptions{ConnectTimeout: time.Minute})
	if !errors.Is(err, nats.ErrAuthorization) || !strings.Contains(err.Error(), s.ClientURL()) || time.Since(start) > 10*time.Second {
		t.Errorf("without the token: got %v after %v, want an authorization error naming the broker, at once", err, time.Since(start))
	}
	c, err := Dial(context.Background(), s.ClientURL(), ConnOptions{Token: "t0ken"})
	if err != nil {
		t.Fatalf("with the token: %v", err)
	}
	c.Close()
}

func TestDialRetriesUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + l.Addr().String()
	l.Close() // nothing listens there now
	var log bytes.Buffer
	start := time.Now()
	_, err = Dial(context.Background(), url, ConnOptions{ConnectTimeout: 1500 * time.Millisecond, Log: &log})
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("got error %v, want one naming %s", err, url)
	}
	if d := time.Since(start); d < 1500*time.Millisecond || d > 10*time.Second {
		t.Errorf("gave up after %v, want after the 1.5s connect timeout", d)
	}
	if n := strings.Count(log.String(), "trying again"); n != 1 {
		t.Errorf("got %d retry lines in 1.5s, want 1 (at most one every few seconds):\n%s", n, log.String())
	}
	start = time.Now()
	if _, err := Dial(context.Background(), url, ConnOptions{}); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("with no connect timeout: got %v after %v, want an error at once", err, time.Since(start))
	}
}

// TestRoutesNeedTheToken: a broker of a cluster with a token takes routes only from
// brokers that present it; one without it never joins, so it never sees a run.
func TestRoutesNeedTheToken(t *testing.T) {
	tok := BrokerSecurity{Token: "s3cret"}
	keepsIntruderOut(t, tok, BrokerSecurity{}, tok)
}

// keepsIntruderOut starts broker a (secA), then an intruder (secIntruder) that routes
// to a, then b (secB) that routes to a too. b must join a, and the intruder, which
// tried first, must not: it has no route connection once a's are all to b.
func keepsIntruderOut(t *testing.T, secA, secIntruder, secB BrokerSecurity) {
	t.Helper()
	ports := freePorts(t, 3)
	route := func(p int) []string { return []string{fmt.Sprintf("nats-route://127.0.0.1:%d", p)} }
	serve := func(name string, sec BrokerSecurity, port int, routes []string) *Broker {
		t.Helper()
		s, err := Serve(t.TempDir(), "127.0.0.1:0", sec, WithCluster(name, fmt.Sprintf("127.0.0.1:%d", port), routes))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		return s
	}
	a := serve("a", secA, ports[0], route(ports[2]))
	intruder := serve("intruder", secIntruder, ports[1], route(ports[0]))
	b := serve("b", secB, ports[2], route(ports[0]))
	// Routes come in pools (several connections per peer): b has joined once it has
	// some, and a's are all to b once it has as many as b, whose only peer is a. With
	// the intruder in, a would have more, for good.
	joined := func() bool { na, nb := a.NumRoutes(), b.NumRoutes(); return nb > 0 && na == nb }
	for deadline := time.Now().Add(30 * time.Second); !joined(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("route connections: a %d, b %d, intruder %d: want a and b equal (each other's only peer), the intruder none",
				a.NumRoutes(), b.NumRoutes(), intruder.NumRoutes())
		}
	}
	if n := intruder.NumRoutes(); n != 0 {
		t.Errorf("the intruder has %d route connections into the cluster, want 0", n)
	}
}

func TestRoutesOffLoopbackNeedAToken(t *testing.T) {
	_, err := Serve(t.TempDir(), "127.0.0.1:0", BrokerSecurity{}, WithCluster("a", "0.0.0.0:1", nil))
	if !errors.Is(err, ErrAnonymousRoutes) {
		t.Errorf("an anonymous cluster port on 0.0.0.0: got %v, want ErrAnonymousRoutes", err)
	}
}
