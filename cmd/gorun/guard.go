package main

import (
	"bufio"
	"io"
	"os/signal"
	"syscall"

	"github.com/gorun/gorun/internal/process"
)

// guardMain runs gorun as the guard of a run (see process.Guard) when args, gorun's
// os.Args, ask for it: `gorun GuardArg ID [CGROUP_DIR]`. It reports whether they did,
// and then the exit code.
//
// The guard ignores the signals that end a run, reads stdin, the pipe from the gorun
// it guards, to its end, and kills what the run left (process.KillRun) unless gorun
// said goodbye first.
func guardMain(args []string, stdin io.Reader) (code int, isGuard bool) {
	if len(args) < 3 || len(args) > 4 || args[1] != process.GuardArg {
		return 0, false
	}
	id, cgroupDir := args[2], ""
	if len(args) == 4 {
		cgroupDir = args[3]
	}
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	last := ""
	for sc := bufio.NewScanner(stdin); sc.Scan(); {
		last = sc.Text()
	}
	if last != process.GuardBye {
		process.KillRun(id, cgroupDir)
	}
	return 0, true
}
