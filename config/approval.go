package config

import (
	"fmt"
	"time"

	"github.com/chatops-executor/chatops-executor/job"
)

// Approval is the part of a [[policy.rule]] with action = "approve": the job may run once
// enough of the named Slack users have reacted to its start message. Its keys sit in the
// rule's own table (Rule embeds it).
type Approval struct {
	// Approvers are Slack user ids who may approve or refuse.
	Approvers []string `toml:"approvers"`
	// ApproverGroups are Slack user group ids (S…) whose members may approve or refuse,
	// resolved with usergroups.users.list when the job waits.
	ApproverGroups []string `toml:"approver_groups"`
	// Approvals is how many distinct approvers must approve; 0 means 1.
	Approvals int `toml:"approvals"`
	// ApprovalTimeout is how long the job waits for them; 0 means DefaultApprovalTimeout.
	ApprovalTimeout Duration `toml:"approval_timeout"`
}

// DefaultApprovalTimeout is a rule's approval_timeout when it sets none: well below the
// runner's default prepare_exec_timeout of one hour.
const DefaultApprovalTimeout = 15 * time.Minute

// NeededApprovals is Approvals with its default applied.
func (a Approval) NeededApprovals() int {
	if a.Approvals <= 0 {
		return 1
	}
	return a.Approvals
}

// Timeout is ApprovalTimeout with its default applied.
func (a Approval) Timeout() time.Duration {
	if a.ApprovalTimeout <= 0 {
		return DefaultApprovalTimeout
	}
	return a.ApprovalTimeout.D()
}

// ChatControl is the part of [slack] that governs approvals and cancels from chat, both read
// from the reactions on a job's start message (Slack embeds it).
type ChatControl struct {
	// Cancellers are Slack user ids who may cancel any job with :octagonal_sign:, besides
	// its requester and the approvers of the rule that decided it.
	Cancellers []string `toml:"cancellers"`
	// ControlInterval is how often a waiting or running job reads its start message's
	// reactions (reactions.get, Slack's Tier 3, shared by every job of the workspace).
	ControlInterval Duration `toml:"control_interval"`
}

// RunnerTimeouts mirrors the runner's own timeouts for the executor, which cannot read the
// runner's config.toml: `check` compares approval_timeout with PrepareExecTimeout
// (Executor embeds it).
type RunnerTimeouts struct {
	// PrepareExecTimeout is [runners.custom] prepare_exec_timeout of the runner that runs
	// the executor; the runner kills a prepare that takes longer, approval wait included.
	PrepareExecTimeout Duration `toml:"prepare_exec_timeout"`
}

// DefaultPrepareExecTimeout is the runner's default prepare_exec_timeout.
const DefaultPrepareExecTimeout = time.Hour

// DefaultControlInterval is slack.control_interval when the file sets none.
const DefaultControlInterval = 15 * time.Second

func init() {
	examples["policy.rule.approvers"] = `a list of Slack user ids, e.g. approvers = ["U0123ABCD"]`
	examples["policy.rule.approver_groups"] = `a list of Slack user group ids, e.g. approver_groups = ["S0123ABCD"]`
	examples["policy.rule.approvals"] = `a number of distinct approvers, e.g. approvals = 2`
	examples["slack.cancellers"] = `a list of Slack user ids, e.g. cancellers = ["U0123ABCD"]`
}

// validateControl checks the approval keys of every rule and [slack]'s control keys.
func (c *Config) validateControl() []Problem {
	var ps []Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Executor.PrepareExecTimeout.D() <= 0 {
		add("executor.prepare_exec_timeout", "must be positive (the runner's [runners.custom] prepare_exec_timeout; 1h by default)")
	}
	if d := c.Slack.ControlInterval.D(); d <= 0 || d > 10*time.Minute {
		add("slack.control_interval", "must be positive and at most 10m, got %s", c.Slack.ControlInterval)
	}
	checkIDs := func(key string, ids []string, prefixes string) {
		for _, id := range ids {
			if !job.SlackID(id, prefixes) {
				add(key, "%q is not a Slack id (like %c0123ABCD)", id, prefixes[0])
			}
		}
	}
	checkIDs("slack.cancellers", c.Slack.Cancellers, "UW")
	for i, r := range c.Policy.Rules {
		key := fmt.Sprintf("policy.rule[%d]", i+1)
		if r.Name != "" {
			key = fmt.Sprintf("policy.rule[%d] (%s)", i+1, r.Name)
		}
		checkIDs(key+".approvers", r.Approvers, "UW")
		checkIDs(key+".approver_groups", r.ApproverGroups, "S")
		if r.Approvals < 0 {
			add(key+".approvals", "must not be negative, got %d", r.Approvals)
		}
		if r.ApprovalTimeout.D() < 0 {
			add(key+".approval_timeout", "must not be negative")
		}
		approve := r.Action == "approve"
		hasKeys := len(r.Approvers) > 0 || len(r.ApproverGroups) > 0 || r.Approvals != 0 || r.ApprovalTimeout != 0
		switch {
		case approve && len(r.Approvers) == 0 && len(r.ApproverGroups) == 0:
			add(key+".approvers", `action = "approve" needs approvers or approver_groups: nobody could approve`)
		case !approve && hasKeys && r.Action != "":
			add(key+".action", `approvers, approver_groups, approvals and approval_timeout apply only to action = "approve", got %q`, r.Action)
		case approve && len(r.ApproverGroups) == 0 && r.NeededApprovals() > len(r.Approvers):
			add(key+".approvals", "needs %d distinct approvers but only %d are named: the job could never be approved", r.NeededApprovals(), len(r.Approvers))
		}
	}
	return ps
}
