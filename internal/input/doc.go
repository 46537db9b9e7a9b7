// Package input makes tasks from what gorun is given: task files in YAML or JSON
// (checked whole, every error with its line and column, nesting limited to MaxDepth, a
// byte order mark dropped), JSON Lines files and streams, streams of command lines or
// NUL-separated items, command templates that turn an item into an argument, and the
// text of settings (durations, rates). Every problem is a *jobs.InputError.
package input
