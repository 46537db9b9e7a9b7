//go:build unix

package process

import (
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gorun/gorun/internal/jobs"
)

// directCmd is a `run` line that gorun starts without a shell: the program found in
// PATH, the argv the shell would have built, and the environment the shell would have
// passed on. A zero directCmd (path "") means the shell runs the line.
type directCmd struct {
	path string
	argv []string
	env  []string
}

// direct decides whether t's `run` line starts without a shell. It does when the line
// is a simple command (SimpleArgv), the shell is the default one, the task does not
// ask for the shell always, and the program is found in the task's PATH as the
// shell would find it. Otherwise, and whenever the answer depends on something the
// shell knows better (a relative PATH entry, no PATH at all, a command not found),
// the shell runs the line, so that its messages and exit codes (127, 126) are the
// shell's own.
//
// env is the environment the shell would have started with; the program gets it with
// PWD set as a POSIX shell sets it at start-up: the inherited PWD when it names the
// working directory, else the physical path of the working directory.
func (r *Runner) direct(t *jobs.Task, env []string) directCmd {
	if t.Template != nil || t.Argv != nil || t.ShellAlways || t.Shell != jobs.DefaultShell {
		return directCmd{}
	}
	if strings.HasPrefix(t.Run, "-") || strings.HasPrefix(t.Run, "+") {
		return directCmd{} // `sh -c -x` reads the line as options; the shell says so
	}
	argv, ok := SimpleArgv(t.Run)
	if !ok {
		return directCmd{}
	}
	path, ok := r.paths.lookPath(argv[0], lastValue(env, "PATH"))
	if !ok {
		return directCmd{}
	}
	pwd, ok := shellPWD(t.Dir, lastValue(env, "PWD"))
	if !ok {
		return directCmd{}
	}
	return directCmd{path: path, argv: argv, env: append(env, "PWD="+pwd)}
}

// lastValue returns the value of the last key=… entry of env, which is the one a
// process sees, or "" with ok false when there is none.
func lastValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key); ok && strings.HasPrefix(v, "=") {
			return v[1:]
		}
	}
	return ""
}

// lookPath finds name as a POSIX shell does: a name with a slash as it is (relative to
// the task's directory), else the first executable regular file of that name in the
// directories of path. It gives up (false) where only the shell can answer: an empty
// PATH, a relative or empty PATH entry met before the program, or no such program.
func lookPath(name, path string) (string, bool) {
	if strings.ContainsRune(name, '/') {
		return name, true
	}
	if path == "" {
		return "", false
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			return "", false
		}
		if file, ok := lookIn(dir, name); ok {
			return file, true
		}
	}
	return "", false
}

// lookIn reports whether dir holds an executable regular file name, and its path.
func lookIn(dir, name string) (string, bool) {
	file := filepath.Join(dir, name)
	var st unix.Stat_t
	if unix.Stat(file, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", false
	}
	return file, unix.Faccessat(unix.AT_FDCWD, file, unix.X_OK, unix.AT_EACCESS) == nil
}

// shellPWD returns the PWD a POSIX shell started in dir ("" for gorun's own working
// directory) would export: inherited when it is absolute and names that directory,
// else the directory's physical path. False when dir cannot be resolved (the shell
// then reports it).
func shellPWD(dir, inherited string) (string, bool) {
	where := dir
	if where == "" {
		where = "."
	}
	var here syscall.Stat_t
	if syscall.Stat(where, &here) != nil {
		return "", false
	}
	if strings.HasPrefix(inherited, "/") {
		var st syscall.Stat_t
		if syscall.Stat(inherited, &st) == nil && st.Dev == here.Dev && st.Ino == here.Ino {
			return inherited, true
		}
	}
	if dir == "" {
		wd, err := syscall.Getwd()
		return wd, err == nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	phys, err := filepath.EvalSymlinks(abs)
	return phys, err == nil
}
