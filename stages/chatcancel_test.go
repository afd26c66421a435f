package stages

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/policy"
	"github.com/chatops-executor/chatops-executor/replies"
)

func TestDeriveCancelledFromChat(t *testing.T) {
	now := time.Now()
	job := JobRecord{PreparedAt: now.Add(-time.Minute), TimeoutSeconds: 3600}
	recs := []StageRecord{{Stage: "build_script", Terminated: true, TerminatedAt: now, CancelledBy: "U0OPS", ExitCode: 143}}
	// The runner saw the script fail, and GitLab shows the job failed: so does chat, with
	// who cancelled it.
	o := Derive(job, recs, RunnerFailed, now)
	if o.Status != Failed || o.CancelledBy != "U0OPS" || o.String() != "failed: cancelled from chat by U0OPS after 1m0s" {
		t.Errorf("outcome %+v (%s)", o, o)
	}
	text := replies.StatusText(replies.Job{ID: 1, Name: "deploy"}, replies.Status{State: string(o.Status), ExitCode: 143, CancelledBy: o.CancelledBy})
	if !strings.HasPrefix(text, ":x: ") || !strings.Contains(text, "*deploy* failed: cancelled from chat by <@U0OPS>") || strings.Contains(text, "exit code") {
		t.Errorf("status text %q", text)
	}
	// Without a chat cancel, a SIGTERM is the runner's, as before.
	recs[0].CancelledBy = ""
	if o := Derive(job, recs, RunnerCanceled, now); o.Status != Cancelled || o.CancelledBy != "" {
		t.Errorf("runner's cancel: %+v", o)
	}
}

// A retried prepare of a job decided by an approve rule still needs the approval: the
// recorded decision carries it, so the retry waits again instead of running on "allow".
func TestRetriedDecisionKeepsItsApproval(t *testing.T) {
	st := State{Dir: t.TempDir()}
	a := &policy.Approval{Approvers: []string{"U0BOB"}, Needed: 1, Timeout: time.Minute}
	var out bytes.Buffer
	s := &Stages{Stdout: &out, Stderr: &out}
	rec := JobRecord{JobID: 1}
	if err := s.recordDecision(st, &rec, Decision{Allow: true, Rule: "prod", Approval: a}); err != nil {
		t.Fatal(err)
	}
	saved, err := st.ReadJob()
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.decide(context.Background(), nil, st, &saved)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allow || d.Approval == nil || d.Approval.Approvers[0] != "U0BOB" || saved.Approved {
		t.Errorf("retried decision %+v (approval %+v), record %+v", d, d.Approval, saved)
	}
}

func TestRunRefusesAnUnapprovedJob(t *testing.T) {
	// The record a prepare would never leave: decided by an approve rule, not approved.
	f := newFixture(t, nil)
	st := f.state()
	if err := st.Create(); err != nil {
		t.Fatal(err)
	}
	rec := JobRecord{JobID: 4242, Decided: true, Prepared: true, Rule: "prod",
		Approval: &policy.Approval{Approvers: []string{"U0BOB"}, Needed: 1, Timeout: time.Minute}}
	if err := st.WriteJob(rec); err != nil {
		t.Fatal(err)
	}
	err := f.stages.Run(context.Background(), f.script("touch "+f.dir+"/ran"), "build_script")
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("needs an approval in chat")) {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(f.dir + "/ran"); err == nil {
		t.Error("the unapproved job's script ran")
	}
}

// approveDecider decides every job with an approve rule.
type approveDecider struct{}

func (approveDecider) Decide(context.Context, *job.Response) (Decision, error) {
	return Decision{Allow: true, Rule: "prod", Reason: "rule prod allows, once approved",
		Approval: &policy.Approval{Approvers: []string{"U0BOB"}, Needed: 1, Timeout: time.Minute}}, nil
}

// plainPoster is a chat platform without reactions.
type plainPoster struct{}

func (plainPoster) PostMessage(context.Context, string, string, string) (string, error) {
	return "1.1", nil
}
func (plainPoster) UpdateMessage(context.Context, string, string, string) error { return nil }
func (plainPoster) PostEphemeral(context.Context, string, string, string) error { return nil }
func (plainPoster) UploadFile(context.Context, delivery.FileUpload) error       { return nil }

// On a chat platform without reactions nobody can approve: prepare denies at once, and
// says why.
func TestApprovalWithoutReactionsFailsClosed(t *testing.T) {
	f := newFixture(t, nil)
	f.stages.Decider = approveDecider{}
	f.stages.NewPoster = func(string, string) (delivery.Poster, error) { return plainPoster{}, nil }
	err := f.stages.Prepare(context.Background())
	if err == nil || !strings.Contains(err.Error(), "which this chat platform does not offer") {
		t.Fatalf("Prepare: %v", err)
	}
	rec, _ := f.state().ReadJob()
	if !rec.Denied || rec.Approved {
		t.Errorf("record %+v", rec)
	}
}
