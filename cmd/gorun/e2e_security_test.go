//go:build linux

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/testutil"
)

// secretToken is the broker token of these tests; it must show in no process list.
const secretToken = "s3cret-token-4f9d1c"

// tokenFile writes secretToken to a file of its own (mode 0600) and returns its name.
func tokenFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(secretToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runGorun runs gorun with args and stdin to its end, within limit, and returns its
// exit code and its stderr.
func runGorun(t *testing.T, stdin string, limit time.Duration, args ...string) (int, string) {
	t.Helper()
	r := startGorun(t, strings.NewReader(stdin), args...)
	code := r.wait(t, limit)
	return code, r.stderr.String()
}

// cmdlinesWith returns the command lines of the processes of this machine that
// contain s, as ps would show them.
func cmdlinesWith(t *testing.T, s string) []string {
	t.Helper()
	files, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		if line := strings.ReplaceAll(string(data), "\x00", " "); strings.Contains(line, s) {
			found = append(found, f+": "+line)
		}
	}
	return found
}

func TestE2EBrokerTokenRefusesAnonymous(t *testing.T) {
	tok := tokenFile(t)
	b := startBrokerAt(t, t.TempDir(), "127.0.0.1:0", "--token-file", tok)
	dir := t.TempDir()
	task := fmt.Sprintf("touch %s/ran\n", dir)

	// A worker without the token is refused at once and fetches nothing.
	w := exec.Command(gorunBin, "worker", "--broker", b.URL, "--connect-timeout", "0")
	w.Env = append(os.Environ(), "GORUN_TOKEN=")
	out, err := w.CombinedOutput()
	if w.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "authorization violation") || !strings.Contains(string(out), "--token-file") {
		t.Fatalf("worker without the token: exit %v, output %q; want exit 1 and a refusal naming --token-file", err, out)
	}

	mark := testutil.NewMark(t)
	_, log := startWorkerArgs(t, b.URL, mark, "--token-file", tok)

	// A client without the token is refused and submits nothing.
	code, stderr := runGorun(t, task, 30*time.Second, "exec", "-", "--broker", b.URL, "--connect-timeout", "0")
	if code != 1 || !strings.Contains(stderr, "authorization violation") || !strings.Contains(stderr, b.URL) {
		t.Fatalf("client without the token: exit %d, stderr %q; want exit 1 and a refusal naming the broker", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil || strings.Contains(log.String(), "attempt started") {
		t.Fatalf("a task ran for a client without the token; worker log:\n%s", log)
	}

	// With the token, from a file or the environment, it runs; no process list
	// shows the token meanwhile.
	r := startGorun(t, strings.NewReader(fmt.Sprintf("touch %s/ran; sleep 1\n", dir)), "exec", "-", "--broker", b.URL, "--token-file", tok)
	waitFor(t, 30*time.Second, "the task to run", func() bool { _, err := os.Stat(filepath.Join(dir, "ran")); return err == nil })
	if found := cmdlinesWith(t, secretToken); len(found) > 0 {
		t.Errorf("the token shows in process lists:\n%s", strings.Join(found, "\n"))
	}
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("client with --token-file: exit %d; stderr:\n%s", code, r.stderr)
	}
	c := exec.Command(gorunBin, "exec", "-", "--broker", b.URL)
	c.Env = append(os.Environ(), "GORUN_TOKEN="+secretToken, "XDG_CONFIG_HOME="+t.TempDir())
	c.Stdin = strings.NewReader("true\n")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("client with GORUN_TOKEN: %v; output:\n%s", err, out)
	}
}

func TestE2EBrokerOffLoopbackNeedsAuth(t *testing.T) {
	start := time.Now()
	cmd := exec.Command(gorunBin, "broker", "--store", t.TempDir(), "--listen", "0.0.0.0:0")
	cmd.Env = append(os.Environ(), "GORUN_TOKEN=")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "anonymous clients off loopback") {
		t.Fatalf("got exit %d, output %q; want exit 1 and a refusal to serve anonymous clients", cmd.ProcessState.ExitCode(), out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused after %v, want at once", d)
	}
}

func TestE2EBrokerPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	cmd := exec.Command(gorunBin, "broker", "--store", t.TempDir(), "--listen", l.Addr().String())
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("got exit %d, output %q; want exit 1 and \"address already in use\"", cmd.ProcessState.ExitCode(), out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failed after %v, want at once", d)
	}
}

func TestE2EBrokerStoreInUse(t *testing.T) {
	store := t.TempDir()
	startBrokerAt(t, store, "127.0.0.1:0")
	cmd := exec.Command(gorunBin, "broker", "--store", store, "--listen", "127.0.0.1:0")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "in use by another broker") || !strings.Contains(string(out), store) {
		t.Fatalf("got exit %d, output %q; want exit 1 and the store named in use", cmd.ProcessState.ExitCode(), out)
	}
}

