//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/testutil"
)

// unitDir holds the systemd units of the README's "Production" section.
const unitDir = "../../configs/systemd"

// unitFile is a systemd unit as these tests read it: each key's values in order, and
// the command line of ExecStart split into words (continuation lines joined).
type unitFile struct {
	path string
	keys map[string][]string
	exec []string
}

// readUnit reads a unit file of unitDir.
func readUnit(t *testing.T, name string) *unitFile {
	t.Helper()
	path := filepath.Join(unitDir, name)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := &unitFile{path: path, keys: map[string][]string{}}
	var line strings.Builder
	for sc := bufio.NewScanner(f); sc.Scan(); {
		text := strings.TrimSpace(sc.Text())
		if line.Len() == 0 && (text == "" || strings.HasPrefix(text, "#") || strings.HasPrefix(text, "[")) {
			continue
		}
		if more, ok := strings.CutSuffix(text, `\`); ok {
			line.WriteString(more + " ")
			continue
		}
		line.WriteString(text)
		key, value, ok := strings.Cut(line.String(), "=")
		line.Reset()
		if !ok {
			t.Fatalf("%s: line %q is not KEY=VALUE", path, text)
		}
		u.keys[key] = append(u.keys[key], value)
	}
	if len(u.keys["ExecStart"]) != 1 {
		t.Fatalf("%s: want one ExecStart, got %q", path, u.keys["ExecStart"])
	}
	u.exec = strings.Fields(u.keys["ExecStart"][0])
	return u
}

// key returns the last value of key ("" when unset), as systemd takes it.
func (u *unitFile) key(k string) string {
	if v := u.keys[k]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// flagValue returns the value the command line gives flag ("" when absent).
func (u *unitFile) flagValue(flag string) string {
	for i, w := range u.exec {
		if w == flag && i+1 < len(u.exec) {
			return u.exec[i+1]
		}
		if v, ok := strings.CutPrefix(w, flag+"="); ok {
			return v
		}
	}
	return ""
}

// readEnvFile reads an example environment file of unitDir: NAME=VALUE lines.
func readEnvFile(t *testing.T, name string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(unitDir, name))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not NAME=VALUE", name, line)
		}
		env[k] = v
	}
	return env
}

// helpFlags returns the flags `gorun <sub> --help` lists, long and short ("--grace",
// "-j"). Deprecated flags are not listed.
func helpFlags(t *testing.T, sub string) map[string]bool {
	t.Helper()
	out, err := exec.Command(gorunBin, sub, "--help").Output()
	if err != nil {
		t.Fatalf("gorun %s --help: %v", sub, err)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:(-\w), )?(--[a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[2]] = true
		if m[1] != "" {
			flags[m[1]] = true
		}
	}
	if !flags["--help"] {
		t.Fatalf("gorun %s --help lists no --help; the pattern reads no flag:\n%s", sub, out)
	}
	return flags
}

// TestSystemdUnits checks the units of configs/systemd against the binary and against
// what the README promises of them: every flag exists, every variable is defined by
// the example environment file, every secret comes from a credential, and the worker
// is stopped so that it drains. With systemd-analyze at hand, systemd must accept them
// without a word.
func TestSystemdUnits(t *testing.T) {
	for _, c := range []struct{ unit, sub, env string }{
		{"gorun-broker.service", "broker", "broker.env"},
		{"gorun-worker.service", "worker", "worker.env"},
	} {
		t.Run(c.sub, func(t *testing.T) {
			u := readUnit(t, c.unit)
			if len(u.exec) < 2 || u.exec[0] != "/usr/local/bin/gorun" || u.exec[1] != c.sub {
				t.Fatalf("%s: ExecStart %q, want /usr/local/bin/gorun %s ...", u.path, u.exec, c.sub)
			}
			known := helpFlags(t, c.sub)
			for _, w := range u.exec[2:] {
				if name, _, _ := strings.Cut(w, "="); strings.HasPrefix(name, "-") && !known[name] {
					t.Errorf("%s: ExecStart uses %s, which `gorun %s --help` does not list", u.path, name, c.sub)
				}
			}
			if want := "/etc/gorun/" + c.env; u.key("EnvironmentFile") != want {
				t.Errorf("%s: EnvironmentFile=%s, want %s", u.path, u.key("EnvironmentFile"), want)
			}
			env := readEnvFile(t, c.env)
			for _, m := range regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`).FindAllStringSubmatch(u.keys["ExecStart"][0], -1) {
				if m[2] != "" {
					t.Errorf("%s: $%s is split on spaces by systemd: write ${%s}", u.path, m[2], m[2])
				} else if env[m[1]] == "" {
					t.Errorf("%s: ExecStart uses ${%s}, which %s does not set", u.path, m[1], c.env)
				}
			}
			for name := range env {
				if strings.Contains(strings.ToUpper(name), "TOKEN") || strings.Contains(strings.ToUpper(name), "KEY") {
					t.Errorf("%s sets %s: secrets are credentials of the unit, not variables", c.env, name)
				}
			}
			creds := map[string]bool{}
			for _, lc := range u.keys["LoadCredential"] {
				id, file, _ := strings.Cut(lc, ":")
				creds[id] = true
				if !strings.HasPrefix(file, "/etc/gorun/") {
					t.Errorf("%s: LoadCredential=%s: want a file of /etc/gorun", u.path, lc)
				}
			}
			for _, m := range regexp.MustCompile(`%d/([\w-]+)`).FindAllStringSubmatch(u.keys["ExecStart"][0], -1) {
				if !creds[m[1]] {
					t.Errorf("%s: ExecStart reads %%d/%s, which no LoadCredential= provides", u.path, m[1])
				}
			}
			if u.flagValue("--token-file") != "%d/token" {
				t.Errorf("%s: --token-file %q, want %%d/token (the credential)", u.path, u.flagValue("--token-file"))
			}
			for _, e := range u.keys["Environment"] {
				if strings.Contains(e, "TOKEN") {
					t.Errorf("%s: Environment=%s: a secret in the environment", u.path, e)
				}
			}
			if c.sub == "worker" {
				checkWorkerStop(t, u)
			}
			verifyUnit(t, u)
		})
	}
}

