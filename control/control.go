// Package control reads approvals and cancels from chat: the reactions people put on a
// job's start message.
//
// Each job's own executor process watches its own message with reactions.get, so nothing
// needs an inbound endpoint, a daemon or state shared between runner hosts (buttons would
// need Slack's interactivity endpoint or a Socket Mode connection, and Slack spreads a
// Socket Mode app's events over its connections at random). The price is latency: a
// reaction is seen at the next poll, every slack.control_interval.
//
// The package decides from what it reads and nothing else: who may approve or cancel is
// given to it (the policy's rule, the config's cancellers), and the stages act on its
// answer and write the audit record. It imports no other package of the executor, so its
// rules can be tested alone against a fake Reader.
package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// The reactions that mean something on a start message.
const (
	ApproveReaction = "white_check_mark"
	RefuseReaction  = "x"
	CancelReaction  = "octagonal_sign"
)

// Reader is what the package needs of chat. delivery.Reactor implements it (through the
// host's rate budget, which may skip a poll and say when to look again).
type Reader interface {
	Reactions(ctx context.Context, channel, ts string) (map[string][]string, error)
	GroupMembers(ctx context.Context, group string) ([]string, error)
}

// backoff is how a Reader's error says how long to wait (delivery.Error: a 429's
// Retry-After, or the rate budget's next slot).
type backoff interface{ Backoff() time.Duration }

// waitFor is how long to wait after err before the next call: the interval, or longer when
// the error asks for it. limited says the error was a rate limit, which is not a failure.
func waitFor(err error, interval time.Duration) (wait time.Duration, limited bool) {
	var b backoff
	if errors.As(err, &b) && b.Backoff() > 0 {
		return max(interval, b.Backoff()), true
	}
	return interval, false
}

// MaxFailures is how many reads in a row may fail (other than by a rate limit) before an
// approval gives up: chat being unreachable must not leave the job waiting for an approval
// nobody can give, and never lets it run unapproved.
const MaxFailures = 3

// Outcome is how an approval wait ended.
type Outcome string

// The outcomes of Wait.
const (
	Approved Outcome = "approved"
	Refused  Outcome = "refused"
	Expired  Outcome = "expired"
	Failed   Outcome = "failed"  // chat could not be read: fail closed
	Stopped  Outcome = "stopped" // the runner's SIGTERM (ctx ended)
)

// Request is one job's approval: the start message to watch, who asked, who may approve,
// how many must, and until when.
type Request struct {
	Channel, TS string
	Requester   string // the requester's Slack user id: their own reactions never count
	Approvers   []string
	Groups      []string // Slack user group ids, resolved with GroupMembers
	Needed      int
	Deadline    time.Time
	Interval    time.Duration
	// Log, when set, gets a line for each read that failed.
	Log io.Writer
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Result is how a wait ended and who made it end.
type Result struct {
	Outcome Outcome
	// By are the approvers who approved, in the order they were first seen (also for an
	// expired wait: those who did), or the one who refused.
	By  []string
	At  time.Time
	Err error // Failed: why chat could not be read
}

func (r *Request) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Request) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", args...)
	}
}

// Wait polls the message's reactions until the first of: Needed distinct approvers
// approved, an approver refused, the deadline passed, ctx ended, or MaxFailures reads in a
// row failed. Reactions by the requester or by anyone who may not approve are ignored. A
// refusal seen in the same read as the last approval wins: of the two, it is the safe one.
func Wait(ctx context.Context, rd Reader, req Request) Result {
	interval := max(req.Interval, 10*time.Millisecond)
	var members map[string][]string // group -> members, once resolved
	var approved []string
	failures := 0
	fail := func(err error) *Result {
		failures++
		req.logf("approval: %v", err)
		if failures >= MaxFailures {
			return &Result{Outcome: Failed, By: approved, At: req.now(), Err: err}
		}
		return nil
	}
	for {
		wait := interval
		allowed, err := approvers(ctx, rd, req, &members)
		if err == nil {
			var rs map[string][]string
			rs, err = rd.Reactions(ctx, req.Channel, req.TS)
			if err == nil {
				failures = 0
				for _, u := range rs[ApproveReaction] {
					if allowed[u] && !slices.Contains(approved, u) {
						approved = append(approved, u)
					}
				}
				for _, u := range rs[RefuseReaction] {
					if allowed[u] {
						return Result{Outcome: Refused, By: []string{u}, At: req.now()}
					}
				}
				if len(approved) >= max(req.Needed, 1) {
					return Result{Outcome: Approved, By: approved, At: req.now()}
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			var limited bool
			if wait, limited = waitFor(err, interval); limited {
				req.logf("approval: %v; reading again in %s", err, wait.Round(time.Millisecond))
			} else if r := fail(err); r != nil {
				return *r
			}
		}
		now := req.now()
		if !now.Before(req.Deadline) {
			return Result{Outcome: Expired, By: approved, At: now}
		}
		if ctx.Err() != nil {
			return Result{Outcome: Stopped, By: approved, At: now}
		}
		t := time.NewTimer(min(wait, req.Deadline.Sub(now)))
		select {
		case <-ctx.Done():
			t.Stop()
			return Result{Outcome: Stopped, By: approved, At: req.now()}
		case <-t.C:
		}
	}
}

// approvers is who may approve req: its approvers and the members of its groups (resolved
// once, on the first read that gets them all), never its requester.
func approvers(ctx context.Context, rd Reader, req Request, members *map[string][]string) (map[string]bool, error) {
	if *members == nil && len(req.Groups) > 0 {
		m := map[string][]string{}
		for _, g := range req.Groups {
			users, err := rd.GroupMembers(ctx, g)
			if err != nil {
				return nil, fmt.Errorf("members of user group %s: %w", g, err)
			}
			m[g] = users
		}
		*members = m
	}
	allowed := map[string]bool{}
	for _, u := range req.Approvers {
		allowed[u] = true
	}
	for _, users := range *members {
		for _, u := range users {
			allowed[u] = true
		}
	}
	delete(allowed, req.Requester)
	delete(allowed, "")
	return allowed, nil
}

// Watch is a running job's start message, watched for a cancel.
type Watch struct {
	Channel, TS string
	// Allowed may cancel: the requester, the approvers of the deciding rule, the config's
	// cancellers. Groups adds the members of these Slack user groups.
	Allowed  []string
	Groups   []string
	Interval time.Duration
	Log      io.Writer
}

// WatchCancel polls the message's reactions until someone allowed reacts with
// CancelReaction, and returns who; or until ctx ends, and returns "". A read that fails
// only delays the next one (by Retry-After when Slack asks): the job goes on either way.
func WatchCancel(ctx context.Context, rd Reader, w Watch) string {
	interval := max(w.Interval, 10*time.Millisecond)
	req := Request{Approvers: w.Allowed, Groups: w.Groups, Log: w.Log}
	var members map[string][]string
	for {
		wait := interval
		// Named cancellers can cancel even while their groups cannot be resolved.
		allowed, err := approvers(ctx, rd, req, &members)
		if err != nil {
			allowed, _ = approvers(ctx, rd, Request{Approvers: w.Allowed}, &members)
		}
		rs, rerr := rd.Reactions(ctx, w.Channel, w.TS)
		if rerr == nil {
			for _, u := range rs[CancelReaction] {
				if allowed[u] {
					return u
				}
			}
		}
		err = errors.Join(err, rerr)
		if err != nil && ctx.Err() == nil {
			wait, _ = waitFor(err, interval)
			req.logf("cancel from chat: %v; reading again in %s", err, wait.Round(time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ""
		case <-t.C:
		}
	}
}
