package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/gorun/gorun/internal/lock"
)

// Broker is an embedded broker that Serve started. Shutdown stops it and releases
// its store.
type Broker struct {
	*server.Server
	lock *lock.Lock
}

// Shutdown stops the server and releases the store's lock.
func (b *Broker) Shutdown() {
	b.Server.Shutdown()
	_ = b.lock.Release()
}

// ErrStoreInUse means another broker serves the store.
var ErrStoreInUse = errors.New("in use by another broker")

// storeLockName is the file in a store that its broker holds locked.
const storeLockName = "gorun-broker.lock"

// parseListen splits HOST:PORT ([::1]:PORT for IPv6); port 0 picks a free one.
func parseListen(listen string) (string, int, error) {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("listen %q: want host:port ([::1]:port for IPv6): %w", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("listen %q: bad port %q", listen, portText)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// start locks the store of opts, starts the server and waits until it takes
// connections, or fails at once if it cannot listen.
func start(opts *server.Options) (*Broker, error) {
	if err := os.MkdirAll(opts.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: store: %w", err)
	}
	l, err := lock.TryAcquire(filepath.Join(opts.StoreDir, storeLockName))
	if errors.Is(err, lock.ErrHeld) {
		return nil, fmt.Errorf("broker: store %s: %w", opts.StoreDir, ErrStoreInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("broker: store %s: %w", opts.StoreDir, err)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		_ = l.Release()
		return nil, fmt.Errorf("broker: %w", err)
	}
	fatal := &fatalLog{ch: make(chan string, 1)}
	s.SetLogger(fatal, false, false)
	go s.Start()
	ready := make(chan bool, 1)
	go func() { ready <- s.ReadyForConnections(10 * time.Second) }()
	select {
	case ok := <-ready:
		if ok {
			return &Broker{Server: s, lock: l}, nil
		}
		err = errors.New("not ready after 10s")
	case msg := <-fatal.ch:
		err = errors.New(msg)
	}
	s.Shutdown()
	_ = l.Release()
	return nil, fmt.Errorf("broker: %w", err)
}

// fatalLog is the server's logger: it keeps the first fatal error (the server
// cannot listen, or its store cannot be used) and drops the rest.
type fatalLog struct{ ch chan string }

func (f *fatalLog) Fatalf(format string, v ...any) {
	select {
	case f.ch <- fmt.Sprintf(format, v...):
	default:
	}
}
func (*fatalLog) Noticef(string, ...any) {}
func (*fatalLog) Warnf(string, ...any)   {}
func (*fatalLog) Errorf(string, ...any)  {}
func (*fatalLog) Debugf(string, ...any)  {}
func (*fatalLog) Tracef(string, ...any)  {}