// checkWorkerStop checks how systemd stops the worker: SIGTERM to the worker alone,
// which drains it, and time for the drain before SIGKILL.
func checkWorkerStop(t *testing.T, u *unitFile) {
	t.Helper()
	if u.key("KillMode") != "mixed" {
		t.Errorf("%s: KillMode=%s, want mixed: SIGTERM to the worker alone, which stops its tasks with their grace", u.path, u.key("KillMode"))
	}
	grace, err := time.ParseDuration(u.flagValue("--grace"))
	if err != nil {
		t.Fatalf("%s: --grace %q: %v", u.path, u.flagValue("--grace"), err)
	}
	stop, err := time.ParseDuration(u.key("TimeoutStopSec"))
	if err != nil {
		t.Fatalf("%s: TimeoutStopSec=%s: %v", u.path, u.key("TimeoutStopSec"), err)
	}
	// The drain: --grace, then a task's own grace (exec --grace, 5s by default), then
	// the hand-back; a margin for the rest.
	if need := grace + 5*time.Second + 15*time.Second; stop < need {
		t.Errorf("%s: TimeoutStopSec=%v is shorter than the drain: --grace %v + a task's grace 5s + 15s", u.path, stop, grace)
	}
	if u.key("Delegate") != "yes" {
		t.Errorf("%s: Delegate=%s, want yes: without it a worker that is not root cannot put tasks in cgroups", u.path, u.key("Delegate"))
	}
}

// verifyUnit runs `systemd-analyze verify` on a copy of the unit that runs the binary
// under test, when systemd-analyze is installed: any word about the unit is an error.
func verifyUnit(t *testing.T, u *unitFile) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the unit is not verified")
		return
	}
	data, err := os.ReadFile(u.path)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), filepath.Base(u.path))
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(data), "/usr/local/bin/gorun", gorunBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
	var words []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, filepath.Base(u.path)) {
			words = append(words, line)
		}
	}
	if err != nil || len(words) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", u.path, err, out)
	}
}

// unitCommand returns the unit's command line as systemd would run it: the binary
// under test, ${VAR} from env, %S the state directories' root, %l host, %d the
// credentials directory.
func unitCommand(u *unitFile, env map[string]string, stateRoot, host, creds string) *exec.Cmd {
	var args []string
	for _, w := range u.exec[1:] {
		w = regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(w, func(v string) string { return env[v[2:len(v)-1]] })
		w = strings.NewReplacer("%S", stateRoot, "%l", host, "%d", creds).Replace(w)
		args = append(args, w)
	}
	return exec.Command(gorunBin, args...)
}

