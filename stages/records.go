package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"

	"github.com/chatops-executor/chatops-executor/gitlab"
	"github.com/chatops-executor/chatops-executor/job"
)

// jobStatusVar is the variable the runner passes every executor call, cleanup included, as
// CUSTOM_ENV_CI_JOB_STATUS.
const jobStatusVar = "CI_JOB_STATUS"

// RunnerJobStatus returns what the runner says about how the job ended, or "" when that
// cannot be trusted. CUSTOM_ENV_* is the runner's variable list, job variables included,
// after its predefined ones: a job that defines CI_JOB_STATUS itself (in .gitlab-ci.yml,
// a trigger, a schedule) overrides the runner's value in the executor's environment. The
// job's own variables are in JOB_RESPONSE_FILE, the runner's predefined ones are not, so
// a CI_JOB_STATUS there is the job's and the environment's value is ignored.
func RunnerJobStatus(j *job.Response, getenv func(string) string) RunnerStatus {
	if _, set := j.Var(jobStatusVar); set {
		return ""
	}
	switch v := RunnerStatus(getenv("CUSTOM_ENV_" + jobStatusVar)); v {
	case RunnerSuccess, RunnerFailed, RunnerCanceled, RunnerTimedOut, RunnerRunning:
		return v
	}
	return ""
}

// startStage records that a stage started, before any of its script runs: if the executor
// is killed from here on, cleanup finds a stage that never ended rather than silence it
// could take for success. A failure to write is reported and the stage runs anyway: a
// record is the reply's business, never a reason to fail the job.
//
// The record is padded to stageRecordSize, so that its end can be written over it in
// place when the disk is full (see endStage).
func (s *Stages) startStage(st State, r StageRecord) {
	r.Running = true
	if err := writeRunning(st, r); err != nil {
		fmt.Fprintf(s.Stderr, "%s: warning: the stage's start could not be recorded: %v\n", DriverName, err)
	}
}

// writeRunning writes the record of a running stage, padded to stageRecordSize.
func writeRunning(st State, r StageRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode stage record: %w", err)
	}
	if len(data) < stageRecordSize {
		data = append(data, bytes.Repeat([]byte(" "), stageRecordSize-len(data)-1)...)
		data = append(data, '\n')
	}
	return st.writeStageData(r, data)
}

// stageRecordSize is the room a stage's start record leaves for its end.
const stageRecordSize = 2048

// endStage records how a stage ended: atomically, or when that fails (a full disk has no
// room for the new file), over the start record in place, which needs no new space. A
// stage left "running" would read as a killed executor: a false failure.
func (s *Stages) endStage(st State, r StageRecord) error {
	err := st.WriteStage(r)
	if err == nil {
		return nil
	}
	data, merr := json.Marshal(r)
	if merr != nil || len(data) >= stageRecordSize {
		return err
	}
	data = append(data, bytes.Repeat([]byte(" "), stageRecordSize-len(data))...)
	f, oerr := os.OpenFile(st.stagePath(r), os.O_WRONLY, 0)
	if oerr != nil {
		return err
	}
	_, werr := f.WriteAt(data, 0)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return err
	}
	return nil
}

// noteTerminated records the runner's SIGTERM as soon as it arrives: the runner may
// SIGKILL the executor before the stage ends (graceful_kill_timeout), and cleanup must
// still tell a cancel or timeout from a crash.
func (s *Stages) noteTerminated(st State, r StageRecord) {
	r.Running = true
	if err := writeRunning(st, r); err != nil {
		fmt.Fprintf(s.Stderr, "%s: warning: %v\n", DriverName, err)
	}
}

// JobSource answers what GitLab knows of a job (package gitlab's Client). Cleanup asks it
// when the records and the runner cannot tell how a job was stopped.
type JobSource interface {
	// CurrentJob asks with the job's own token, which works only while GitLab runs the job.
	CurrentJob(ctx context.Context, jobToken string) (*gitlab.Job, error)
	// ProjectJob asks with the admin's read_api token (gitlab.token_file), which sees a
	// job in any state; only when HasToken.
	ProjectJob(ctx context.Context, projectID, jobID int64) (*gitlab.Job, error)
	HasToken() bool
}

// interruptedReason is the reason of a job GitLab still runs at cleanup: the runner itself
// is shutting down, and GitLab will show the job failed with runner_interrupted.
const interruptedReason = "the runner was stopped while the job ran (runner_interrupted)"

// askGitLab settles a "stopped" outcome with GitLab, when gitlab.url is set. At cleanup the
// runner has not yet sent the job's final state, so a job GitLab still runs was stopped by
// the runner shutting down (runner_interrupted: GitLab will show it failed); one GitLab
// cancelled or failed was ended by GitLab (a hard abort), and is reported as GitLab shows
// it. Only the admin's token (gitlab.token_file) can tell those two apart: the job's own
// token is rejected once GitLab no longer runs the job, so without it such a job stays
// "stopped", with the reason that GitLab ended it. Anything else leaves the outcome as it is.
func (s *Stages) askGitLab(ctx context.Context, j *job.Response, o Outcome) Outcome {
	if o.Status != Stopped || s.GitLab == nil {
		return o
	}
	timeout := s.Cfg.GitLab.Timeout.D()
	if s.GitLab.HasToken() {
		qctx, cancel := context.WithTimeout(ctx, timeout)
		gj, err := s.GitLab.ProjectJob(qctx, j.Info.ProjectID, j.ID)
		cancel()
		if err == nil {
			return settleWithGitLab(o, gj)
		}
		fmt.Fprintf(s.Stderr, "%s: job %d: asking GitLab how the job ended, with gitlab.token_file: %v\n", DriverName, j.ID, err)
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	gj, err := s.GitLab.CurrentJob(qctx, j.Token)
	var ge *gitlab.Error
	switch {
	case err == nil && gj.ID == j.ID && gj.Status == "running":
		o.Status, o.Reason = Failed, interruptedReason
	case err == nil && gj.ID == j.ID && (gj.Status == "canceling" || gj.Status == "canceled"):
		o.Status, o.Reason = Cancelled, ""
	case errors.As(err, &ge) && (ge.StatusCode == http.StatusUnauthorized || ge.StatusCode == http.StatusForbidden):
		o.Reason = "GitLab ended the job (cancelled or failed it)"
		if !s.GitLab.HasToken() {
			fmt.Fprintf(s.Stderr, "%s: job %d: GitLab no longer runs the job; set gitlab.token_file (a read_api token) for cleanup to ask GitLab whether it cancelled or failed it\n", DriverName, j.ID)
		}
	}
	return o
}

// settleWithGitLab reports a stopped job as GitLab's project jobs API shows it.
func settleWithGitLab(o Outcome, gj *gitlab.Job) Outcome {
	switch gj.Status {
	case "running":
		o.Status, o.Reason = Failed, interruptedReason
	case "canceling", "canceled":
		o.Status, o.Reason = Cancelled, ""
	case "failed":
		o.Status, o.Reason = Failed, "GitLab failed the job"
		switch r := gj.FailureReason; {
		case r == "runner_interrupted":
			o.Reason = interruptedReason
		case failureReason.MatchString(r):
			o.Reason += " (" + r + ")"
		}
	}
	return o
}

// failureReason is the shape of GitLab's failure_reason values (script_failure, …): only
// such a word is quoted in the reply.
var failureReason = regexp.MustCompile(`^[a-z][a-z_]{0,63}$`)
