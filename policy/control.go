package policy

import (
	"fmt"
	"os"
	"time"

	"github.com/chatops-executor/chatops-executor/audit"
	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/replies"
)

// Recorder writes the audit records of approvals and cancels from chat into the policy's
// audit log. The run stage needs only this, not the engine (which would read GitLab's
// token file for nothing).
type Recorder struct {
	Audit  *audit.Log
	Now    func() time.Time
	Getenv func(string) string
}

// NewRecorder returns the Recorder for cfg's audit log.
func NewRecorder(cfg *config.Config) *Recorder {
	return &Recorder{Audit: &audit.Log{Path: AuditPath(cfg), Syslog: cfg.Policy.AuditSyslog}, Now: time.Now, Getenv: os.Getenv}
}

// RecordControl appends the audit record of an approval's outcome or a cancel from chat:
// decision is one of audit's control decisions (audit.Approved…), c says who could and
// who did, and when.
func (r *Recorder) RecordControl(j *job.Response, rule, decision, reason string, c audit.Control) error {
	if r == nil || r.Audit == nil {
		return nil
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	chat := j.Chat()
	rec := audit.Record{
		Time: now().UTC(), JobID: j.ID, JobName: j.Info.Name, Project: j.ProjectPath(),
		PipelineSource: j.PipelineSource(), ChatUser: chat.UserID, Channel: chat.Channel,
		Input: chat.Input, Rule: rule, Decision: decision, Reason: reason, Control: &c,
	}
	rec.User.Username = j.Get("GITLAB_USER_LOGIN")
	if err := r.Audit.Append(rec, replies.SecretsOf(j, r.Getenv)); err != nil {
		return fmt.Errorf("audit %s: %w", decision, err)
	}
	return nil
}

// RecordControl is Recorder.RecordControl on the engine's audit log.
func (e *Engine) RecordControl(j *job.Response, rule, decision, reason string, c audit.Control) error {
	return (&Recorder{Audit: e.Audit, Now: e.Now, Getenv: e.Getenv}).RecordControl(j, rule, decision, reason, c)
}
