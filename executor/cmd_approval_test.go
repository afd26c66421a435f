package main

import (
	"context"
	"strings"
	"testing"
)

const approvalPolicy = `
[policy]
default = "deny"

[[policy.rule]]
name = "production-deploys"
action = "approve"
jobs = ["deploy"]
approvers = ["U0BOB", "U0CAROL"]
approver_groups = ["S0SRE"]
approvals = 2
approval_timeout = "50m"
`

func TestPolicyExplainShowsApproval(t *testing.T) {
	a, stdout, stderr := policyApp(t, "https://gitlab.invalid", approvalPolicy)
	if err := runPolicy(context.Background(), a, []string{"explain", "--job", "deploy"}); exitCode(t, err) != 0 {
		t.Fatalf("exit %v\n%s%s", err, stdout, stderr)
	}
	for _, want := range []string{
		`rule 1 "production-deploys" (approve): holds, decides: job "deploy" matches "deploy"`,
		`decision: allow once approved in chat (rule "production-deploys")`,
		`approval: 2 distinct approval(s) from U0BOB, U0CAROL, group S0SRE within 50m0s (react :white_check_mark: on the start message; the requester's own reaction does not count)`,
	} {
		if !strings.Contains(stdout.String(), want+"\n") {
			t.Errorf("no line %q in\n%s", want, stdout)
		}
	}
}

func TestCheckWarnsApprovalTimeoutNearPrepareTimeout(t *testing.T) {
	a, stdout, stderr := policyApp(t, "", approvalPolicy)
	_ = runCheck(context.Background(), a, nil)
	out := stdout.String() + stderr.String()
	if !strings.Contains(out, "approval_timeout") || !strings.Contains(out, "not well below the runner's prepare_exec_timeout (1h0m0s") {
		t.Errorf("check output:\n%s", out)
	}
}
