// Package failure classifies errors the way gitlab-runner's custom executor protocol does.
//
// The runner understands exactly three outcomes of an executor call: success, a build
// failure ($BUILD_FAILURE_EXIT_CODE: the job itself failed, and the script's own code may be
// in $BUILD_EXIT_CODE_FILE) and a system failure ($SYSTEM_FAILURE_EXIT_CODE: the executor or
// host failed; in config and prepare the runner retries). Code deep in the stages knows which
// of the two a failure is; only main knows the numbers. So errors are tagged here, once, where
// they arise, and main maps the tag to an exit code in one place.
package failure

import (
	"errors"
	"fmt"
)

// Kind says which of the runner's failure classes an error belongs to.
type Kind int

const (
	// System is a failure of the executor or the host: bad config, unreadable job file,
	// a shell that cannot start. It is the default for an untagged error, because an error
	// nobody classified is by definition not the job's fault.
	System Kind = iota
	// Build is a failure of the job: its script exited non-zero, it was cancelled, or the
	// policy denied it.
	Build
)

func (k Kind) String() string {
	if k == Build {
		return "build failure"
	}
	return "system failure"
}

// Error is an error tagged with its failure class, and for script failures the script's
// own exit code.
type Error struct {
	Kind Kind
	// ExitCode is the job script's exit code, written to $BUILD_EXIT_CODE_FILE so that
	// `allow_failure: exit_codes` works. Zero when the failure has no script code.
	ExitCode int
	// Hint, when set, is printed on its own line after the error to tell the user what to do.
	Hint string
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Systemf returns a system failure with a formatted message; %w wraps as usual.
func Systemf(format string, args ...any) error {
	return &Error{Kind: System, Err: fmt.Errorf(format, args...)}
}

// Buildf returns a build failure with a formatted message; %w wraps as usual.
func Buildf(format string, args ...any) error {
	return &Error{Kind: Build, Err: fmt.Errorf(format, args...)}
}

// Script returns the build failure of a job script that exited with code.
func Script(code int, err error) error {
	return &Error{Kind: Build, ExitCode: code, Err: err}
}

// WithHint attaches a hint to err, keeping its class (system when err is untagged).
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) {
		c := *fe
		c.Hint = hint
		if c.Err != err {
			c.Err = err
		}
		return &c
	}
	return &Error{Kind: System, Hint: hint, Err: err}
}

// Classify returns err's class, script exit code and hint. Untagged errors are system
// failures.
func Classify(err error) (kind Kind, exitCode int, hint string) {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind, fe.ExitCode, fe.Hint
	}
	return System, 0, ""
}
