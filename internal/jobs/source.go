package jobs

// Source yields tasks in input order.
//
// Next returns the next task, or io.EOF after the last one. Close ends the input early:
// a Next blocked on reading returns soon after. What a source still yields after Close
// (a file's remaining tasks; nothing for a stream) is reported as skipped.
// Next is called from one goroutine at a time; Close may be called from any goroutine,
// more than once.
type Source interface {
	Next() (Task, error)
	Close() error
}
