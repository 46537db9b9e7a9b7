//go:build unix

// Package lock keeps two runs from overlapping, as flock(1) does for cron jobs.
package lock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrHeld means that another process holds the lock.
var ErrHeld = errors.New("lock held by another run")

// Lock is an exclusive flock(2) on a file. The kernel releases it when its holder
// dies, even by SIGKILL: there is no stale lock to clean up. Its descriptor is
// close-on-exec, so no task inherits it (and keeps it after gorun is gone).
type Lock struct{ f *os.File }

// TryAcquire takes the lock on path (created if need be, mode 0644) without waiting.
// It returns an error wrapping ErrHeld if another process holds it. path is not
// followed if it is a symbolic link.
func TryAcquire(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, ErrHeld)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock. A nil *Lock does nothing.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}
