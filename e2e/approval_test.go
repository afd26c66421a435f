package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/emulator"
)

// The example job's requester (CHAT_USER_ID) and channel, and the people of these tests.
const (
	requester = "U0123ABCD"
	bob       = "U0BOB"
	carol     = "U0CAROL"
	stranger  = "U0STRANGER"
	opsOnCall = "U0OPS"
)

// approvalHost is a host whose "deploy" job needs approvals (approvals of bob and carol)
// within timeout, polled fast.
func approvalHost(t *testing.T, approvals int, timeout string) (*host, string) {
	t.Helper()
	return approveRuleHost(t, fmt.Sprintf("approvers = [%q, %q]\napprovals = %d\napproval_timeout = %q\n", bob, carol, approvals, timeout))
}

// approveRuleHost is a host whose "deploy" job a rule with action "approve" and the
// given keys decides, polled fast; it returns the host and its audit log.
func approveRuleHost(t *testing.T, keys string) (*host, string) {
	t.Helper()
	auditLog := filepath.Join(t.TempDir(), "audit.jsonl")
	h := newHost(t, fmt.Sprintf(`
[policy]
default = "deny"
audit_log = %q
[[policy.rule]]
name = "prod-deploy"
action = "approve"
jobs = ["deploy"]
`, auditLog)+keys)
	slackConfig(t, h, "control_interval = \"100ms\"\n")
	return h, auditLog
}

// startMessage waits (up to a generous bound) for the job's start message, which says
// want, and returns it.
func startMessage(t *testing.T, s *slacktest.Server, want string) slacktest.Message {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range s.Channel("C0123ABCD") {
			if !m.Ephemeral && strings.Contains(m.History[0], want) {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no start message saying %q:\n%s", want, s)
	return slacktest.Message{}
}

// reactOnRequest reacts on the approval request as soon as it is posted, in order.
func reactOnRequest(t *testing.T, s *slacktest.Server, reactions ...[2]string) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m := startMessage(t, s, "asks to run")
		for _, r := range reactions {
			s.React(m.Channel, m.TS, r[0], r[1])
		}
	}()
	return &wg
}

func approve(user string) [2]string { return [2]string{"white_check_mark", user} }
func refuse(user string) [2]string  { return [2]string{"x", user} }

// controlRecords returns the audit records of chat control (approvals, cancels).
func controlRecords(t *testing.T, path string) []map[string]any {
	var out []map[string]any
	for _, r := range readAudit(t, path) {
		if r["control"] != nil {
			out = append(out, r)
		}
	}
	return out
}

func TestApprovalByOneApproverRunsTheJob(t *testing.T) {
	h, auditLog := approvalHost(t, 1, "5m")
	marker := filepath.Join(h.public, "deployed")
	// The requester's own approval, a stranger's refusal and the requester's refusal do not
	// count; bob's approval does.
	wg := reactOnRequest(t, h.slack, approve(requester), refuse(stranger), refuse(requester), approve(bob))
	res := h.run(context.Background(), emulator.Job{Response: response(t, 1400, nil), Script: []string{"touch " + marker}})
	wg.Wait()
	if res.State != "success" {
		t.Fatalf("state %s (%v)\n%s", res.State, res.Err, res.RawTrace)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the approved job's script did not run")
	}
	m := startMessage(t, h.slack, "asks to run")
	for _, want := range []string{"<@" + requester + "> asks to run *deploy*", "<@" + bob + ">", "<@" + carol + ">", ":white_check_mark: to approve", ":x: to refuse", "Expires <!date^"} {
		if !strings.Contains(m.History[0], want) {
			t.Errorf("the request does not say %q:\n%s", want, m.History[0])
		}
	}
	if !slices.ContainsFunc(m.History, func(s string) bool { return strings.Contains(s, "approved by <@"+bob+">") }) {
		t.Errorf("the start message never said who approved:\n%q", m.History)
	}
	if !strings.Contains(m.Text, "succeeded") {
		t.Errorf("final status: %q", m.Text)
	}
	if !strings.Contains(string(res.RawTrace), "approved by Slack user "+bob) {
		t.Errorf("the job log does not say who approved:\n%s", res.RawTrace)
	}
	recs := readAudit(t, auditLog)
	if len(recs) != 2 || recs[0]["decision"] != "approve" || recs[1]["decision"] != "approved" {
		t.Fatalf("audit log: %v", recs)
	}
	ctl := recs[1]["control"].(map[string]any)
	if fmt.Sprint(ctl["by"]) != "["+bob+"]" || fmt.Sprint(ctl["approvers"]) != "["+bob+" "+carol+"]" || ctl["asked"] == nil || ctl["ended"] == nil || recs[1]["rule"] != "prod-deploy" {
		t.Errorf("approval record: %v", recs[1])
	}
	h.assertClean(1400)
}

