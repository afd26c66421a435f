package policy

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/chatops-executor/chatops-executor/audit"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/replies"
)

// Decide verifies who started j, evaluates the rules, and appends one audit record. Every
// failure to verify is a deny decision, not an error; the only error is an allow decision
// that could not be audited, since a job must not run unrecorded.
func (e *Engine) Decide(ctx context.Context, j *job.Response) (Decision, error) {
	chat := j.Chat()
	rec := audit.Record{
		JobID:          j.ID,
		JobName:        j.Info.Name,
		Project:        j.ProjectPath(),
		PipelineSource: j.PipelineSource(),
		ChatUser:       chat.UserID,
		Channel:        chat.Channel,
		Input:          chat.Input,
	}
	rec.User.Username = j.Get("GITLAB_USER_LOGIN")
	rec.User.ID, _ = strconv.ParseInt(j.Get("GITLAB_USER_ID"), 10, 64)
	in := Input{
		Job: j.Info.Name,
		// Only the runner's job_info names the project: CI_PROJECT_PATH is a job variable
		// like any other. Without it a projects condition cannot hold.
		Project:   j.Info.ProjectFullPath,
		ProjectID: j.Info.ProjectID,
		Channel:   chat.Channel,
		ChatUser:  chat.UserID,
		ChatInput: chat.Input,
	}

	res, ok := e.identify(ctx, j, &in, &rec)
	if ok {
		res = e.Explain(ctx, in)
	}
	d := res.Decision()
	d.TellRequester = !d.Allow && ok && rec.PipelineSource == "chat"
	rec.Rule, rec.Reason = d.Rule, d.Reason
	rec.Decision = "deny"
	switch {
	case d.Allow && d.Approval != nil:
		rec.Decision = ApproveDecision
	case d.Allow:
		rec.Decision = "allow"
	}
	if e.Audit != nil {
		now := time.Now
		if e.Now != nil {
			now = e.Now
		}
		rec.Time = now().UTC()
		if err := e.Audit.Append(rec, replies.SecretsOf(j, e.Getenv)); err != nil {
			if d.Allow {
				return Decision{}, fmt.Errorf("the job was allowed, but the decision could not be recorded, so it does not run: %w", err)
			}
			d.Reason += fmt.Sprintf(" (the decision could not be written to the audit log: %v)", err)
		}
	}
	return d, nil
}

// IdentityRule names decisions made by the identity check, before any rule.
const IdentityRule = "identity-check"

// NonChatRule names decisions made because the pipeline did not come from chat.
const NonChatRule = "executor.non_chat_jobs"

// identify settles who started j: verified with GitLab when configured, else as the
// variables claim (unverified). It fills in and rec, and returns ok, or a deny Result.
func (e *Engine) identify(ctx context.Context, j *job.Response, in *Input, rec *audit.Record) (Result, bool) {
	deny := func(rule, format string, args ...any) (Result, bool) {
		return Result{Rule: rule, Reason: fmt.Sprintf(format, args...)}, false
	}
	source := j.PipelineSource()
	if e.Jobs == nil {
		// Unverified: the rules see no user at all, so user conditions cannot hold on a
		// claim. The audit record keeps the claim, marked unverified.
		if source != "chat" && e.nonChatJobs != "run" {
			return deny(NonChatRule, "this runner only runs jobs started from chat, and this one's pipeline source is %q (executor.non_chat_jobs = \"reject\")", source)
		}
		return Result{}, true
	}
	gj, err := e.Jobs.CurrentJob(ctx, j.Token)
	if err != nil {
		return deny(IdentityRule, "could not confirm with GitLab who started this job, so it is denied (fail closed): %v; run the command again, and if this keeps happening, ask the runner admin to check that this runner can reach gitlab.url and that it is the GitLab that runs this job", err)
	}
	rec.User = audit.User{ID: gj.User.ID, Username: gj.User.Username}
	rec.Verified = true
	if gj.Pipeline.Source != "" {
		rec.PipelineSource = gj.Pipeline.Source
	}
	spoof := func(what string, claimed, actual any) (Result, bool) {
		return deny(IdentityRule, "possible spoofing attempt: the job's variable %s says %v, but GitLab says %v; denied", what, claimed, actual)
	}
	if gj.ID != j.ID {
		return deny(IdentityRule, "possible spoofing attempt: the job token belongs to job %d, not to job %d; denied", gj.ID, j.ID)
	}
	if v, ok := j.Var("CI_JOB_ID"); ok && v != strconv.FormatInt(gj.ID, 10) {
		return spoof("CI_JOB_ID", strconv.Quote(v), gj.ID)
	}
	if v, ok := j.Var("GITLAB_USER_ID"); ok && v != strconv.FormatInt(gj.User.ID, 10) {
		return spoof("GITLAB_USER_ID", strconv.Quote(v), fmt.Sprintf("the job was started by user id %d (%s)", gj.User.ID, gj.User.Username))
	}
	if v, ok := j.Var("GITLAB_USER_LOGIN"); ok && v != gj.User.Username {
		return spoof("GITLAB_USER_LOGIN", strconv.Quote(v), fmt.Sprintf("the job was started by %q", gj.User.Username))
	}
	if gj.Pipeline.Source != "" && source != gj.Pipeline.Source {
		return spoof("CI_PIPELINE_SOURCE", strconv.Quote(source), fmt.Sprintf("the pipeline source is %q", gj.Pipeline.Source))
	}
	if gj.Pipeline.ProjectID > 0 && j.Info.ProjectID > 0 && gj.Pipeline.ProjectID != j.Info.ProjectID {
		return deny(IdentityRule, "GitLab says the job belongs to project %d, but the runner was given project %d; denied", gj.Pipeline.ProjectID, j.Info.ProjectID)
	}
	if e.nonChatJobs != "run" {
		switch gj.Pipeline.Source {
		case "chat":
		case "":
			return deny(NonChatRule, "GitLab's answer does not say the pipeline's source, so it cannot be confirmed that the job was started from chat (executor.non_chat_jobs = \"reject\"); denied")
		default:
			return deny(NonChatRule, "this runner only runs jobs started from chat, and GitLab says this one's pipeline source is %q (executor.non_chat_jobs = \"reject\")", gj.Pipeline.Source)
		}
	}
	in.User, in.Verified = gj.User, true
	if gj.Pipeline.ProjectID > 0 {
		in.ProjectID = gj.Pipeline.ProjectID
	}
	return Result{}, true
}
