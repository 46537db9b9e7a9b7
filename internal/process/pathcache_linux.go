//go:build linux

package process

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// pathCache remembers where lookPath found each program, so that a run of many tasks
// that name the same few programs does not search PATH again for every task (a stat
// per directory before the program's own), and forgets all of it the moment any
// directory it searched changes: an inotify watch on each of them reports an entry
// created, removed, renamed or changed (chmod) there, and every look-up first reads
// what the kernel has queued. A change made before a task starts (by an earlier task,
// say) is queued before the call that made it returns, so the task's look-up sees it:
// the answer is the one a fresh search would give. gorun reads the inotify descriptor
// itself, without a watcher goroutine (fsnotify), for that reason: a goroutine
// could hand the event on after the look-up.
//
// What no watch sees: a change beyond the directories themselves (a symbolic link
// in PATH, or one of their parents, pointed elsewhere), or a symbolic link in PATH
// whose target changes. A program that was found and cannot be started any more is
// still handed to the shell (see Runner.Run).
//
// The zero value is ready; lookPath is safe for concurrent use; close releases it.
type pathCache struct {
	mu      sync.Mutex
	opened  bool // the inotify instance was tried
	fd      int  // the inotify instance, non-blocking; -1: none, nothing is kept
	watched map[string]bool
	found   map[pathKey]string
	buf     [4096]byte // for draining events
}

type pathKey struct{ path, name string }

// maxWatched bounds the directories watched; beyond it, look-ups are not kept.
const maxWatched = 256

// watchMask is every change to a directory that can change what a look-up finds in it.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// lookPath is the package's lookPath, remembered until a directory it searched changes.
func (c *pathCache) lookPath(name, path string) (string, bool) {
	if strings.ContainsRune(name, '/') || path == "" {
		return lookPath(name, path)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.opened {
		c.opened = true
		fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
		if err != nil {
			fd = -1
		}
		c.fd = fd
	}
	if c.fd < 0 {
		return lookPath(name, path)
	}
	c.drain()
	key := pathKey{path, name}
	if p, ok := c.found[key]; ok {
		return p, true
	}
	// Watch every directory searched before searching it, so that nothing that
	// changes after the search goes unseen.
	keep := true
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			return "", false // as lookPath: the shell answers
		}
		keep = keep && c.watch(dir)
		if p, ok := lookIn(dir, name); ok {
			if keep {
				if c.found == nil {
					c.found = make(map[pathKey]string)
				}
				c.found[key] = p
			}
			return p, true
		}
	}
	return "", false
}

// watch makes sure dir is watched; false when it cannot be. A directory that does not
// exist is watched through its parent, where it would be made.
func (c *pathCache) watch(dir string) bool {
	if c.watched[dir] {
		return true
	}
	if len(c.watched) >= maxWatched {
		return false
	}
	_, err := unix.InotifyAddWatch(c.fd, dir, watchMask)
	if errors.Is(err, unix.ENOENT) && filepath.Dir(dir) != dir {
		_, err = unix.InotifyAddWatch(c.fd, filepath.Dir(dir), watchMask)
	}
	if err != nil {
		return false
	}
	if c.watched == nil {
		c.watched = make(map[string]bool)
	}
	c.watched[dir] = true
	return true
}

// drain reads every queued event; after any, nothing found so far is trusted, and
// every directory is watched anew on the next search (a removed one lost its watch).
func (c *pathCache) drain() {
	changed := false
	for {
		n, err := unix.Read(c.fd, c.buf[:])
		if n > 0 {
			changed = true
			continue
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			changed = true // cannot tell: trust nothing, keep nothing from now on
			_ = unix.Close(c.fd)
			c.fd = -1
		}
		break
	}
	if changed {
		clear(c.found)
		clear(c.watched)
	}
}

// close releases the inotify instance.
func (c *pathCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opened && c.fd >= 0 {
		_ = unix.Close(c.fd)
	}
	c.opened, c.fd = false, 0
	c.found, c.watched = nil, nil
}