func TestApprovalTwoNeededOneGivenExpires(t *testing.T) {
	h, auditLog := approvalHost(t, 2, "3s")
	marker := filepath.Join(h.public, "deployed")
	// Bob twice, the requester and a stranger: one approval that counts.
	wg := reactOnRequest(t, h.slack, approve(bob), approve(requester), approve(stranger), approve(bob))
	res := h.run(context.Background(), emulator.Job{Response: response(t, 1401, nil), Script: []string{"touch " + marker}})
	wg.Wait()
	if res.State != "failed" || res.FailureReason != emulator.ScriptFailure {
		t.Fatalf("state %s reason %s (%v)", res.State, res.FailureReason, res.Err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the unapproved job's script ran")
	}
	m := startMessage(t, h.slack, "asks to run")
	if !strings.Contains(m.Text, "Expired: 1 of 2 approvals (<@"+bob+">)") {
		t.Errorf("the start message does not show the outcome: %q", m.Text)
	}
	assertToldRequester(t, h.slack, "expired")
	ctl := controlRecords(t, auditLog)
	if len(ctl) != 1 || ctl[0]["decision"] != "expired" || fmt.Sprint(ctl[0]["control"].(map[string]any)["by"]) != "["+bob+"]" {
		t.Fatalf("audit: %v", ctl)
	}
	h.assertClean(1401)
}

// assertToldRequester checks the requester got one ephemeral message saying why.
func assertToldRequester(t *testing.T, s *slacktest.Server, why string) {
	t.Helper()
	var told []string
	for _, m := range s.Channel("C0123ABCD") {
		if m.Ephemeral && m.User == requester {
			told = append(told, m.Text)
		}
	}
	if len(told) != 1 || !strings.Contains(told[0], why) {
		t.Errorf("the requester was told %q, want one message saying %q", told, why)
	}
}

func TestApprovalRefused(t *testing.T) {
	h, auditLog := approvalHost(t, 2, "5m")
	marker := filepath.Join(h.public, "deployed")
	wg := reactOnRequest(t, h.slack, approve(bob), refuse(carol))
	start := time.Now()
	res := h.run(context.Background(), emulator.Job{Response: response(t, 1402, nil), Script: []string{"touch " + marker}})
	wg.Wait()
	if res.State != "failed" || res.FailureReason != emulator.ScriptFailure {
		t.Fatalf("state %s reason %s (%v)", res.State, res.FailureReason, res.Err)
	}
	if time.Since(start) > 4*time.Minute {
		t.Error("the refusal did not end the wait")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the refused job's script ran")
	}
	if m := startMessage(t, h.slack, "asks to run"); !strings.Contains(m.Text, "Refused by <@"+carol+">") {
		t.Errorf("start message: %q", m.Text)
	}
	assertToldRequester(t, h.slack, "refused by Slack user "+carol)
	ctl := controlRecords(t, auditLog)
	if len(ctl) != 1 || ctl[0]["decision"] != "refused" || fmt.Sprint(ctl[0]["control"].(map[string]any)["by"]) != "["+carol+"]" {
		t.Fatalf("audit: %v", ctl)
	}
}

// The runner's SIGTERM (GitLab cancels the job) while prepare waits: the wait ends, the
// script never runs, and the channel does not keep showing an open request.
func TestApprovalWaitEndsOnRunnerSIGTERM(t *testing.T) {
	h, auditLog := approvalHost(t, 1, "10m")
	marker := filepath.Join(h.public, "deployed")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		startMessage(t, h.slack, "asks to run")
		waitCalls(t, h.slack, "reactions.get", 2)
		cancel()
	}()
	res := h.run(ctx, emulator.Job{Response: response(t, 1403, nil), Script: []string{"touch " + marker}})
	if res.State != "failed" {
		t.Fatalf("state %s (%v)", res.State, res.Err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the script ran")
	}
	if m := startMessage(t, h.slack, "asks to run"); !strings.Contains(m.Text, "stopped the job while it waited") {
		t.Errorf("start message: %q", m.Text)
	}
	ctl := controlRecords(t, auditLog)
	if len(ctl) != 1 || ctl[0]["decision"] != "approval-stopped" {
		t.Fatalf("audit: %v", ctl)
	}
	h.assertClean(1403)
}

// waitCalls waits until the fake Slack has had at least n calls of method.
func waitCalls(t *testing.T, s *slacktest.Server, method string, n int) {
	deadline := time.Now().Add(60 * time.Second)
	for len(s.Calls(method)) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// Slack goes down after the request is posted: nobody can be seen approving, so the job
// does not run (fail closed), and it does not wait out the whole timeout either.
func TestApprovalFailsClosedWhenSlackIsDown(t *testing.T) {
	h, auditLog := approvalHost(t, 1, "10m")
	marker := filepath.Join(h.public, "deployed")
	h.slack.FailAlways("reactions.get", slacktest.HTTPError(502))
	res := h.run(context.Background(), emulator.Job{Response: response(t, 1404, nil), Script: []string{"touch " + marker}})
	if res.State != "failed" || res.FailureReason != emulator.ScriptFailure {
		t.Fatalf("state %s reason %s (%v)", res.State, res.FailureReason, res.Err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the job ran unapproved while Slack was down")
	}
	if n := len(h.slack.Calls("reactions.get")); n != 3 {
		t.Errorf("reactions.get was called %d times, want 3 (MaxFailures) before giving up", n)
	}
	if !strings.Contains(string(res.RawTrace), "could not be read from Slack") {
		t.Errorf("job log:\n%s", res.RawTrace)
	}
	ctl := controlRecords(t, auditLog)
	if len(ctl) != 1 || ctl[0]["decision"] != "approval-failed" {
		t.Fatalf("audit: %v", ctl)
	}
}

// Slack rate limits reactions.get: the poll waits Retry-After, and then the approval counts.
func TestApprovalBacksOffOnRateLimit(t *testing.T) {
	h, _ := approvalHost(t, 1, "5m")
	h.slack.Fail("reactions.get", slacktest.RateLimited(time.Second), slacktest.RateLimited(time.Second))
	wg := reactOnRequest(t, h.slack, approve(carol))
	res := h.run(context.Background(), emulator.Job{Response: response(t, 1405, nil), Script: []string{"true"}})
	wg.Wait()
	if res.State != "success" {
		t.Fatalf("state %s (%v)\n%s", res.State, res.Err, res.RawTrace)
	}
	calls := h.slack.Calls("reactions.get")
	if len(calls) < 3 || calls[0].Status != 429 || calls[1].Status != 429 {
		t.Fatalf("reactions.get calls: %v", calls)
	}
	for i := 1; i < 3; i++ {
		if gap := calls[i].Time.Sub(calls[i-1].Time); gap < 900*time.Millisecond {
			t.Errorf("call %d came %s after a 429 with Retry-After 1s", i+1, gap)
		}
	}
	for _, m := range h.slack.Channel("C0123ABCD") {
		if m.Ephemeral {
			t.Errorf("the requester was told %q", m.Text)
		}
	}
}

// A cancel from chat during the script: a stranger's :octagonal_sign: is ignored, one of
// slack.cancellers stops the job and every process it started, as the runner's cancel does.
func TestCancelFromChatStopsTheJob(t *testing.T) {
	auditLog := filepath.Join(t.TempDir(), "audit.jsonl")
	h := newHost(t, fmt.Sprintf("[policy]\ndefault = \"allow\"\naudit_log = %q\n", auditLog))
	slackConfig(t, h, fmt.Sprintf("control_interval = \"100ms\"\ncancellers = [%q]\n", opsOnCall))
	pidFile := filepath.Join(h.public, "pids")
	started := make(chan struct{})
	var once sync.Once
	h.runner.TraceSink = writerFunc(func(p []byte) (int, error) {
		if bytes.Contains(p, []byte("children started")) {
			once.Do(func() { close(started) })
		}
		return len(p), nil
	})
	stillRunning := make(chan bool, 1)
	reacted := make(chan time.Time, 1)
	go func() {
		select {
		case <-started:
		case <-time.After(60 * time.Second):
			return
		}
		m := startMessage(t, h.slack, "started *deploy*")
		h.slack.React(m.Channel, m.TS, "octagonal_sign", stranger)
		n := len(h.slack.Calls("reactions.get"))
		waitCalls(t, h.slack, "reactions.get", n+3) // three polls saw the stranger's
		_, err := os.Stat(filepath.Join(h.public, "finished"))
		stillRunning <- err != nil
		h.slack.React(m.Channel, m.TS, "octagonal_sign", opsOnCall)
		reacted <- time.Now()
	}()
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 1406, nil),
		Script: []string{
			"(trap '' TERM; exec sleep 300) & echo $! >> " + pidFile,
			"nohup sleep 300 >/dev/null 2>&1 & echo $! >> " + pidFile,
			"echo children started",
			"sleep 20",
			"touch " + filepath.Join(h.public, "finished"),
		},
	})
	if res.State != "failed" {
		t.Fatalf("state %s (%v)", res.State, res.Err)
	}
	if !<-stillRunning {
		t.Error("a stranger's :octagonal_sign: stopped the job")
	}
	// A figure, not an assertion: how long the cancel took, from the reaction to the end of
	// the job (cleanup included), at control_interval = 100ms and kill_grace = 500ms.
	at := <-reacted
	for _, c := range res.Calls {
		if c.Stage == "run:build_script" {
			t.Logf("cancel from chat: the script's stage ended %s after the reaction", c.End.Sub(at).Round(time.Millisecond))
		}
	}
	if _, err := os.Stat(filepath.Join(h.public, "finished")); err == nil {
		t.Fatal("the script ran to its end")
	}
	assertDead(t, pidFile)
	if !strings.Contains(string(res.RawTrace), "cancelled from chat by Slack user "+opsOnCall) {
		t.Errorf("job log:\n%s", res.RawTrace)
	}
	m := startMessage(t, h.slack, "started *deploy*")
	// GitLab shows the job failed (the runner saw its script stopped): chat says so too.
	if !strings.Contains(m.Text, "failed: cancelled from chat by <@"+opsOnCall+">") {
		t.Errorf("final status: %q", m.Text)
	}
	ctl := controlRecords(t, auditLog)
	if len(ctl) != 1 || ctl[0]["decision"] != "cancelled-from-chat" || fmt.Sprint(ctl[0]["control"].(map[string]any)["by"]) != "["+opsOnCall+"]" {
		t.Fatalf("audit: %v", ctl)
	}
	h.assertClean(1406)
}

