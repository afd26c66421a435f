package policy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/policy"
)

var prodDeploy = config.Rule{Name: "prod-deploy", Action: "approve", Jobs: []string{"deploy"}, Users: []string{"alice"},
	Approval: config.Approval{Approvers: []string{"U0BOB", "U0CAROL"}, ApproverGroups: []string{"S0SRE"}, Approvals: 2}}

func TestApproveRuleAllowsOnceApproved(t *testing.T) {
	w := newWorld(t, prodDeploy)
	e := w.engine(t)
	d, err := e.Decide(context.Background(), w.jobResponse())
	if err != nil {
		t.Fatal(err)
	}
	a := d.Approval
	if !d.Allow || d.Rule != "prod-deploy" || a == nil || a.Needed != 2 || a.Timeout != config.DefaultApprovalTimeout ||
		strings.Join(a.Approvers, ",") != "U0BOB,U0CAROL" || strings.Join(a.Groups, ",") != "S0SRE" {
		t.Fatalf("decision %+v, approval %+v", d, a)
	}
	if !strings.Contains(d.Reason, "once approved by 2 distinct approval(s) from U0BOB, U0CAROL, group S0SRE within 15m0s") {
		t.Errorf("reason: %s", d.Reason)
	}
	recs := w.auditLines(t)
	if len(recs) != 1 || recs[0].Decision != policy.ApproveDecision {
		t.Fatalf("audit: %+v", recs)
	}
	// A prepare killed after this decision must decide again, never run on a bare allow.
	if _, found, err := e.Recorded(recs[0].JobID); err != nil || found {
		t.Errorf("Recorded of an approve decision: found %v (%v)", found, err)
	}
	// An allow rule has no approval.
	allow := prodDeploy
	allow.Action, allow.Approval = "allow", config.Approval{}
	w = newWorld(t, allow)
	if d, _ := w.engine(t).Decide(context.Background(), w.jobResponse()); !d.Allow || d.Approval != nil {
		t.Errorf("allow rule: %+v", d)
	}
}

func TestApprovalTimeoutWarnedAgainstPrepareTimeout(t *testing.T) {
	for _, tc := range []struct {
		timeout, prepare time.Duration
		warn             bool
	}{
		{15 * time.Minute, time.Hour, false},
		{50 * time.Minute, time.Hour, true},
		{time.Hour, time.Hour, true},
		{20 * time.Minute, 20 * time.Minute, true},
		{10 * time.Minute, 20 * time.Minute, false},
	} {
		r := prodDeploy
		r.ApprovalTimeout = config.Duration(tc.timeout)
		w := newWorld(t, r)
		w.cfg.Executor.PrepareExecTimeout = config.Duration(tc.prepare)
		var got []config.Problem
		for _, p := range policy.Validate(w.cfg) {
			if strings.HasSuffix(p.Key, ".approval_timeout") {
				got = append(got, p)
			}
		}
		if (len(got) > 0) != tc.warn || len(got) > 0 && (!got[0].Warning || !strings.Contains(got[0].Msg, "prepare_exec_timeout")) {
			t.Errorf("approval_timeout %s, prepare_exec_timeout %s: %v", tc.timeout, tc.prepare, got)
		}
	}
}
