package policy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/chatops-executor/chatops-executor/audit"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/replies"
)

// The runner retries a prepare that died, and a job must be decided once: a retry is noted
// in the audit log (decision "retry"), never decided again. These two methods make the
// Engine a stages.RetryDecider.

// RetryDecision is the audit record's decision for a noted retry.
const RetryDecision = "retry"

// Recorded returns the last allow or deny decision the audit log holds for jobID: the
// decision of a prepare that was killed before it could record it in the job's state.
// It reads the whole log, which happens only in that rare case.
func (e *Engine) Recorded(jobID int64) (Decision, bool, error) {
	if e.Audit == nil {
		return Decision{}, false, nil
	}
	f, err := os.Open(e.Audit.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return Decision{}, false, nil
	}
	if err != nil {
		return Decision{}, false, fmt.Errorf("read audit log: %w", err)
	}
	defer f.Close()
	var d Decision
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec audit.Record
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.JobID != jobID {
			continue
		}
		switch rec.Decision {
		case "allow", "deny":
			d, found = Decision{Allow: rec.Decision == "allow", Rule: rec.Rule, Reason: rec.Reason}, true
		case ApproveDecision:
			// The record does not say who may approve: the job is decided again, so that
			// it can never run on a bare "allow" without its approval.
			d, found = Decision{}, false
		}
	}
	if err := sc.Err(); err != nil {
		return Decision{}, false, fmt.Errorf("read audit log: %w", err)
	}
	return d, found, nil
}

// NoteRetry appends a "retry" record for j: prepare ran again (attempt) and the decision
// d of an earlier attempt stands.
func (e *Engine) NoteRetry(j *job.Response, attempt int, d Decision) error {
	if e.Audit == nil {
		return nil
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	verdict := "deny"
	if d.Allow {
		verdict = "allow"
	}
	chat := j.Chat()
	rec := audit.Record{
		Time: now().UTC(), JobID: j.ID, JobName: j.Info.Name, Project: j.ProjectPath(),
		PipelineSource: j.PipelineSource(), ChatUser: chat.UserID, Channel: chat.Channel,
		Rule: d.Rule, Decision: RetryDecision,
		Reason: fmt.Sprintf("the runner retried prepare (attempt %d); the earlier attempt's decision (%s) stands", attempt, verdict),
	}
	return e.Audit.Append(rec, replies.SecretsOf(j, e.Getenv))
}
