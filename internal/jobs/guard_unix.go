//go:build unix

package jobs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
)

// GuardArg is the argument that makes the gorun binary run as a Guard (see GuardMain).
const GuardArg = "__gorun_guard"

// Guard is a small helper process that outlives gorun for one purpose: if gorun dies,
// even by SIGKILL, it kills the process groups of the tasks that were still running.
// gorun tells it of each group as the task starts and ends, through a pipe; when that
// pipe reaches end-of-file, gorun is gone, and the guard kills what it was told of.
//
// A nil *Guard does nothing. Its methods are safe for concurrent use.
type Guard struct {
	mu  sync.Mutex
	w   *os.File // the write end; close-on-exec, so no task holds it open
	cmd *exec.Cmd
	buf []byte
}

// StartGuard starts the guard as `exe GuardArg`, normally gorun's own binary. The guard
// ignores SIGINT, SIGTERM and SIGHUP and runs in a process group of its own, so that
// neither a terminal's Ctrl-C nor a signal to gorun's group ends it before gorun.
func StartGuard(exe string) (*Guard, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start guard: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, GuardArg)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start guard: %w", err)
	}
	return &Guard{w: w, cmd: cmd}, nil
}

func (g *Guard) add(pgid int)    { g.send('+', pgid) }
func (g *Guard) remove(pgid int) { g.send('-', pgid) }

func (g *Guard) send(op byte, pgid int) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.w == nil {
		return
	}
	g.buf = append(strconv.AppendInt(append(g.buf[:0], op), int64(pgid), 10), '\n')
	_, _ = g.w.Write(g.buf)
}

// Close tells the guard that gorun ends normally and waits for it to exit. Groups it
// was told of and not told the end of are killed, as they would be on a crash.
func (g *Guard) Close() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	w := g.w
	g.w = nil
	g.mu.Unlock()
	if w == nil {
		return nil
	}
	w.Close()
	return g.cmd.Wait()
}

// GuardMain is the guard process's main: it reads "+PGID" and "-PGID" lines from r
// until end-of-file, then sends SIGKILL to every group added and not removed.
// It returns the process exit code.
func GuardMain(r io.Reader) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	live := make(map[int]struct{})
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) < 2 {
			continue
		}
		pgid, err := strconv.Atoi(string(line[1:]))
		if err != nil || pgid <= 1 {
			continue
		}
		if line[0] == '+' {
			live[pgid] = struct{}{}
		} else {
			delete(live, pgid)
		}
	}
	for pgid := range live {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return 0
}
