package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/config"
)

// Approval is what a rule with action = "approve" asks before its job may run: Needed
// distinct people among Approvers and the members of Groups must approve within Timeout.
// The policy only says who; the stages ask chat (package control) and record the outcome.
type Approval struct {
	Approvers []string      `json:"approvers,omitempty"` // Slack user ids
	Groups    []string      `json:"groups,omitempty"`    // Slack user group ids
	Needed    int           `json:"needed"`
	Timeout   time.Duration `json:"timeout"`
}

// ApproveDecision is the audit record's decision for a job that may run once approved; the
// outcome of the wait is a record of its own (see package control's outcomes).
const ApproveDecision = "approve"

// Who says in words who may approve: "2 of <@U1>, <@U2> or a member of <!subteam^S1>".
func (a *Approval) Who() string {
	var names []string
	for _, u := range a.Approvers {
		names = append(names, "<@"+u+">")
	}
	for _, g := range a.Groups {
		names = append(names, "<!subteam^"+g+">")
	}
	who := strings.Join(names, ", ")
	if len(names) > 1 {
		who = strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	}
	return fmt.Sprintf("%d of %s", a.Needed, who)
}

// Plain is Who for a terminal: ids without Slack's mention syntax.
func (a *Approval) Plain() string {
	parts := append([]string{}, a.Approvers...)
	for _, g := range a.Groups {
		parts = append(parts, "group "+g)
	}
	return fmt.Sprintf("%d distinct approval(s) from %s within %s", a.Needed, strings.Join(parts, ", "), a.Timeout)
}

func (r *rule) approval() *Approval {
	if !r.approve {
		return nil
	}
	return &Approval{
		Approvers: r.cfg.Approvers, Groups: r.cfg.ApproverGroups,
		Needed: r.cfg.NeededApprovals(), Timeout: r.cfg.Timeout(),
	}
}

// approvalWarnings warns when an approve rule's wait is not well below the runner's
// prepare timeout: the runner would kill the prepare, wait included, and the requester
// would see a system failure instead of "expired". "Well below" leaves a fifth of the
// prepare timeout, and at least two control intervals and a minute, for the rest of
// prepare.
func approvalWarnings(cfg *config.Config, r *rule, warn func(key, format string, args ...any)) {
	if !r.approve {
		return
	}
	limit := cfg.Executor.PrepareExecTimeout.D()
	margin := max(limit/5, 2*cfg.Slack.ControlInterval.D()+time.Minute)
	if t := r.cfg.Timeout(); t > limit-margin {
		warn(r.key+".approval_timeout", "%s is not well below the runner's prepare_exec_timeout (%s, executor.prepare_exec_timeout): the runner would kill the wait before it expires; keep it under %s, or raise prepare_exec_timeout in the runner's [runners.custom] and here", t, limit, limit-margin)
	}
}
