package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseApprovalKeys(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(minimal+`prepare_exec_timeout = "2h"
[slack]
cancellers = ["U0OPS"]
control_interval = "5s"
[[policy.rule]]
name = "prod"
action = "approve"
approvers = ["U0BOB", "W0CAROL"]
approver_groups = ["S0SRE"]
approvals = 2
approval_timeout = "20m"
`))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Policy.Rules[0]
	if r.NeededApprovals() != 2 || r.Timeout() != 20*time.Minute || len(r.Approvers) != 2 || r.ApproverGroups[0] != "S0SRE" {
		t.Errorf("rule %+v", r)
	}
	if cfg.Slack.Cancellers[0] != "U0OPS" || cfg.Slack.ControlInterval.D() != 5*time.Second || cfg.Executor.PrepareExecTimeout.D() != 2*time.Hour {
		t.Errorf("slack %+v, executor %+v", cfg.Slack.ChatControl, cfg.Executor.RunnerTimeouts)
	}
	def, err := Parse("c.toml", []byte(minimal+"[[policy.rule]]\naction = \"approve\"\napprovers = [\"U0BOB\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := def.Policy.Rules[0]; r.NeededApprovals() != 1 || r.Timeout() != DefaultApprovalTimeout || def.Slack.ControlInterval.D() != DefaultControlInterval {
		t.Errorf("defaults: %+v %+v", r, def.Slack.ChatControl)
	}
}

func TestParseApprovalErrors(t *testing.T) {
	for _, tc := range []struct{ name, toml, want string }{
		{"no approvers", "[[policy.rule]]\naction = \"approve\"\n", "action = \"approve\" needs approvers or approver_groups"},
		{"too few approvers", "[[policy.rule]]\naction = \"approve\"\napprovers = [\"U0BOB\"]\napprovals = 2\n", "needs 2 distinct approvers but only 1 are named"},
		{"approvers on allow", "[[policy.rule]]\naction = \"allow\"\napprovers = [\"U0BOB\"]\n", "apply only to action = \"approve\""},
		{"bad user id", "[[policy.rule]]\naction = \"approve\"\napprovers = [\"bob\"]\n", `"bob" is not a Slack id`},
		{"bad group id", "[[policy.rule]]\naction = \"approve\"\napprover_groups = [\"U0BOB\"]\n", `"U0BOB" is not a Slack id (like S0123ABCD)`},
		{"bad canceller", "[slack]\ncancellers = [\"@ops\"]\n", `slack.cancellers: "@ops" is not a Slack id`},
		{"zero interval", "[slack]\ncontrol_interval = \"0s\"\n", "slack.control_interval: must be positive"},
		{"misspelt embedded key", "[[policy.rule]]\naction = \"approve\"\napprover = [\"U0BOB\"]\n", `unknown key (did you mean "approvers"?)`},
	} {
		_, err := Parse("c.toml", []byte(minimal+tc.toml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
