// Package record keeps what a run leaves behind: the journal, written as each task
// ends, and the report, the trace and the metrics, written when the run ends.
//
// Everything it writes is created with mode 0600: results hold the last 4 KiB of
// each task's output, and task output may hold secrets.
package record

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gorun/gorun/internal/atomicfile"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/journal"
	"github.com/gorun/gorun/internal/pipeline"
	"github.com/gorun/gorun/internal/report"
)

// FileMode is the mode of the journal, reports and metrics that gorun creates.
const FileMode = 0o600

// Options name what a run leaves behind; an empty path: none.
type Options struct {
	Input     string // the input's name, for the journal's header: a file, or "stdin"
	Journal   string // append each finished task's result here
	Resume    bool   // skip the tasks that already succeeded in Journal
	Report    string // write a report here at the end
	ReportFmt report.Format
	Metrics   string // write Prometheus metrics here at the end
	Trace     string // write the run's timeline here at the end (Chrome trace JSON)

	// createJournal, when not nil, stands in for journal.Create (for tests).
	createJournal func(path string, h journal.Header) (*journal.Writer, error)
}

// Recorder keeps a run's journal, and the results its report needs. Add and the
// pipeline hooks that Open sets are called on the pipeline's fan-in goroutine; Finish
// and Close after the pipeline has returned.
//
// A journal that fails to take a result (a full disk, an I/O error) takes nothing
// more: the run can no longer be resumed safely, so the Abort hook stops new starts,
// as a halt soon does, and Finish, having written the report and the metrics all
// the same, returns a *JournalError counting the results the journal missed.
type Recorder struct {
	opts    Options
	journal *journal.Writer // nil once closed, or without a journal
	spool   *report.Spool
	jerr    error           // the journal's first error
	done    map[string]bool // the keys of the tasks that already succeeded in the journal (--resume)
	missed  int             // the finished tasks whose results the journal did not take
}

// JournalError is a journal that stopped taking results part way through a run.
type JournalError struct {
	Err    error // the write or fsync error, naming the journal
	Missed int   // the finished tasks whose results are not in the journal
}

func (e *JournalError) Error() string {
	if e.Missed == 0 {
		return fmt.Sprintf("%v: its last results may not be on disk", e.Err)
	}
	if e.Missed == 1 {
		return fmt.Sprintf("%v: 1 result not journaled (a --resume runs that task again)", e.Err)
	}
	return fmt.Sprintf("%v: %d results not journaled (a --resume runs those tasks again)", e.Err, e.Missed)
}

func (e *JournalError) Unwrap() error { return e.Err }

// Open opens the journal, after reading what it says succeeded for a resumed run,
// and the report's spool, and sets the pipeline's hooks: task identities (Key),
// tasks already done (Done) and Abort. A journal path that journal.Create refuses is
// a *journal.RefusedError, and nothing was changed; a journal that cannot be read
// for a resume is a *jobs.InputError.
func Open(opts Options, run report.Run, popts *pipeline.Options) (*Recorder, error) {
	rec := &Recorder{opts: opts}
	if opts.Journal != "" {
		if err := journal.Check(opts.Journal); err != nil { // before reading it for a resume
			return nil, err
		}
		var done map[string]bool
		if opts.Resume {
			var err error
			if done, err = journal.Succeeded(opts.Journal); err != nil {
				return nil, &jobs.InputError{File: opts.Journal, Msg: err.Error()}
			}
		}
		keyer := &journal.Keyer{}
		popts.Key = keyer.Key
		popts.Done = func(key string) (string, bool) {
			return "already succeeded in " + opts.Journal, done[key]
		}
		popts.Abort = func() error { return rec.jerr }
		create := journal.Create
		if opts.createJournal != nil {
			create = opts.createJournal
		}
		rec.done = done
		w, err := create(opts.Journal, journal.Header{RunID: run.ID, StartedAt: run.StartedAt, Input: opts.Input, Hostname: run.Hostname})
		if err != nil {
			return nil, err
		}
		rec.journal = w
	}
	if opts.Report != "" || opts.Trace != "" {
		sp, err := report.NewSpool()
		if err != nil {
			rec.Close()
			return nil, err
		}
		rec.spool = sp
	}
	return rec, nil
}

// Add records a task's result: in the journal, when the task ran or was skipped
// (a need that failed, an interruption), so that a report rendered from the journal
// shows the tasks the run's own report shows; and for the report. A task skipped
// because it already succeeded in the journal (--resume) is not journaled again, nor
// is an invalid line of a stream, which has no identity to resume by.
func (rec *Recorder) Add(r jobs.Result) {
	journaled := r.Attempts > 0 || (r.Status == jobs.Skipped && !rec.done[r.Key])
	if rec.journal != nil && journaled {
		// missed counts the tasks a resume would run again for want of their result:
		// those that ran. A skipped task runs again anyway.
		ran := r.Attempts > 0
		if rec.jerr != nil {
			rec.missed += b2i(ran)
		} else if err := rec.journal.Write(r); err != nil {
			rec.jerr = err
			rec.missed += b2i(ran)
		}
	}
	if rec.spool != nil {
		rec.spool.Add(r)
	}
}

// Finish closes the journal (an fsync), then writes the report, the trace and the
// metrics, each atomically, even when the journal failed. Its error is the journal's,
// a *JournalError, joined with any of the report, the trace or the metrics.
func (rec *Recorder) Finish(run report.Run, sum *report.Summary) error {
	var errs []error
	if rec.journal != nil {
		err := rec.journal.Close()
		rec.journal = nil
		if rec.jerr == nil {
			rec.jerr = err
		}
		if rec.jerr != nil {
			errs = append(errs, &JournalError{Err: rec.jerr, Missed: rec.missed})
		}
	}
	if rec.opts.Report != "" {
		err := atomicfile.Write(rec.opts.Report, FileMode, func(w io.Writer) error {
			return report.Write(w, rec.opts.ReportFmt, run, sum, rec.spool.Results())
		})
		if err == nil {
			err = rec.spool.Err()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("report: %w", err))
		}
	}
	if rec.opts.Trace != "" {
		err := atomicfile.Write(rec.opts.Trace, FileMode, func(w io.Writer) error {
			return report.WriteTrace(w, run, sum, rec.spool.Results())
		})
		if err == nil {
			err = rec.spool.Err()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("trace: %w", err))
		}
	}
	if rec.opts.Metrics != "" {
		last := report.LastSuccess(rec.opts.Metrics)
		err := atomicfile.Write(rec.opts.Metrics, FileMode, func(w io.Writer) error {
			return report.WriteMetrics(w, sum, time.Now(), last)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("metrics: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Close releases what Finish did not: the journal (closed, and so fsynced, if Finish
// was not called) and the spool.
func (rec *Recorder) Close() {
	if rec.journal != nil {
		_ = rec.journal.Close()
		rec.journal = nil
	}
	if rec.spool != nil {
		_ = rec.spool.Close()
		rec.spool = nil
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
