package delivery

import (
	"context"
	"math/rand/v2"
	"time"
)

// Clock is time as the retry loop sees it. Tests pass a fake whose Sleep only records and
// advances Now, so waiting out a 30-second Retry-After is asserted, not endured.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx is done, whichever is first, and returns ctx.Err() in the
	// second case.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Options tunes delivery. The zero value of each field means its default.
type Options struct {
	// Budget is the total time one delivery (Job.Deliver, Job.Send, one job in Flush) may
	// spend retrying, when the caller gives none. Default 30s: cleanup must end, and the
	// outbox keeps what is left.
	Budget time.Duration
	// ProgressBudget bounds a progress edit. Default 5s: a missed edit is replaced by the
	// next one, so it is never worth holding up the job.
	ProgressBudget time.Duration
	// AttemptTimeout bounds one API call. Default 15s.
	AttemptTimeout time.Duration
	// UploadTimeout bounds one file upload (three calls). Default 2m.
	UploadTimeout time.Duration
	// BaseDelay and MaxDelay shape the exponential backoff between attempts (defaults
	// 500ms and 8s); each wait is drawn from [d/2, d) so that many runners recovering from
	// the same outage do not retry in step.
	BaseDelay, MaxDelay time.Duration
	// MaxAge is how long a message may wait in the outbox before flush stops retrying it and
	// reports it as expired (it is kept, never deleted). Default 72h: a reply older than a
	// long weekend is news to nobody, but its loss must still be visible.
	MaxAge time.Duration
	// Clock defaults to the real one.
	Clock Clock
	// Jitter returns a random duration in [0, d); defaults to math/rand/v2.
	Jitter func(d time.Duration) time.Duration
	// OnOutcome, when set, hears what became of each message (metrics): its kind, or
	// "progress" for a progress edit, and "sent", "failed", "unknown", "expired",
	// "postponed" or, for progress, "skipped".
	OnOutcome func(kind, outcome string)
	// On429, when set, hears each rate-limited answer from Slack, by method.
	On429 func(method string)
}

func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Budget, 30*time.Second)
	def(&o.ProgressBudget, 5*time.Second)
	def(&o.AttemptTimeout, 15*time.Second)
	def(&o.UploadTimeout, 2*time.Minute)
	def(&o.BaseDelay, 500*time.Millisecond)
	def(&o.MaxDelay, 8*time.Second)
	def(&o.MaxAge, 72*time.Hour)
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Jitter == nil {
		o.Jitter = func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d)
		}
	}
	return o
}

// outcome is what one retried call came to.
type outcome int

const (
	sent      outcome = iota // Slack confirmed
	failed                   // permanent error: do not try again
	unknown                  // may have arrived: do not try again (not idempotent)
	postponed                // not delivered, out of time: try again later
	again                    // not delivered, try again at once in another way
)

// retrier repeats one call inside a deadline.
type retrier struct {
	opt      Options
	deadline time.Time
}

// do calls fn until it succeeds, fails for good, or the deadline would pass before the next
// attempt. idempotent says whether an Uncertain failure may be repeated. before runs ahead
// of every attempt (the outbox records "in flight" there) and after every failure that
// leaves the call retryable (the outbox records "pending" there), so that a crash at any
// point leaves a record that tells the truth.
func (r *retrier) do(ctx context.Context, idempotent bool, timeout time.Duration,
	before func() error, after func(*Error) error, fn func(context.Context) error) (outcome, *Error, error) {
	delay := r.opt.BaseDelay
	for attempt := 0; ; attempt++ {
		if err := before(); err != nil {
			return postponed, nil, err
		}
		actx, cancel := context.WithTimeout(ctx, min(timeout, max(r.deadline.Sub(r.opt.Clock.Now()), time.Second)))
		err := fn(actx)
		cancel()
		if err == nil {
			return sent, nil, nil
		}
		e := Classify(err)
		r.opt.rateLimited(e)
		switch {
		case e.Class == Permanent:
			return failed, e, nil
		case e.Class == Uncertain && !idempotent:
			return unknown, e, nil
		}
		if err := after(e); err != nil {
			return postponed, e, err
		}
		wait := delay/2 + r.opt.Jitter(delay/2)
		if e.RetryAfter > 0 {
			// Slack's number, not ours: waiting less only earns another 429.
			wait = e.RetryAfter
		}
		delay = min(delay*2, r.opt.MaxDelay)
		if ctx.Err() != nil || r.opt.Clock.Now().Add(wait).After(r.deadline) {
			return postponed, e, nil
		}
		if r.opt.Clock.Sleep(ctx, wait) != nil {
			return postponed, e, nil
		}
	}
}
