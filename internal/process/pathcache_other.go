//go:build unix && !linux

package process

// pathCache is lookPath as it is: without inotify, nothing is remembered.
type pathCache struct{}

func (c *pathCache) lookPath(name, path string) (string, bool) { return lookPath(name, path) }

func (c *pathCache) close() {}
