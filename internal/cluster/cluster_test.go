package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

func TestCheckVersion(t *testing.T) {
	for v, ok := range map[string]bool{"2.15.2": true, "2.10.0": true, "v2.12.1": true, "3.0.0": true, "2.9.10": false, "1.4.0": false, "junk": false} {
		if err := checkVersion(v); (err == nil) != ok {
			t.Errorf("checkVersion(%q): got %v, want ok=%v", v, err, ok)
		}
	}
}

// serveInProcess starts an embedded broker for the test and connects to it.
func serveInProcess(t *testing.T) *Conn {
	t.Helper()
	srv, err := Serve(t.TempDir(), "127.0.0.1:0", BrokerSecurity{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	conn, err := Connect(context.Background(), srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

var workerNames atomic.Int32

// startWorker runs a worker of slots on conn until stop is called; stop waits for it.
func startWorker(t *testing.T, conn *Conn, slots int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Worker{Conn: conn, Runner: &process.Runner{Grace: time.Second, BaseEnv: os.Environ()}, Slots: slots, Grace: time.Second,
		Name: "worker-" + strconv.Itoa(int(workerNames.Add(1)))}
	worked := make(chan error, 1)
	go func() { worked <- w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-worked }) }
	t.Cleanup(stop)
	return stop
}

// openRun opens a run on conn and closes it at the end of the test.
func openRun(t *testing.T, conn *Conn, run string, lease time.Duration) *Executor {
	t.Helper()
	e, err := Open(context.Background(), conn, run, lease, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

func shellTask(index int, cmd string) *jobs.Task {
	return &jobs.Task{Index: index, ID: "t" + string(rune('0'+index%10)), Run: cmd, Shell: "/bin/sh"}
}

func capture() *process.Capture { return process.NewCapture(true) }

func contents(t *testing.T, c *process.Capture) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestExecutorRunsAttemptsOnAWorker(t *testing.T) {
	conn := serveInProcess(t)
	startWorker(t, conn, 2)
	e := openRun(t, conn, "basic", 2*time.Second)
	ctx := context.Background()

	out, errOut := capture(), capture()
	a := e.Run(ctx, shellTask(1, `echo "$GORUN_ATTEMPT $GORUN_RUN_ID"; echo oops >&2; exit 3`), 1, 4, out, errOut)
	if a.Err != nil || a.ExitCode != 3 || a.Stopped || a.Executions != 1 {
		t.Fatalf("got %+v, want exit 3 in one execution", a)
	}
	if got := contents(t, out); got != "4 basic\n" {
		t.Errorf("stdout %q, want the attempt number and the run", got)
	}
	if got := contents(t, errOut); got != "oops\n" {
		t.Errorf("stderr %q", got)
	}
	if st := jobs.StatusOf(ctx, a); st != jobs.Failed {
		t.Errorf("status %s, want failed", st)
	}

	a = e.Run(ctx, &jobs.Task{Index: 2, ID: "missing", Argv: []string{"/nonexistent/program"}}, 1, 1, capture(), capture())
	if a.Err == nil || !strings.Contains(a.Err.Error(), "missing") {
		t.Errorf("got error %v, want the worker's start error naming the task", a.Err)
	}
}

func TestExecutorOutputIsExactAndUncapped(t *testing.T) {
	conn := serveInProcess(t)
	startWorker(t, conn, 1)
	e := openRun(t, conn, "big", 2*time.Second)
	// 6 MiB of '<' (which JSON would escape to six bytes) and a line count on stderr.
	out := capture()
	defer out.Close()
	a := e.Run(context.Background(), shellTask(1, `head -c 6291456 /dev/zero | tr '\0' '<'; echo end >&2`), 1, 1, out, capture())
	if a.ExitCode != 0 {
		t.Fatalf("got %+v", a)
	}
	if out.Len() != 6<<20 {
		t.Fatalf("got %d bytes, want %d", out.Len(), 6<<20)
	}
	h := sha256.New()
	_, _ = out.WriteTo(h)
	want := sha256.Sum256(bytes.Repeat([]byte{'<'}, 6<<20))
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("output differs from what the task printed")
	}
}

// TestExecutorLinesArriveWhileTheTaskRuns checks that a line reaches the submitter
// while its task still runs.
func TestExecutorLinesArriveWhileTheTaskRuns(t *testing.T) {
	conn := serveInProcess(t)
	startWorker(t, conn, 1)
	e := openRun(t, conn, "line", 2*time.Second)
	dir := t.TempDir()
	seen := make(chan struct{})
	var once sync.Once
	fw := writerFunc(func(p []byte) {
		if bytes.Contains(p, []byte("first")) {
			once.Do(func() { close(seen) })
		}
	})
	done := make(chan jobs.Attempt, 1)
	go func() {
		// The task waits until the line came back: a file the test writes.
		done <- e.Run(context.Background(), shellTask(1, `echo first; while [ ! -f `+dir+`/go ]; do sleep 0.01; done`), 1, 1, process.NewForwardingCapture(fw), capture())
	}()
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the first line did not arrive while the task ran")
	}
	if err := os.WriteFile(dir+"/go", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if a := <-done; a.ExitCode != 0 {
		t.Errorf("got %+v", a)
	}
}

type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

func TestExecutorTimeoutStopsTheWorkersProcess(t *testing.T) {
	conn := serveInProcess(t)
	startWorker(t, conn, 1)
	e := openRun(t, conn, "timeout", 2*time.Second)
	ctx, cancel := context.WithTimeoutCause(context.Background(), 500*time.Millisecond, jobs.ErrTimeout)
	defer cancel()
	start := time.Now()
	a := e.Run(ctx, shellTask(1, `echo started; sleep 30`), 1, 1, capture(), capture())
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v, want the timeout and the grace at most", took)
	}
	if !a.Stopped || jobs.StatusOf(ctx, a) != jobs.TimedOut || a.Executions != 1 {
		t.Errorf("got %+v (status %s), want a stopped attempt that timed out", a, jobs.StatusOf(ctx, a))
	}
}

func TestExecutorWithdrawsAnAttemptNoWorkerTook(t *testing.T) {
	conn := serveInProcess(t)
	e := openRun(t, conn, "queued", 2*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan jobs.Attempt, 1)
	go func() { done <- e.Run(ctx, shellTask(1, "echo never"), 1, 1, capture(), capture()) }()
	waitFor(t, "the attempt to be queued", func() bool {
		info, err := conn.Tasks.Info(context.Background())
		return err == nil && info.State.Msgs == 1
	})
	cancel()
	a := <-done
	if !a.Stopped || a.Executions != 0 {
		t.Errorf("got %+v, want stopped without an execution", a)
	}
	info, err := conn.Tasks.Info(context.Background())
	if err != nil || info.State.Msgs != 0 {
		t.Errorf("queue holds %d messages (%v), want the attempt withdrawn", info.State.Msgs, err)
	}
}

// TestRedeliveryCountsEveryExecution takes an attempt as a worker that then freezes
// (it starts it and never renews its lease): the broker delivers it again after the
// run's lease, a real worker runs it as execution 2, and the frozen one's late end is
// a duplicate.
func TestRedeliveryCountsEveryExecution(t *testing.T) {
	conn := serveInProcess(t)
	e := openRun(t, conn, "redeliver", 300*time.Millisecond)
	done := make(chan jobs.Attempt, 1)
	out := capture()
	go func() {
		done <- e.Run(context.Background(), shellTask(1, `echo "attempt $GORUN_ATTEMPT"`), 1, 1, out, capture())
	}()

	_, msg := fetchAttempt(t, conn, "redeliver")
	var am attemptMsg
	if err := json.Unmarshal(msg.Data(), &am); err != nil {
		t.Fatal(err)
	}
	var rep startReply
	if err := request(conn.NC, am.Subject+".start", startMsg{Exec: "frozen", Worker: "frozen", Delivered: 1}, &rep); err != nil || !rep.Run || rep.Attempt != 1 {
		t.Fatalf("start: %+v, %v; want to run as attempt 1", rep, err)
	}
	startWorker(t, conn, 1) // takes the redelivery once the lease lapses
	a := <-done
	if a.ExitCode != 0 || a.Executions != 2 {
		t.Errorf("got %+v, want success in the second execution", a)
	}
	if got := contents(t, out); got != "attempt 2\n" {
		t.Errorf("output %q, want the second execution's only", got)
	}
	// The frozen worker's late end is answered and changes nothing; a late start (a
	// redelivery after a lost ack) is refused.
	if err := request(conn.NC, am.Subject+".end", endMsg{Exec: "frozen", ExitCode: 0}, nil); err != nil {
		t.Errorf("late end: %v, want it answered", err)
	}
	if err := request(conn.NC, am.Subject+".start", startMsg{Exec: "late", Worker: "late", Delivered: 3}, &rep); err != nil || rep.Run {
		t.Errorf("late start: %+v, %v; want it refused", rep, err)
	}
}

// TestSupersededEndIsADuplicate: an execution's end that comes after a later
// execution started never counts, and is counted as a duplicate.
func TestSupersededEndIsADuplicate(t *testing.T) {
	r := &remote{base: 1, stdout: capture(), stderr: capture(), endCh: make(chan endMsg, 1), starts: map[string]startReply{}, ends: map[string]bool{}}
	call := func(kind string, v any, hdr nats.Header) {
		data, _ := json.Marshal(v)
		if b, ok := v.([]byte); ok {
			data = b
		}
		r.handle(kind, &nats.Msg{Subject: "gorun.att.r.1.1." + kind, Data: data, Header: hdr})
		for { // a worker sends its end once its chunks were answered, so once written
			r.mu.Lock()
			queued := r.queued
			r.mu.Unlock()
			if queued == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	call("start", startMsg{Exec: "a"}, nil)
	call("out", []byte("from a\n"), nats.Header{hdrExec: {"a"}, hdrSeq: {"0"}})
	call("start", startMsg{Exec: "b"}, nil)
	call("out", []byte("late a\n"), nats.Header{hdrExec: {"a"}, hdrSeq: {"1"}})
	call("out", []byte("from b\n"), nats.Header{hdrExec: {"b"}, hdrSeq: {"0"}})
	call("out", []byte("from b\n"), nats.Header{hdrExec: {"b"}, hdrSeq: {"0"}}) // asked again
	call("end", endMsg{Exec: "a", ExitCode: 1}, nil)
	select {
	case end := <-r.endCh:
		t.Fatalf("the superseded end counted: %+v", end)
	default:
	}
	call("end", endMsg{Exec: "b", ExitCode: 0}, nil)
	end := <-r.endCh
	execs, dups := r.finish()
	if end.Exec != "b" || execs != 2 || dups != 1 {
		t.Errorf("got end of %s, %d executions, %d duplicates; want b, 2, 1", end.Exec, execs, dups)
	}
	if got := contents(t, r.stdout); got != "from a\nfrom b\n" {
		t.Errorf("stdout %q", got)
	}
}

func TestStreamerBackPressure(t *testing.T) {
	conn := serveInProcess(t)
	release := make(chan struct{})
	var mu sync.Mutex
	var got []byte
	sub, err := conn.NC.Subscribe("chunks", func(m *nats.Msg) {
		<-release
		mu.Lock()
		got = append(got, m.Data...)
		mu.Unlock()
		_ = m.Respond(nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	s := newStreamer(conn.NC, "chunks", "x", 4, 5*time.Second)
	wrote := make(chan struct{})
	go func() {
		_, _ = s.Write([]byte("0123456789abcdef"))
		close(wrote)
	}()
	select {
	case <-wrote:
		t.Fatal("Write of four chunks returned while the reader took none")
	case <-time.After(200 * time.Millisecond): // a Write that does not block returns in microseconds
	}
	close(release)
	<-wrote
	s.Close()
	if string(got) != "0123456789abcdef" {
		t.Errorf("got %q", got)
	}
}

func TestWorkersAnnounceTheirSlots(t *testing.T) {
	conn := serveInProcess(t)
	startWorker(t, conn, 3)
	startWorker(t, conn, 2)
	waitFor(t, "both workers to announce themselves", func() bool {
		n, err := conn.LiveSlots(context.Background())
		return err == nil && n == 5
	})
}

func request(nc *nats.Conn, subject string, v, reply any) error {
	data, _ := json.Marshal(v)
	m, err := nc.Request(subject, data, 5*time.Second)
	if err != nil {
		return err
	}
	if reply != nil {
		return json.Unmarshal(m.Data, reply)
	}
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// While an execution renews its lease, a second one of the same attempt (the broker
// delivered it again after a restart) may not start beside it; once the first has
// lost its lease and said so, it may.
func TestNoSecondExecutionWhileTheFirstBeats(t *testing.T) {
	r := &remote{base: 1, fence: time.Hour, stdout: capture(), stderr: capture(), endCh: make(chan endMsg, 1), starts: map[string]startReply{}, ends: map[string]bool{}}
	call := func(kind string, v any) {
		data, _ := json.Marshal(v)
		if b, ok := v.([]byte); ok {
			data = b
		}
		r.handle(kind, &nats.Msg{Subject: "gorun.att.r.1.1." + kind, Data: data})
	}
	owner := func() (string, int) { r.mu.Lock(); defer r.mu.Unlock(); return r.owner, r.execs }
	call("start", startMsg{Exec: "a"})
	call("beat", []byte("a"))
	call("start", startMsg{Exec: "b"})
	if o, n := owner(); o != "a" || n != 1 {
		t.Fatalf("a second start while the first beats: got owner %s after %d executions, want a after 1", o, n)
	}
	call("end", endMsg{Exec: "a", LeaseLost: true})
	call("start", startMsg{Exec: "b"})
	if o, n := owner(); o != "b" || n != 2 {
		t.Errorf("a start after the first lost its lease: got owner %s after %d executions, want b after 2", o, n)
	}
}

// TestEndIsAnsweredByTheAckOfItsDelivery: the submitter acknowledges the delivery
// named in an end once it has recorded the end, and the broker's confirmation is the
// end's answer; the end of a lost lease is answered without an ack, so the broker
// delivers the attempt again.
func TestEndIsAnsweredByTheAckOfItsDelivery(t *testing.T) {
	conn := serveInProcess(t)
	e := openRun(t, conn, "acked", 5*time.Second)
	done := make(chan jobs.Attempt, 1)
	go func() { done <- e.Run(context.Background(), shellTask(1, "true"), 1, 1, capture(), capture()) }()

	cons, msg := fetchAttempt(t, conn, "acked")
	var am attemptMsg
	if err := json.Unmarshal(msg.Data(), &am); err != nil {
		t.Fatal(err)
	}
	pending := func() int {
		t.Helper()
		info, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.NumAckPending
	}
	ack := msg.Reply()

	var rep startReply
	if err := request(conn.NC, am.Subject+".start", startMsg{Exec: "a", Worker: "w"}, &rep); err != nil || !rep.Run {
		t.Fatalf("start a: %+v, %v; want to run", rep, err)
	}
	if err := request(conn.NC, am.Subject+".end", endMsg{Exec: "a", LeaseLost: true}, nil); err != nil {
		t.Fatalf("lease-lost end: %v, want it answered", err)
	}
	if n := pending(); n != 1 {
		t.Errorf("after a lease-lost end: %d deliveries pending, want 1 (not acknowledged)", n)
	}

	if err := request(conn.NC, am.Subject+".start", startMsg{Exec: "b", Worker: "w"}, &rep); err != nil || !rep.Run || rep.Attempt != 2 {
		t.Fatalf("start b: %+v, %v; want to run as attempt 2", rep, err)
	}
	if err := request(conn.NC, am.Subject+".end", endMsg{Exec: "b", ExitCode: 3, Ack: ack}, nil); err != nil {
		t.Fatalf("end: %v, want it answered", err)
	}
	if n := pending(); n != 0 { // the answer came once the broker had the ack
		t.Errorf("after the end's answer: %d deliveries pending, want 0", n)
	}
	if a := <-done; a.ExitCode != 3 || a.Executions != 2 {
		t.Errorf("got %+v, want the second execution's end", a)
	}
	// An end asked again (its answer lost) is answered again: the ack is repeated.
	if err := request(conn.NC, am.Subject+".end", endMsg{Exec: "b", ExitCode: 3, Ack: ack}, nil); err != nil {
		t.Errorf("end asked again: %v, want it answered", err)
	}
}

// TestEndCarriesTheSlotsNextPull: an end with Next is answered by the broker with the
// slot's next attempt (the submitter's ack of the delivery is an ack-and-next), or,
// with none queued, by the pull's expiry.
func TestEndCarriesTheSlotsNextPull(t *testing.T) {
	conn := serveInProcess(t)
	e := openRun(t, conn, "next", 5*time.Second)
	done := make(chan jobs.Attempt, 2)
	for i := 1; i <= 2; i++ {
		go func() { done <- e.Run(context.Background(), shellTask(i, "true"), i, 1, capture(), capture()) }()
	}
	waitFor(t, "both attempts to be queued", func() bool {
		info, err := conn.Tasks.Info(context.Background())
		return err == nil && info.State.Msgs == 2
	})
	cons, first := fetchAttempt(t, conn, "next")
	inbox, err := conn.NC.SubscribeSync(conn.NC.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	// run runs the delivered attempt as execution exec and ends it with the pull,
	// returning the answer.
	run := func(data []byte, ack, exec string) *nats.Msg {
		t.Helper()
		var am attemptMsg
		if err := json.Unmarshal(data, &am); err != nil {
			t.Fatal(err)
		}
		var rep startReply
		if err := request(conn.NC, am.Subject+".start", startMsg{Exec: exec, Worker: "w"}, &rep); err != nil || !rep.Run {
			t.Fatalf("start %s: %+v, %v; want to run", exec, rep, err)
		}
		end, _ := json.Marshal(endMsg{Exec: exec, Ack: ack, Next: 300 * time.Millisecond})
		if err := conn.NC.PublishRequest(am.Subject+".end", inbox.Subject, end); err != nil {
			t.Fatal(err)
		}
		m, err := inbox.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("end of %s: %v, want an answer", exec, err)
		}
		return m
	}
	second := run(first.Data(), first.Reply(), "a")
	var am attemptMsg
	if err := json.Unmarshal(second.Data, &am); err != nil || am.Index == 0 {
		t.Fatalf("the first end's answer: %q (%v), want the other attempt", second.Data, err)
	}
	if info, err := cons.Info(context.Background()); err != nil || info.NumAckPending != 1 {
		t.Errorf("after the first end: %+v (%v), want the first acknowledged and the second delivered", info, err)
	}
	expired := run(second.Data, second.Reply, "b")
	if s := expired.Header.Get("Status"); s != "408" {
		t.Errorf("the last end's answer: status %q, %q; want the pull's expiry (408)", s, expired.Data)
	}
	for range 2 {
		if a := <-done; a.ExitCode != 0 || a.Executions != 1 {
			t.Errorf("got %+v, want one successful execution", a)
		}
	}
}

// fetchAttempt pulls one attempt of run from its consumer, as a worker would, and
// returns the consumer and the delivered message.
func fetchAttempt(t *testing.T, conn *Conn, run string) (jetstream.Consumer, jetstream.Msg) {
	t.Helper()
	cons, err := conn.JS.Consumer(context.Background(), TasksStream, consumerName(run))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msg jetstream.Msg
	for m := range batch.Messages() {
		msg = m
	}
	if msg == nil {
		t.Fatal("no attempt delivered")
	}
	return cons, msg
}

// TestWorkerStartsSimpleCommandsWithoutAShell: a worker starts a command line that is a
// simple command as a local run does, without a shell, and a task that asks for the
// shell always through /bin/sh. The task prints the name of its parent process.
func TestWorkerStartsSimpleCommandsWithoutAShell(t *testing.T) {
	conn := serveInProcess(t)
	startWorker(t, conn, 1)
	e := openRun(t, conn, "simple", 5*time.Second)
	self, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	const parent = `awk 'BEGIN { getline s < "/proc/self/stat"; split(s, f, " "); getline c < ("/proc/" f[4] "/comm"); print c }'`
	for i, tc := range []struct {
		always bool
		want   string
	}{{false, string(self)}, {true, "sh\n"}} {
		task := shellTask(i+1, parent)
		task.ShellAlways = tc.always
		out := capture()
		if a := e.Run(context.Background(), task, 1, 1, out, capture()); a.Err != nil || a.ExitCode != 0 {
			t.Fatalf("shell always %v: got %+v", tc.always, a)
		}
		if got := contents(t, out); got != tc.want {
			t.Errorf("shell always %v: the task's parent is %q, want %q", tc.always, got, tc.want)
		}
	}
}
