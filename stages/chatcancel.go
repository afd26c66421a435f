package stages

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/chatops-executor/chatops-executor/audit"
	"github.com/chatops-executor/chatops-executor/control"
	"github.com/chatops-executor/chatops-executor/delivery"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/replies"
)

// watchCancel watches the job's start message while its user script runs, for a
// :octagonal_sign: from someone who may cancel: the requester, the approvers of the rule
// that decided the job, and slack.cancellers. It returns a channel that delivers who, once,
// and one that closes when the watch is over (after ctx ends). Without a start message, or
// a chat that can read reactions, there is nothing to watch and cancels from chat are off.
//
// The first read waits one control_interval: a cancel is for a job that is running, and
// short jobs then cost Slack no call at all.
func (s *Stages) watchCancel(ctx context.Context, j *job.Response, rec JobRecord) (<-chan string, <-chan struct{}) {
	by, done := make(chan string, 1), make(chan struct{})
	var rd delivery.Reactor
	var ts string
	c := s.openChat(j, io.Discard)
	if c != nil && s.Cfg.Slack.Ack {
		ts, _ = c.queue.Posted("start")
		rd, _ = delivery.AsReactor(c.poster)
	}
	if rd == nil || ts == "" {
		close(done)
		return by, done
	}
	w := control.Watch{Channel: c.channel, TS: ts, Interval: s.Cfg.Slack.ControlInterval.D(), Log: s.Stderr}
	if replies.ValidUser(c.user) {
		w.Allowed = append(w.Allowed, c.user)
	}
	if a := rec.Approval; a != nil {
		w.Allowed = append(w.Allowed, a.Approvers...)
		w.Groups = a.Groups
	}
	w.Allowed = append(w.Allowed, s.Cfg.Slack.Cancellers...)
	w.Allowed = slices.Compact(slices.Sorted(slices.Values(w.Allowed)))
	go func() {
		defer close(done)
		t := time.NewTimer(w.Interval)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if who := control.WatchCancel(ctx, rd, w); who != "" {
			by <- who // the stage audits it once it acted on it (Run)
		}
	}()
	return by, done
}

// auditCancel writes the audit record of a cancel the stage acted on; a cancel is never
// held up by the log.
func (s *Stages) auditCancel(j *job.Response, rec JobRecord, by string) {
	a := s.auditor()
	if a == nil {
		return
	}
	c := audit.Control{By: []string{by}, Ended: s.now().UTC()}
	if rec.Approval != nil {
		c.Approvers, c.Groups = rec.Approval.Approvers, rec.Approval.Groups
	}
	err := a.RecordControl(j, rec.Rule, audit.ChatCancelled, fmt.Sprintf("cancelled from chat by Slack user %s", by), c)
	if err != nil {
		fmt.Fprintf(s.Stderr, "%s: warning: the cancel from chat could not be written to the audit log: %v\n", DriverName, err)
	}
}