func TestE2EBrokerIPv6(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	l.Close()
	b := startBrokerAt(t, t.TempDir(), "[::1]:0")
	if !strings.HasPrefix(b.URL, "nats://[::1]:") {
		t.Fatalf("broker URL %q, want nats://[::1]:PORT", b.URL)
	}
	startWorkerArgs(t, b.URL, testutil.NewMark(t))
	if code, stderr := runGorun(t, "echo over-ipv6\n", 60*time.Second, "exec", "-", "--broker", b.URL); code != 0 || !strings.Contains(stderr, "1 succeeded") {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
}

func TestE2EWorkerWaitsForBroker(t *testing.T) {
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	url := "nats://" + listen

	// A client told to try once fails at once, naming the broker.
	code, stderr := runGorun(t, "true\n", 30*time.Second, "exec", "-", "--broker", url, "--connect-timeout", "0")
	if code != 1 || !strings.Contains(stderr, url) {
		t.Fatalf("client without a broker: exit %d, stderr %q; want exit 1 naming %s", code, stderr, url)
	}

	// A worker started before the broker keeps trying, says so, and serves once the
	// broker is up.
	w := exec.Command(gorunBin, "worker", "--broker", url, "-v", "--connect-timeout", "2m")
	log := &syncBuffer{}
	w.Stderr = log
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = w.Wait(); close(exited) }()
	t.Cleanup(func() { _ = w.Process.Kill(); <-exited })
	waitFor(t, 30*time.Second, "the worker to say it tries again", func() bool { return strings.Contains(log.String(), "trying again") })
	startBrokerAt(t, t.TempDir(), listen)
	waitFor(t, 60*time.Second, "the worker to be ready", func() bool { return strings.Contains(log.String(), "worker ready") })
	if code, stderr := runGorun(t, "echo late\n", 60*time.Second, "exec", "-", "--broker", url); code != 0 || !strings.Contains(stderr, "1 succeeded") {
		t.Fatalf("exit %d; stderr:\n%s\nworker:\n%s", code, stderr, log)
	}
	if n := strings.Count(log.String(), "trying again"); n > 20 {
		t.Errorf("the worker said %d times that it tries again, want a line every few seconds at most:\n%s", n, log)
	}
}

// testPKI is a CA and the certificates it signed, as PEM files in a directory.
type testPKI struct{ CA, ServerCert, ServerKey, ClientCert, ClientKey string }

// newTestPKI makes a CA, a certificate for 127.0.0.1 and a client certificate.
func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gorun test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", keyDER(k))
	}
	p := testPKI{CA: write("ca.pem", "CERTIFICATE", caDER)}
	p.ServerCert, p.ServerKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.ClientCert, p.ClientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

func TestE2EBrokerTLS(t *testing.T) {
	p := newTestPKI(t)
	b := startBrokerAt(t, t.TempDir(), "127.0.0.1:0", "--tls-cert", p.ServerCert, "--tls-key", p.ServerKey, "--tls-ca", p.CA)
	if !strings.HasPrefix(b.URL, "tls://") {
		t.Fatalf("broker URL %q, want tls://", b.URL)
	}
	client := []string{"--tls-ca", p.CA, "--tls-cert", p.ClientCert, "--tls-key", p.ClientKey}
	startWorkerArgs(t, b.URL, testutil.NewMark(t), client...)
	code, stderr := runGorun(t, "echo over-tls\n", 60*time.Second, append([]string{"exec", "-", "--broker", b.URL}, client...)...)
	if code != 0 || !strings.Contains(stderr, "1 succeeded") {
		t.Fatalf("client with a certificate: exit %d; stderr:\n%s", code, stderr)
	}
	// Without a client certificate, or without trusting the CA, it is refused.
	for name, args := range map[string][]string{
		"no client certificate": {"--tls-ca", p.CA},
		"unknown CA":            {"--tls-cert", p.ClientCert, "--tls-key", p.ClientKey},
	} {
		code, stderr := runGorun(t, "true\n", 30*time.Second, append([]string{"exec", "-", "--broker", b.URL, "--connect-timeout", "0"}, args...)...)
		if code != 1 || !strings.Contains(stderr, b.URL) {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 naming the broker", name, code, stderr)
		}
	}
}

func TestE2EReportNamesWorkerAndHost(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, 0)
	c.addWorker(t, "--name", "w-alpha")
	dir := t.TempDir()
	rep := filepath.Join(dir, "r.json")
	r := startGorun(t, strings.NewReader("true\nfalse\n"), "exec", "-", "--broker", c.URL, "--report", rep, "-v")
	if code := r.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1 (one task fails); stderr:\n%s", code, r.stderr)
	}
	for id, res := range rawResults(t, rep) {
		if res["worker"] != "w-alpha" || res["host"] != host {
			t.Errorf("task %s: worker %v, host %v; want w-alpha on %s", id, res["worker"], res["host"], host)
		}
	}
	if want := "(on worker w-alpha, host " + host + ")"; !strings.Contains(r.stderr.String(), want) {
		t.Errorf("summary does not name the worker of the failed task (%q):\n%s", want, r.stderr)
	}
	if want := "worker=w-alpha host=" + host; strings.Count(r.stderr.String(), want) < 2 {
		t.Errorf("-v logs do not name the worker and host of each task (%q):\n%s", want, r.stderr)
	}

	// A local run names the local host, and no worker.
	local := filepath.Join(dir, "local.json")
	if code, stderr := runGorun(t, "true\n", 30*time.Second, "exec", "-", "--report", local); code != 0 {
		t.Fatalf("local run: exit %d; stderr:\n%s", code, stderr)
	}
	for id, res := range rawResults(t, local) {
		if res["host"] != host || res["worker"] != nil {
			t.Errorf("local task %s: worker %v, host %v; want no worker, host %s", id, res["worker"], res["host"], host)
		}
	}
}

