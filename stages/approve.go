package stages

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/audit"
	"github.com/chatops-executor/chatops-executor/control"
	"github.com/chatops-executor/chatops-executor/delivery"
	"github.com/chatops-executor/chatops-executor/failure"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/replies"
)

// ControlAuditor records approvals and cancels from chat in the audit log. The policy
// engine and policy.Recorder implement it.
type ControlAuditor interface {
	RecordControl(j *job.Response, rule, decision, reason string, c audit.Control) error
}

func (s *Stages) auditor() ControlAuditor {
	if s.Control != nil {
		return s.Control
	}
	a, _ := s.Decider.(ControlAuditor)
	return a
}

// awaitApproval asks chat to approve a job whose rule says action = "approve", and waits
// (see package control). It returns nil once the job is approved, and otherwise a build
// failure, after recording the denial, editing the start message to the outcome and
// telling the requester why. Every outcome is one audit record.
//
// It fails closed: no Slack token, a chat without reactions, a requester or channel that
// is not a Slack id (the requester's own reaction must be told apart), a request that
// could not be posted, or reactions that cannot be read all mean the job does not run.
func (s *Stages) awaitApproval(ctx context.Context, j *job.Response, st State, rec *JobRecord, d Decision) error {
	a := d.Approval
	deny := func(c *chat, decision, why string, ac audit.Control, startText string) error {
		ac.Ended = s.now().UTC()
		if au := s.auditor(); au != nil {
			if err := au.RecordControl(j, d.Rule, decision, why, ac); err != nil {
				fmt.Fprintf(s.Stderr, "%s: warning: %v\n", DriverName, err)
			}
		}
		if err := s.recordDecision(st, rec, Decision{Rule: d.Rule, Reason: why, Approval: a}); err != nil {
			return failure.Systemf("%w", err)
		}
		rec.Prepared = true
		if err := st.WriteJob(*rec); err != nil {
			return failure.Systemf("%w", err)
		}
		fmt.Fprintf(s.Stdout, "The job does not run: %s\n", why)
		if c != nil {
			// After the runner's SIGTERM too: the channel must not show a request still open.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.Cfg.Slack.PrepareBudget.D())
			defer cancel()
			var msgs []delivery.Message
			if startText != "" {
				msgs = append(msgs, delivery.Message{Kind: delivery.KindUpdate, Target: "start", Channel: c.channel, Text: startText})
			}
			if c.validUser(c.user) && !c.queue.Has("denied") {
				msgs = append(msgs, delivery.Message{Kind: delivery.KindEphemeral, Name: "denied", Channel: c.channel, User: c.user,
					Text: c.render.ApprovalDeniedText(j.ID, s.trustedJobURL(j), why)})
			}
			c.send(uctx, s.Stderr, c.cfg.PrepareBudget.D(), msgs...)
		}
		return failure.Buildf("job denied: %s", why)
	}
	ac := audit.Control{Approvers: a.Approvers, Groups: a.Groups, Needed: a.Needed}

	c := s.openChat(j, s.Stderr)
	if c == nil {
		return deny(nil, audit.ApprovalFailed, fmt.Sprintf("rule %q needs an approval in chat, and chat replies are off on this runner (see the runner log), so nobody can approve it", d.Rule), ac, "")
	}
	rd, ok := delivery.AsReactor(c.poster)
	if !ok {
		return deny(c, audit.ApprovalFailed, fmt.Sprintf("rule %q needs an approval by reactions on the start message, which this chat platform does not offer; the job does not run unapproved", d.Rule), ac, "")
	}
	if !replies.ValidUser(c.user) {
		return deny(nil, audit.ApprovalFailed, fmt.Sprintf("rule %q needs an approval, and CHAT_USER_ID %q is not a Slack user id, so the requester's own approval could not be told apart", d.Rule, oneLineForLog(c.user)), ac, "")
	}
	if !s.Cfg.Slack.Ack {
		return deny(c, audit.ApprovalFailed, fmt.Sprintf("rule %q needs an approval on the job's start message, and slack.ack is off, so there is none", d.Rule), ac, "")
	}

	if rec.ApprovalAsked.IsZero() {
		rec.ApprovalAsked = s.now()
		if err := st.WriteJob(*rec); err != nil {
			return failure.Systemf("%w", err)
		}
	}
	ac.Asked = rec.ApprovalAsked.UTC()
	deadline := rec.ApprovalAsked.Add(a.Timeout)
	ra := replies.Approval{Approvers: a.Approvers, Groups: a.Groups, Needed: a.Needed, Expires: deadline}
	if !c.queue.Has("start") {
		c.send(ctx, s.Stderr, s.Cfg.Slack.PrepareBudget.D(), delivery.Message{
			Kind: delivery.KindPost, Name: "start", Channel: c.channel, Text: replies.ApprovalText(c.job, ra),
		})
	} else {
		c.deliver(ctx, s.Stderr, s.Cfg.Slack.PrepareBudget.D()) // a retried prepare
	}
	ts, posted := c.queue.Posted("start")
	if !posted {
		return deny(c, audit.ApprovalFailed, fmt.Sprintf("rule %q needs an approval, and the request could not be posted to the channel (see the runner log), so nobody can approve it", d.Rule), ac, "")
	}
	fmt.Fprintf(s.Stdout, "Waiting for %s in chat until %s (rule %s)\n", a.Plain(), deadline.UTC().Format(time.RFC3339), d.Rule)

	res := control.Wait(ctx, rd, control.Request{
		Channel: c.channel, TS: ts, Requester: c.user,
		Approvers: a.Approvers, Groups: a.Groups, Needed: a.Needed,
		Deadline: deadline, Interval: s.Cfg.Slack.ControlInterval.D(), Log: s.Stderr, Now: s.now,
	})
	ac.By = res.By
	switch res.Outcome {
	case control.Approved:
		ac.Ended = res.At.UTC()
		why := fmt.Sprintf("approved by Slack user%s %s", plural(len(res.By)), strings.Join(res.By, ", "))
		if au := s.auditor(); au != nil {
			if err := au.RecordControl(j, d.Rule, audit.Approved, why, ac); err != nil {
				// Like an allow: a job must not run unrecorded.
				return failure.Systemf("the job was approved, but the approval could not be recorded, so it does not run: %w", err)
			}
		}
		rec.Approved, rec.ApprovedBy = true, res.By
		if err := st.WriteJob(*rec); err != nil {
			return failure.Systemf("%w", err)
		}
		fmt.Fprintf(s.Stdout, "The job was %s\n", why)
		c.send(ctx, s.Stderr, s.Cfg.Slack.PrepareBudget.D(), delivery.Message{
			Kind: delivery.KindUpdate, Target: "start", Channel: c.channel, Text: replies.ApprovedText(c.job, res.By),
		})
		return nil
	case control.Refused:
		return deny(c, audit.Refused, fmt.Sprintf("refused by Slack user %s (rule %q)", res.By[0], d.Rule), ac, replies.RefusedText(c.job, res.By[0]))
	case control.Expired:
		return deny(c, audit.Expired, fmt.Sprintf("the approval request expired: %d of %d approvals in %s (rule %q)", len(res.By), a.Needed, a.Timeout, d.Rule), ac, replies.ExpiredText(c.job, ra, res.By))
	case control.Stopped:
		return deny(c, audit.ApprovalStopped, fmt.Sprintf("the runner stopped the job while it waited for approval (rule %q)", d.Rule), ac, replies.ApprovalStoppedText(c.job))
	}
	return deny(c, audit.ApprovalFailed, fmt.Sprintf("the approvals could not be read from Slack, so the job does not run unapproved: %v (rule %q)", res.Err, d.Rule), ac, replies.ApprovalFailedText(c.job))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
