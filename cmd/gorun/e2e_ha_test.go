//go:build linux

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/testutil"
)

// startHACluster starts three `gorun broker`s on loopback that form one JetStream
// cluster, named b1, b2, b3, and returns them once all are ready.
func startHACluster(t *testing.T) []*brokerProc {
	t.Helper()
	routes := []int{freePort(t), freePort(t), freePort(t)}
	var waits []func() *brokerProc
	for i := range 3 {
		var others []string
		for j, p := range routes {
			if j != i {
				others = append(others, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		waits = append(waits, launchBroker(t, "--store", t.TempDir(), "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			"--name", fmt.Sprintf("b%d", i+1), "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", routes[i]),
			"--routes", strings.Join(others, ",")))
	}
	var brokers []*brokerProc
	for _, w := range waits {
		brokers = append(brokers, w())
	}
	return brokers
}

// gorunObjects are the streams of gorun's stream and buckets.
var gorunObjects = []string{cluster.TasksStream, "KV_" + cluster.RunsBucket, "KV_" + cluster.WorkersBucket}

// checkReplicas reads from the JetStream API that every stream of gorun and every
// consumer of the task stream is configured with want replicas.
func checkReplicas(t *testing.T, js jetstream.JetStream, when string, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range gorunObjects {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Errorf("%s: stream %s: %v", when, name, err)
			continue
		}
		if r := s.CachedInfo().Config.Replicas; r != want {
			t.Errorf("%s: stream %s has %d replicas, want %d", when, name, r, want)
		}
	}
	s, err := js.Stream(ctx, cluster.TasksStream)
	if err != nil {
		return
	}
	for ci := range s.ListConsumers(ctx).Info() {
		if ci.Config.Replicas != want {
			t.Errorf("%s: consumer %s has %d replicas, want %d", when, ci.Name, ci.Config.Replicas, want)
		}
	}
}

// TestE2EClusterLeaderKilled runs 300 tasks on two workers of a three-broker cluster
// and SIGKILLs the broker that leads the task stream mid-run, for good: every task
// must be reported once, succeeded, no execution lost, and the streams must keep
// their three replicas whatever the gorun commands that connected.
func TestE2EClusterLeaderKilled(t *testing.T) {
	needFlock(t)
	const n = 300
	begin := time.Now()
	brokers := startHACluster(t)
	urls := make([]string, len(brokers))
	for i, b := range brokers {
		urls[i] = b.URL
	}
	list := strings.Join(urls, ",")
	nc, err := nats.Connect(list, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	checkReplicas(t, js, "brokers ready", 3)

	cl := &testCluster{URL: list, Mark: testutil.NewMark(t)}
	for range 2 {
		cl.addWorker(t, "-j", "4", "--grace", "1s")
	}
	checkReplicas(t, js, "workers connected", 3)

	dir := t.TempDir()
	tasks := taskFile(t, n, func(string) string { return guardedTask(dir, "sleep 0.05") })
	report := filepath.Join(dir, "report.json")
	r := startGorun(t, nil, "exec", tasks, "-j", "8", "--broker", list, "--ack-wait", "3s", "--grace", "1s", "--report", report)
	waitFor(t, 40*time.Second, "a third of the tasks to start", func() bool { return countExecuted(dir) >= n/3 })
	checkReplicas(t, js, "run under way", 3)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	s, err := js.Stream(ctx, cluster.TasksStream)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	leader := s.CachedInfo().Cluster.Leader
	var victim *brokerProc
	for i, b := range brokers {
		if leader == fmt.Sprintf("b%d", i+1) {
			victim = b
		}
	}
	if victim == nil {
		t.Fatalf("the task stream's leader is %q, not one of b1, b2, b3", leader)
	}
	atKill := countExecuted(dir)
	killed := time.Now()
	victim.kill()
	// At most 8 attempts (the slots) were fetched before the kill: one more start
	// is an attempt fetched from the new leader.
	waitFor(t, 30*time.Second, "a task fetched after the leader's death", func() bool { return countExecuted(dir) > atKill+8 })
	recovered := time.Since(killed)

	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Errorf("leader %s killed: got exit %d, want 0; stderr:\n%s", leader, code, r.stderr)
	}
	again := checkExecutions(t, "leader killed", dir, report, n)
	duplicates := 0
	for _, res := range reportResults(t, report) {
		if d, ok := res["duplicates"].(float64); ok {
			duplicates += int(d)
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	s, err = js.Stream(ctx, cluster.TasksStream)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if l := s.CachedInfo().Cluster.Leader; l == "" || l == leader {
		t.Errorf("after the kill the task stream's leader is %q, want another broker than %s", l, leader)
	}
	checkReplicas(t, js, "after the run", 3)
	t.Logf("leader %s killed after %d of %d tasks started: first attempt fetched from the new leader after %v; %d re-executions, %d duplicate executions in the report; test took %v",
		leader, atKill, n, recovered.Round(time.Millisecond), again, duplicates, time.Since(begin).Round(time.Millisecond))
	if t.Failed() {
		t.Log(cl.workerLogs())
	}
}
