package stages

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"gitlab.com/gitlab-org/gitlab-runner/executors/custom/api"

	"github.com/chatops-executor/chatops-executor/job"
)

// RetryDecider is a Decider that keeps an audit log: across the runner's retries of a
// prepare that died, the job is decided once and each retry is noted. The policy engine
// implements it.
type RetryDecider interface {
	Decider
	// Recorded returns the decision the audit log holds for the job, if any: a prepare
	// killed after deciding but before recording it in the job's state.
	Recorded(jobID int64) (Decision, bool, error)
	// NoteRetry notes in the audit log that prepare ran again (attempt) for a job already
	// decided (d).
	NoteRetry(j *job.Response, attempt int, d Decision) error
}

// beginPrepare starts a prepare attempt: the job's record from an earlier attempt, or a
// new one, with this attempt counted, and a copy of the job for whoever finishes its reply
// if the runner's copy is gone by then.
func (s *Stages) beginPrepare(st State, j *job.Response) (JobRecord, error) {
	rec, err := st.ReadJob()
	if err != nil && !errors.Is(err, ErrNoState) {
		return rec, err
	}
	if err != nil || rec.JobID != j.ID {
		rec = JobRecord{
			JobID:          j.ID,
			Name:           j.Info.Name,
			Project:        j.ProjectPath(),
			PreparedAt:     s.now(),
			TimeoutSeconds: j.RunnerInfo.Timeout,
			BuildDir:       s.buildDir(j),
		}
	}
	rec.Attempts++
	rec.Prepared, rec.AttemptEnded = false, false
	rec.RunnerFile = s.Getenv("JOB_RESPONSE_FILE")
	if err := s.saveResponse(st); err != nil {
		return rec, err
	}
	return rec, st.WriteJob(rec)
}

// decide returns the policy's decision for the job, deciding only when no earlier attempt
// did, and records it in the job's state before anything acts on it.
func (s *Stages) decide(ctx context.Context, j *job.Response, st State, rec *JobRecord) (Decision, error) {
	rd, _ := s.Decider.(RetryDecider)
	if rec.Decided {
		d := Decision{Allow: !rec.Denied, Rule: rec.Rule, Reason: rec.Reason, TellRequester: rec.Tell, Approval: rec.Approval, AllowMentions: rec.AllowMentions}
		s.noteRetry(rd, j, rec.Attempts, d)
		return d, nil
	}
	if rec.Deciding && rd != nil {
		// The attempt before was killed while deciding: the audit log knows whether it got
		// as far as a decision.
		d, ok, err := rd.Recorded(j.ID)
		if err != nil {
			return d, err
		}
		if ok {
			s.noteRetry(rd, j, rec.Attempts, d)
			return d, s.recordDecision(st, rec, d)
		}
	}
	rec.Deciding = true
	if err := st.WriteJob(*rec); err != nil {
		return Decision{}, err
	}
	decider := s.Decider
	if decider == nil {
		decider = AllowAll{}
	}
	d, err := decider.Decide(ctx, j)
	s.countDecision(d, err) // a retry's reused decision is not counted again
	if err != nil {
		return d, err
	}
	return d, s.recordDecision(st, rec, d)
}

func (s *Stages) recordDecision(st State, rec *JobRecord, d Decision) error {
	rec.Deciding, rec.Decided = false, true
	rec.Denied, rec.Rule, rec.Reason, rec.Tell = !d.Allow, d.Rule, d.Reason, d.TellRequester
	rec.Approval, rec.AllowMentions = d.Approval, d.Allow && d.AllowMentions
	if rec.Denied {
		rec.DenyReason = d.Reason
	}
	return st.WriteJob(*rec)
}

func (s *Stages) noteRetry(rd RetryDecider, j *job.Response, attempt int, d Decision) {
	fmt.Fprintf(s.Stdout, "The policy decided this job in an earlier attempt (%s, rule %s); the decision stands\n", allowWord(d.Allow), d.Rule)
	if rd == nil {
		return
	}
	if err := rd.NoteRetry(j, attempt, d); err != nil {
		fmt.Fprintf(s.Stderr, "%s: warning: the retry could not be noted in the audit log: %v\n", DriverName, err)
	}
}

func allowWord(allow bool) string {
	if allow {
		return "allowed"
	}
	return "denied"
}

// preparePending reports whether this cleanup may follow a prepare attempt that did not
// succeed and that the runner will try again: the job's state must then stay, and nothing
// is said in chat yet. Prepare records "prepared" as its very last step, but a prepare
// killed after that step and before its exit is a failed attempt too; CI_JOB_STATUS
// cannot tell it from a cancel right before the first stage (it is "running" for both).
// The runner's temporary directory can: the runner makes a script directory in it for
// every stage it starts, after a successful prepare only. When it has none, the state
// stays: a retry carries on with it, and otherwise a sweeper finishes the job after
// retryWindow.
func (s *Stages) preparePending(st State, rec JobRecord, runner RunnerStatus) bool {
	if rec.Denied && rec.Prepared {
		return false // a denial is final: the runner does not retry a build failure
	}
	if rec.Attempts >= prepareAttempts {
		return false // the runner's last attempt
	}
	if recs, _ := st.Stages(); len(recs) > 0 {
		return false
	}
	return !rec.Prepared || runner == RunnerRunning && !s.runnerStartedStages()
}

// runnerStartedStages reports whether the runner made a stage script directory next to
// its JOB_RESPONSE_FILE (executors/custom/custom.go: MkdirTemp(tempDir, "script")).
func (s *Stages) runnerStartedStages() bool {
	f := s.Getenv(api.JobResponseFileVariable)
	if f == "" {
		return false
	}
	dirs, _ := filepath.Glob(filepath.Join(filepath.Dir(f), "script*"))
	return len(dirs) > 0
}
