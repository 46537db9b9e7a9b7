package dist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pipeline"
)

// Submitter runs a run's tasks on the broker's workers. Its Run has the signature of
// pipeline.Run, so that a distributed run reports, journals and exits as a local one.
type Submitter struct {
	Conn  *Conn
	RunID string
	// InFlight caps the tasks published and not yet finished, across all workers;
	// 0: no cap (every task is published at once).
	InFlight int
	// Grace is how long, after an interrupt, running tasks get to report their end
	// before the run is written off.
	Grace time.Duration
}

// Run publishes the tasks of src, each when a slot of InFlight is free and the
// limiter allows, and emits each task's first result, in the order they come. When
// ctx is done, it marks the run cancelling (workers stop its running tasks and start
// none), removes its queued tasks from the broker, waits for the running ones to
// report, and emits the rest as skipped.
func (s *Submitter) Run(ctx context.Context, src jobs.Source, opts pipeline.Options, emit func(jobs.Result)) error {
	bg := context.Background()
	if _, err := s.Conn.Runs.Put(bg, s.RunID, []byte(StateRunning)); err != nil {
		return fmt.Errorf("run %s: %w", s.RunID, err)
	}
	results, stopResults, err := s.results(bg)
	if err != nil {
		return err
	}
	defer stopResults()
	if gs, ok := src.(interface{ Graph() *jobs.Graph }); ok && gs.Graph() != nil {
		return s.runGraph(ctx, gs.Graph(), opts, results, emit)
	}

	pub := &publisher{s: s, limiter: opts.Limiter, tasks: map[int]jobs.Task{}, key: opts.Key, skip: opts.Done, known: make(chan jobs.Result, 16)}
	if s.InFlight > 0 {
		pub.slots = make(chan struct{}, s.InFlight)
	}
	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	pubDone := make(chan error, 1)
	go func() { pubDone <- pub.publishAll(pubCtx, src) }()

	done := map[int]bool{}
	var inputErr error
	published := -1 // known once the publisher is done
	var deadline <-chan time.Time
	cancelled := false
	for published < 0 || len(done) < published {
		select {
		case err := <-pubDone:
			inputErr = err
			published = pub.count()
			pubDone = nil
		case res := <-results:
			if done[res.Index] {
				continue // a task that ran twice (a worker died): its first result counts
			}
			done[res.Index] = true
			res.Key = pub.release(res.Index)
			print(opts, &res)
			emit(res.Result)
		case r := <-pub.known: // already succeeded in the journal, or invalid: not published
			done[r.Index] = true
			emit(r)
		case <-ctx.Done():
			if !cancelled {
				cancelled = true
				stopPub()
				s.cancel()
				deadline = time.After(s.Grace + 2*time.Second)
			}
		case <-deadline:
			published = pub.count() // give up on the rest
			if pubDone != nil {
				inputErr = <-pubDone
			}
			pubDone = nil
			for _, t := range pub.remaining(done) {
				emit(jobs.SkippedResult(&t, "no result from any worker after the run was cancelled"))
				done[t.Index] = true
			}
		}
		if cancelled && pubDone == nil && deadline != nil && published >= 0 {
			// Tasks never published are skipped; published ones wait for a result.
			for _, t := range pub.unpublished(done) {
				emit(jobs.SkippedResult(&t, context.Cause(ctx).Error()))
				done[t.Index] = true
			}
		}
	}
	state := StateDone
	if cancelled {
		state = StateCancelling
	}
	_, _ = s.Conn.Runs.Put(bg, s.RunID, []byte(state))
	return inputErr
}

// cancel marks the run cancelling, so that workers stop its tasks, and removes its
// queued tasks from the work queue.
func (s *Submitter) cancel() {
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	_, _ = s.Conn.Runs.Put(ctx, s.RunID, []byte(StateCancelling))
	_ = s.Conn.Tasks.Purge(ctx, jetstream.WithPurgeSubject(taskSubject(s.RunID)))
}