// TestE2ESystemdUnitsRun runs the units' own command lines, on loopback: three
// brokers of one cluster with TLS, a token and an encrypted store, and a worker, and
// submits a run to them as the README tells a submitter to.
func TestE2ESystemdUnitsRun(t *testing.T) {
	pki := newTestPKI(t)
	etc := t.TempDir() // /etc/gorun
	creds := t.TempDir()
	put := func(path string, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	put(filepath.Join(creds, "token"), []byte(secretToken+"\n"))
	put(filepath.Join(creds, "store-key"), []byte("store-key-0123456789abcdef\n"))
	if err := os.MkdirAll(filepath.Join(etc, "tls"), 0o755); err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{pki.ServerKey: filepath.Join(creds, "tls-key"), pki.CA: filepath.Join(etc, "tls", "ca.pem"), pki.ServerCert: filepath.Join(etc, "tls", "node.pem")} {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		put(to, data)
	}
	// The units name /etc/gorun; here it is etc.
	atEtc := func(cmd *exec.Cmd) *exec.Cmd {
		for i, a := range cmd.Args {
			cmd.Args[i] = strings.ReplaceAll(a, "/etc/gorun", etc)
		}
		return cmd
	}

	broker := readUnit(t, "gorun-broker.service")
	brokerEnv := readEnvFile(t, "broker.env")
	client := make([]string, 3)
	route := make([]string, 3)
	for i := range 3 {
		client[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		route[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	var ready []func() *brokerProc
	for i := range 3 {
		env := map[string]string{}
		for k := range brokerEnv {
			env[k] = ""
		}
		env["BROKER_LISTEN"], env["BROKER_CLUSTER_LISTEN"] = client[i], route[i]
		var others []string
		for j := range 3 {
			if j != i {
				others = append(others, "nats-route://"+route[j])
			}
		}
		env["BROKER_ROUTES"] = strings.Join(others, ",")
		cmd := atEtc(unitCommand(broker, env, t.TempDir(), fmt.Sprintf("node%d", i+1), creds))
		ready = append(ready, launchBroker(t, cmd.Args[2:]...))
	}
	var urls []string
	for _, r := range ready {
		b := r()
		if !strings.HasPrefix(b.URL, "tls://") {
			t.Fatalf("broker URL %s, want tls://", b.URL)
		}
		urls = append(urls, b.URL)
	}

	worker := readUnit(t, "gorun-worker.service")
	env := readEnvFile(t, "worker.env")
	env["GORUN_WORKER_BROKERS"], env["GORUN_WORKER_SLOTS"] = strings.Join(urls, ","), "2"
	cmd := atEtc(unitCommand(worker, env, t.TempDir(), "node1", creds))
	cmd.Env = append(os.Environ(), testutil.MarkVar+"="+testutil.NewMark(t))
	log := &syncBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	waitFor(t, 30*time.Second, "the worker's ready line", func() bool { return strings.Contains(log.String(), "worker ready") })

	// A submitter: every broker's URL, the token from a file, the CA.
	code, stderr := runGorun(t, "echo via-units\n", 60*time.Second, "exec", "-", "--broker", strings.Join(urls, ","),
		"--token-file", filepath.Join(creds, "token"), "--tls-ca", filepath.Join(etc, "tls", "ca.pem"), "-o", "jsonl")
	if code != 0 || !strings.Contains(stderr, "1 succeeded") {
		t.Fatalf("run through the units' brokers and worker: exit %d; stderr:\n%s\nworker:\n%s", code, stderr, log)
	}
	if !strings.Contains(log.String(), "worker=node1") {
		t.Errorf("the worker's log names no worker=node1 (--name %%l):\n%s", log)
	}
	// systemctl stop: SIGTERM to the worker alone; it drains and exits cleanly.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if !cmd.ProcessState.Success() {
			t.Errorf("worker after SIGTERM: %v, want a clean exit", cmd.ProcessState)
		}
	case <-time.After(30 * time.Second):
		t.Error("an idle worker did not exit within 30s of SIGTERM")
	}
}

// TestE2EWorkerDrainHandsBackAtOnce drains a worker (SIGTERM) while it runs an
// attempt: the attempt must start again on another worker at once, not after the
// run's lease and grace (33s here), and count as a second execution, no duplicate.
func TestE2EWorkerDrainHandsBackAtOnce(t *testing.T) {
	c := startCluster(t, 0)
	a, _ := startWorkerArgs(t, c.URL, c.Mark, "--grace", "200ms")
	dir := t.TempDir()
	// The first execution sleeps until it is stopped; the second ends at once.
	task := fmt.Sprintf("touch %s/started-$GORUN_ATTEMPT; if [ $GORUN_ATTEMPT = 1 ]; then sleep 60; fi\n", dir)
	r := startGorun(t, strings.NewReader(task), "exec", "-", "--broker", c.URL, "--ack-wait", "3s", "--grace", "30s", "-o", "jsonl")
	started := func(n int) func() bool {
		return func() bool { _, err := os.Stat(fmt.Sprintf("%s/started-%d", dir, n)); return err == nil }
	}
	waitFor(t, 30*time.Second, "the first execution to start", started(1))
	c.addWorker(t) // ready before the drain: the hand-back finds it waiting
	drained := time.Now()
	_ = a.Process.Signal(syscall.SIGTERM)
	waitFor(t, 60*time.Second, "the second execution to start", started(2))
	if took := time.Since(drained); took > 15*time.Second {
		t.Errorf("the handed-back attempt started again %v after the drain began; want well under the lease and grace (33s)", took.Round(time.Millisecond))
	}
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\n%s", code, r.stderr, c.workerLogs())
	}
	for id, res := range jsonlResults(t, r.stdout.String()) {
		if res.Status != "succeeded" || res.Attempts != 2 || res.Duplicates != 0 {
			t.Errorf("%s: %s after %d attempts, %d duplicates; want succeeded after 2, no duplicate", id, res.Status, res.Attempts, res.Duplicates)
		}
	}
}