// A member of an approver group approves; the group is resolved with
// usergroups.users.list.
func TestApprovalByApproverGroupMember(t *testing.T) {
	h, auditLog := approveRuleHost(t, "approver_groups = [\"S0SRE\"]\n")
	h.slack.SetGroup("S0SRE", requester, "U0DAVE")
	// The requester is in the group too: their approval still does not count.
	wg := reactOnRequest(t, h.slack, approve(requester), approve("U0DAVE"))
	res := h.run(context.Background(), emulator.Job{Response: response(t, 1407, nil), Script: []string{"true"}})
	wg.Wait()
	if res.State != "success" {
		t.Fatalf("state %s (%v)\n%s", res.State, res.Err, res.RawTrace)
	}
	ctl := controlRecords(t, auditLog)
	if len(ctl) != 1 || ctl[0]["decision"] != "approved" || fmt.Sprint(ctl[0]["control"].(map[string]any)["by"]) != "[U0DAVE]" {
		t.Fatalf("audit: %v", ctl)
	}
	if calls := h.slack.Calls("usergroups.users.list"); len(calls) == 0 || calls[0].Params["usergroup"] != "S0SRE" {
		t.Errorf("usergroups.users.list calls: %v", calls)
	}
	if m := startMessage(t, h.slack, "asks to run"); !strings.Contains(m.History[0], "a member of <!subteam^S0SRE>") {
		t.Errorf("request: %q", m.History[0])
	}
}