// results replays the run's results stream from its start, so that results published
// before the submitter listened (or before it restarted) count too.
func (s *Submitter) results(ctx context.Context) (<-chan resultMsg, func(), error) {
	cons, err := s.Conn.JS.OrderedConsumer(ctx, ResultsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"gorun.res." + s.RunID + ".>"}, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("results of run %s: %w", s.RunID, err)
	}
	ch := make(chan resultMsg, 64)
	stopped := make(chan struct{})
	var once sync.Once
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var r resultMsg
		if json.Unmarshal(m.Data(), &r) == nil {
			select {
			case ch <- r:
			case <-stopped:
			}
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("results of run %s: %w", s.RunID, err)
	}
	return ch, func() { once.Do(func() { close(stopped); cc.Stop() }) }, nil
}

// print writes a finished task's output as the output mode wants. A distributed run
// prints results in the order they come (--keep-order is not supported).
func print(opts pipeline.Options, r *resultMsg) {
	switch opts.Output {
	case pipeline.Grouped, pipeline.Line:
		_, _ = io.WriteString(opts.Stdout, r.Stdout)
		_, _ = io.WriteString(opts.Stderr, r.Stderr)
	case pipeline.Tag:
		_, _ = io.WriteString(opts.Stdout, tagLines(r.ID, r.Stdout))
		_, _ = io.WriteString(opts.Stderr, tagLines(r.ID, r.Stderr))
	case pipeline.JSONL:
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if enc.Encode(r.Result) == nil {
			_, _ = opts.Stdout.Write(b.Bytes())
		}
	}
}

func tagLines(id, s string) string {
	if s == "" {
		return ""
	}
	lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(id + "\t" + strings.TrimSuffix(l, "\n") + "\n")
	}
	return b.String()
}

// publisher feeds a run's tasks to the work queue.
type publisher struct {
	s       *Submitter
	limiter *rate.Limiter                   // nil: unlimited
	slots   chan struct{}                   // nil: no cap
	key     func(*jobs.Task) string         // journal identity, or nil
	skip    func(key string) (string, bool) // already succeeded, or nil
	known   chan jobs.Result                // results of tasks not published (resume)

	mu    sync.Mutex
	tasks map[int]jobs.Task // read from the input and not finished
	pub   map[int]bool      // published
	n     int               // tasks read
}

