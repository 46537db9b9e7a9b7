//go:build !race

package proc

// raceEnabled: the race detector is on, and its instrumentation moves buffers to the heap.
const raceEnabled = false
