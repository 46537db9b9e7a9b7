//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/testutil"
)

// startBrokerAt starts `gorun broker` with its store in store, listening on listen
// (host:port; port 0 picks a free one), with the extra flags args, and waits for the
// URL it prints once it takes connections (see launchBroker).
func startBrokerAt(t *testing.T, store, listen string, args ...string) *brokerProc {
	t.Helper()
	return launchBroker(t, append([]string{"--store", store, "--listen", listen}, args...)...)()
}

// launchBroker starts `gorun broker args...` and returns at once; ready waits for the
// URL the broker prints once it takes connections (a broker of a cluster, once the
// cluster formed: start them all, then wait). The broker is stopped at the end of the
// test, even if the test froze it.
func launchBroker(t *testing.T, args ...string) (ready func() *brokerProc) {
	t.Helper()
	cmd := exec.Command(gorunBin, append([]string{"broker"}, args...)...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT) // a frozen broker cannot stop
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	first := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		first <- line
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(exited)
	}()
	return func() *brokerProc {
		t.Helper()
		select {
		case line := <-first:
			if !strings.HasPrefix(line, "nats://") && !strings.HasPrefix(line, "tls://") {
				t.Fatalf("broker %v printed %q; want its nats:// or tls:// URL; stderr:\n%s", args, line, stderr)
			}
			return &brokerProc{Cmd: cmd, URL: strings.TrimSpace(line), exited: exited}
		case <-time.After(30 * time.Second):
			t.Fatalf("broker %v printed no URL within 30s; stderr:\n%s", args, stderr)
			return nil
		}
	}
}

// brokerProc is a running `gorun broker`.
type brokerProc struct {
	Cmd    *exec.Cmd
	URL    string
	exited chan struct{} // closed once the process is reaped
}

// kill sends SIGKILL to the broker and waits until it is gone.
func (b *brokerProc) kill() {
	_ = b.Cmd.Process.Signal(syscall.SIGKILL)
	<-b.exited
}

// startWorkerArgs starts `gorun worker --broker url -v` with the extra flags args,
// its processes carrying mark, and waits for its "worker ready" log line (with -v the
// worker logs it once it is connected and has announced its slots). Its stderr is kept in the returned buffer.
// The worker is killed at the end of the test.
func startWorkerArgs(t *testing.T, url, mark string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(gorunBin, append([]string{"worker", "--broker", url, "-v"}, args...)...)
	cmd.Env = append(os.Environ(), testutil.MarkVar+"="+mark)
	log := &syncBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-exited
	})
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(log.String(), "worker ready"); time.Sleep(10 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("worker %v exited before it was ready: %v; stderr:\n%s", args, cmd.ProcessState, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %v printed no ready line within 30s (started with -v)", args)
		}
	}
	return cmd, log
}

// testCluster is an embedded broker on a free loopback port, with a store of its own,
// and the workers the test started on it.
type testCluster struct {
	URL     string
	Store   string
	Listen  string
	Broker  *brokerProc
	Workers []*exec.Cmd
	Logs    []*syncBuffer // each worker's stderr
	Mark    string        // carried by every process the workers start
}

// startCluster starts a broker and n workers, each with the flags workerArgs (for
// example "-j", "4", "--ack-wait", "2s"), and waits until all of them are ready.
func startCluster(t *testing.T, n int, workerArgs ...string) *testCluster {
	t.Helper()
	c := &testCluster{Store: t.TempDir(), Listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)), Mark: testutil.NewMark(t)}
	c.Broker = startBrokerAt(t, c.Store, c.Listen)
	c.URL = c.Broker.URL
	for range n {
		c.addWorker(t, workerArgs...)
	}
	return c
}

// addWorker starts one more worker with the flags args.
func (c *testCluster) addWorker(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	w, log := startWorkerArgs(t, c.URL, c.Mark, args...)
	c.Workers = append(c.Workers, w)
	c.Logs = append(c.Logs, log)
	return w
}

// restartBroker starts a new broker on the cluster's store and address, after the
// test stopped the old one.
func (c *testCluster) restartBroker(t *testing.T) {
	t.Helper()
	c.Broker = startBrokerAt(t, c.Store, c.Listen)
	if c.Broker.URL != c.URL {
		t.Fatalf("restarted broker at %s, want %s", c.Broker.URL, c.URL)
	}
}

// workerLogs returns every worker's stderr, for failure messages.
func (c *testCluster) workerLogs() string {
	var b strings.Builder
	for i, l := range c.Logs {
		fmt.Fprintf(&b, "--- worker %d:\n%s", i+1, l)
	}
	return b.String()
}