func (p *publisher) publishAll(ctx context.Context, src jobs.Source) error {
	p.mu.Lock()
	p.pub = map[int]bool{}
	p.mu.Unlock()
	for {
		t, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if t.Invalid != nil { // a bad line of a stream: not published
			p.mu.Lock()
			p.n++
			p.mu.Unlock()
			select {
			case p.known <- jobs.InvalidResult(&t):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		if p.key != nil {
			t.Key = p.key(&t)
			if p.skip != nil {
				if reason, done := p.skip(t.Key); done {
					p.mu.Lock()
					p.n++
					p.mu.Unlock()
					select {
					case p.known <- jobs.SkippedResult(&t, reason):
					case <-ctx.Done():
						return nil
					}
					continue
				}
			}
		}
		p.mu.Lock()
		p.tasks[t.Index] = t
		p.n++
		p.mu.Unlock()
		if p.slots != nil {
			select {
			case p.slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
		}
		if p.limiter != nil && p.limiter.Wait(ctx) != nil {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := p.s.publish(ctx, &t); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		p.mu.Lock()
		p.pub[t.Index] = true
		p.mu.Unlock()
	}
}

// release frees the slot of a finished task and returns its journal key.
func (p *publisher) release(index int) string {
	p.mu.Lock()
	t, known := p.tasks[index]
	delete(p.tasks, index)
	p.mu.Unlock()
	if known && p.slots != nil {
		select {
		case <-p.slots:
		default:
		}
	}
	return t.Key
}

func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// unpublished returns the tasks read but never published, and forgets them.
func (p *publisher) unpublished(done map[int]bool) []jobs.Task {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []jobs.Task
	for i, t := range p.tasks {
		if !p.pub[i] && !done[i] {
			out = append(out, t)
			delete(p.tasks, i)
		}
	}
	return out
}

// remaining returns every task without a result.
func (p *publisher) remaining(done map[int]bool) []jobs.Task {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []jobs.Task
	for i, t := range p.tasks {
		if !done[i] {
			out = append(out, t)
		}
	}
	return out
}

// runGraph runs a graph of needs: a task is published only when everything it needs
// has succeeded; a task whose need did not succeed is skipped with the reason, and so
// is everything that depends on it.
func (s *Submitter) runGraph(ctx context.Context, g *jobs.Graph, opts pipeline.Options, results <-chan resultMsg, emit func(jobs.Result)) error {
	n := g.Len()
	remaining := n
	var skips []jobs.Skip
	end := func(r jobs.Result) {
		remaining--
		emit(r)
	}
	ready, resumed := pipeline.ResumeGraph(g, &opts)
	for _, r := range resumed {
		end(r)
	}
	var deadline <-chan time.Time
	cancelled := false
	for remaining > 0 {
		for _, sk := range skips {
			end(jobs.SkippedResult(g.Task(sk.Pos), sk.Reason))
		}
		skips = nil
		for len(ready) > 0 && !cancelled {
			pos := ready[0]
			ready = ready[1:]
			if g.Taken(pos) || g.Final(pos) {
				continue
			}
			if opts.Limiter != nil && opts.Limiter.Wait(ctx) != nil {
				break
			}
			t := g.Task(pos)
			if err := s.publish(ctx, t); err != nil {
				if ctx.Err() != nil {
					break
				}
				return err
			}
			g.Take(pos)
		}
		if remaining == 0 {
			break
		}
		select {
		case res := <-results:
			pos := res.Index - 1
			if pos < 0 || pos >= n || g.Final(pos) {
				continue // a task that ran twice: its first result counts
			}
			r, sk := g.Finish(pos, res.Status)
			res.Key = g.Task(pos).Key
			print(opts, &res)
			end(res.Result)
			ready, skips = append(ready, r...), append(skips, sk...)
		case <-ctx.Done():
			if !cancelled {
				cancelled = true
				s.cancel()
				deadline = time.After(s.Grace + 2*time.Second)
				for pos := range n {
					if !g.Taken(pos) && !g.Final(pos) {
						_, sk := g.Finish(pos, jobs.Skipped)
						end(jobs.SkippedResult(g.Task(pos), context.Cause(ctx).Error()))
						skips = append(skips, sk...)
					}
				}
			}
		case <-deadline:
			for pos := range n {
				if g.Taken(pos) && !g.Final(pos) {
					_, sk := g.Finish(pos, jobs.Skipped)
					end(jobs.SkippedResult(g.Task(pos), "no result from any worker after the run was cancelled"))
					skips = append(skips, sk...)
				}
			}
		}
	}
	state := StateDone
	if cancelled {
		state = StateCancelling
	}
	_, _ = s.Conn.Runs.Put(context.Background(), s.RunID, []byte(state))
	return nil
}

// publish puts a task on the work queue; its message id makes a second publish of the
// same task in this run a no-op.
func (s *Submitter) publish(ctx context.Context, t *jobs.Task) error {
	data, err := json.Marshal(toMsg(s.RunID, t))
	if err != nil {
		return err
	}
	m := nats.NewMsg(taskSubject(s.RunID))
	m.Data = data
	if _, err := s.Conn.JS.PublishMsg(ctx, m, jetstream.WithMsgID(fmt.Sprintf("%s/%d", s.RunID, t.Index))); err != nil {
		return fmt.Errorf("publish task %s: %w", t.ID, err)
	}
	return nil
}
