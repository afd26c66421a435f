package main

import (
	"strings"
	"testing"
)

const tryApprovalConfig = tryDenyTOML + `
[[policy.rule]]
name = "status-approved"
action = "approve"
jobs = ["status"]
approvers = ["U0BOB", "U0CAROL"]
approvals = 2
`

func TestTryShowsApprovalAndSimulatesIt(t *testing.T) {
	useBuiltExecutor(t)
	cfg := writeFile(t, t.TempDir(), "config.toml", tryApprovalConfig, 0o600)

	// Nobody approves: the preview shows the request, and that it expired.
	code, out, errs := runTryCmd(t, tryEnv(), cfg, "--ci", tryCI, "--channel", "C0123ABCD", "status")
	if code != 1 || !strings.Contains(out, "asks to run") || !strings.Contains(out, "Expired: 0 of 2 approvals") ||
		strings.Contains(out, "all green") || !strings.Contains(errs, "nobody approves in the preview") {
		t.Errorf("no approver: code %d\n%s\n%s", code, out, errs)
	}
	// One approval of two needed is not enough; the requester's own does not count.
	code, out, errs = runTryCmd(t, tryEnv(), cfg, "--ci", tryCI, "--channel", "C0123ABCD", "--approve-as", "U0BOB", "--approve-as", "U0LOCALTRY", "status")
	if code != 1 || strings.Contains(out, "all green") {
		t.Errorf("one approval: code %d\n%s\n%s", code, out, errs)
	}
	// Both approvers: it runs.
	code, out, errs = runTryCmd(t, tryEnv(), cfg, "--ci", tryCI, "--channel", "C0123ABCD", "--approve-as", "U0BOB", "--approve-as", "U0CAROL", "status")
	if code != 0 || !strings.Contains(out, "all green") || !strings.Contains(out, "approved by") {
		t.Errorf("approved: code %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = runTryCmd(t, tryEnv(), cfg, "--ci", tryCI, "--channel", "C0123ABCD", "--post", "--approve-as", "U0BOB", "status")
	if code != 2 || !strings.Contains(errs, "--approve-as simulates approvals in the preview") {
		t.Errorf("--post --approve-as: code %d\n%s", code, errs)
	}
}