// rawResults returns the results of the JSON report at path by task id, as written.
func rawResults(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	var rep struct{ Results []map[string]any }
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report %s: %v", path, err)
	}
	byID := map[string]map[string]any{}
	for _, r := range rep.Results {
		byID[fmt.Sprint(r["id"])] = r
	}
	return byID
}

func TestE2EEnvFromWorker(t *testing.T) {
	const secret = "canary-7d41e0b2"
	dir := t.TempDir()
	tasks := writeFile(t, "t.yaml", fmt.Sprintf(`version: 1
tasks:
  - id: uses-secret
    run: printf %%s "$TOKEN" > %s/got
    env:
      TOKEN: {from_worker: API_TOKEN}
`, dir))
	got := func() string { data, _ := os.ReadFile(filepath.Join(dir, "got")); return string(data) }

	// Locally, it reads gorun's own environment; without the variable the task fails
	// and says which.
	c := exec.Command(gorunBin, "exec", tasks)
	c.Env = append(os.Environ(), "API_TOKEN="+secret, "XDG_CONFIG_HOME="+t.TempDir())
	if out, err := c.CombinedOutput(); err != nil || got() != secret {
		t.Fatalf("local run: %v, task got %q; output:\n%s", err, got(), out)
	}
	code, stderr := runGorun(t, "", 30*time.Second, "exec", tasks)
	if code != 1 || !strings.Contains(stderr, "from_worker API_TOKEN is not set") {
		t.Errorf("local run without API_TOKEN: exit %d, stderr %q; want exit 1 naming the variable", code, stderr)
	}

	// On a broker, the worker's environment gives it; the submitter has none, and
	// the value rests nowhere in the broker's store.
	_ = os.Remove(filepath.Join(dir, "got"))
	t.Setenv("API_TOKEN", secret) // for the worker, which inherits the test's environment
	cl := startCluster(t, 1)
	os.Unsetenv("API_TOKEN") // not for the submitter
	r := startGorun(t, nil, "exec", tasks, "--broker", cl.URL)
	if code := r.wait(t, 60*time.Second); code != 0 || got() != secret {
		t.Fatalf("remote run: exit %d, task got %q; stderr:\n%s", code, got(), r.stderr)
	}
	err := filepath.WalkDir(cl.Store, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(data), secret) {
			t.Errorf("the secret rests in the broker's store: %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// storeHas tells whether a file under dir contains s.
func storeHas(t *testing.T, dir, s string) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if data, err := os.ReadFile(path); err == nil && strings.Contains(string(data), s) {
			found = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// waitQueued waits until the broker at url holds n attempts in its tasks stream.
func waitQueued(t *testing.T, url string, n uint64) {
	t.Helper()
	conn, err := cluster.Dial(context.Background(), url, cluster.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitFor(t, 30*time.Second, "the attempt to be queued", func() bool {
		info, err := conn.Tasks.Info(context.Background())
		return err == nil && info.State.Msgs >= n
	})
}

func TestE2EBrokerStoreEncrypted(t *testing.T) {
	const canary = "canary-at-rest-93be17"
	keyFile := filepath.Join(t.TempDir(), "store.key")
	if err := os.WriteFile(keyFile, []byte("a-long-random-store-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
			var args []string
			if encrypted {
				args = []string{"--store-key-file", keyFile}
			}
			store, listen := t.TempDir(), fmt.Sprintf("127.0.0.1:%d", freePort(t))
			b := startBrokerAt(t, store, listen, args...)
			// No worker yet: the attempt waits in the store.
			r := startGorun(t, strings.NewReader("echo "+canary+"\n"), "exec", "-", "--broker", b.URL, "-o", "none", "--ack-wait", "2s")
			waitQueued(t, b.URL, 1)
			_ = b.Cmd.Process.Signal(syscall.SIGTERM) // a clean stop writes everything down
			<-b.exited
			if got := storeHas(t, store, canary); got == encrypted {
				t.Fatalf("the queued command is in the store's files: %v, want %v", got, !encrypted)
			}
			// The same key reads the store back: the queued attempt runs.
			startBrokerAt(t, store, listen, args...)
			startWorkerArgs(t, b.URL, testutil.NewMark(t))
			if code := r.wait(t, 60*time.Second); code != 0 || !strings.Contains(r.stderr.String(), "1 succeeded") {
				t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
			}
		})
	}
}
