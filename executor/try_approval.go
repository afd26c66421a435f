package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery/slackrecorder"
	"github.com/chatops-executor/chatops-executor/policy"
)

// listFlag collects a repeated flag's values.
type listFlag struct{ values *[]string }

func (l listFlag) String() string { return "" }

func (l listFlag) Set(s string) error {
	if s == "" || strings.ContainsAny(s, " \t,") {
		return fmt.Errorf("want one Slack user id, got %q", s)
	}
	*l.values = append(*l.values, s)
	return nil
}

// tryPreviewTimeout is how long a preview's approval request waits when nobody approves
// (no --approve-as): long enough to show it, not the rule's real timeout. With
// --approve-as the simulated reactions are there within moments, and the wait is
// tryApproveAsTimeout: enough to see them, never the rule's 15 minutes for approvals that
// do not suffice.
const (
	tryPreviewTimeout   = 2 * time.Second
	tryApproveAsTimeout = 10 * time.Second
)

// tryApprovalRule makes the run's policy ask for the approval the admin's rule asks for:
// the policy was settled already (tryPolicy), so the rule has no conditions. In the
// preview (fake Slack), the wait is short and polled fast; with --post it is the rule's
// own, and real people approve in the channel.
func tryApprovalRule(cfg *config.Config, rule string, a *policy.Approval, preview bool, approveAs []string) {
	r := config.Rule{Name: rule, Action: "approve", Approval: config.Approval{
		Approvers: a.Approvers, ApproverGroups: a.Groups, Approvals: a.Needed, ApprovalTimeout: config.Duration(a.Timeout),
	}}
	if preview {
		cfg.Slack.ControlInterval = config.Duration(200 * time.Millisecond)
		r.ApprovalTimeout = config.Duration(tryPreviewTimeout)
		if len(approveAs) > 0 {
			r.ApprovalTimeout = config.Duration(tryApproveAsTimeout)
		}
	}
	cfg.Policy.Rules = []config.Rule{r}
}

// simulateApprovals reacts :white_check_mark: as each of users on the approval request,
// once the fake Slack shows it. Every user counts as a member of the rule's approver
// groups: the fake cannot know who is, and the preview is about what happens when they
// approve.
func simulateApprovals(fake *slackrecorder.Server, a *policy.Approval, users []string, stop <-chan struct{}) {
	for _, g := range a.Groups {
		fake.SetGroup(g, users...)
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		for _, m := range fake.Messages() {
			if !m.Ephemeral && len(m.History) > 0 && strings.Contains(m.History[0], "asks to run") {
				for _, u := range users {
					fake.React(m.Channel, m.TS, "white_check_mark", u)
				}
				return
			}
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
