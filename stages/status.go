package stages

import (
	"fmt"
	"strings"
	"time"
)

// Status is a job's final status as the chat reply reports it.
type Status string

// The statuses a job can end with.
const (
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	Cancelled Status = "cancelled"
	TimedOut  Status = "timed out"
	Denied    Status = "denied"
	// Stopped is a job the runner stopped from outside without it being a cancel for certain:
	// a hard abort (GitLab shows it cancelled or failed, as it decided) or the runner
	// shutting down (failed, runner_interrupted) look the same to the executor. Cleanup
	// asks GitLab which it was (see askGitLab); Stopped stays only when GitLab cannot say.
	Stopped Status = "stopped"
)

// Outcome is what cleanup concludes about a job from the records its stages left.
type Outcome struct {
	Status   Status
	ExitCode int    // for Failed: the failing stage's exit code
	Stage    string // the stage that decided a failure, cancel or timeout
	Reason   string // for Denied, and for executor failures
	Elapsed  time.Duration
	// CancelledBy is the Slack user who cancelled the job from chat (then Failed, as in
	// GitLab).
	CancelledBy string
}

func (o Outcome) String() string {
	s := string(o.Status)
	switch o.Status {
	case Failed:
		if o.ExitCode != 0 {
			s += fmt.Sprintf(" with exit code %d", o.ExitCode)
		}
		if o.Reason != "" {
			s += ": " + o.Reason
		}
	case Denied, Stopped:
		if o.Reason != "" {
			s += ": " + o.Reason
		}
	}
	if o.CancelledBy != "" {
		s += ": cancelled from chat by " + o.CancelledBy
	}
	if o.Elapsed > 0 {
		s += fmt.Sprintf(" after %s", o.Elapsed.Round(time.Second))
	}
	return s
}

// IsUserScript reports whether stage runs the job's own script commands: the user script
// (build_script, which the runner's custom executor uses instead of step_script, or
// step_script itself) and other steps such as step_release. after_script is the job's too,
// but GitLab ignores its result, so it is not part of this set.
func IsUserScript(stage string) bool {
	return stage == "build_script" || strings.HasPrefix(stage, "step_")
}

// decides reports whether a stage's failure fails the job: not after_script (GitLab
// ignores its result), nor the cleanup, cache and artifact stages after it.
func decides(stage string) bool {
	return stage != "after_script" && stage != "cleanup_file_variables" &&
		!strings.HasPrefix(stage, "archive_cache") && !strings.HasPrefix(stage, "upload_artifacts")
}

// timeoutTolerance is how close to the job timeout a SIGTERM must come to count as the
// timeout rather than a cancel: the runner starts its clock a little before prepare.
func timeoutTolerance(timeout time.Duration) time.Duration {
	return min(30*time.Second, timeout/10)
}

// RunnerStatus is CI_JOB_STATUS as the runner hands it to cleanup (CUSTOM_ENV_CI_JOB_STATUS):
// "success", "failed", "canceled" or "timedout" once the user script has ended one way or
// another (the runner sets it before after_script, whether or not there is one), "running"
// when the job never got that far. Empty when unknown or untrusted (see RunnerJobStatus).
type RunnerStatus string

// What gitlab-runner 19.4 sets CI_JOB_STATUS to (common/build.go runtimeStateAndError).
// A cancel from GitLab's UI or API during the user script is "canceled"; a cancel before
// it, as well. A hard abort (GitLab answered Job-Status: canceled) and the runner being
// stopped (runner_interrupted) reach after_script as "failed": the stage's own error wins
// there. A job timeout is "failed" too; RUNNER_SCRIPT_TIMEOUT is "timedout".
const (
	RunnerSuccess  RunnerStatus = "success"
	RunnerFailed   RunnerStatus = "failed"
	RunnerCanceled RunnerStatus = "canceled"
	RunnerTimedOut RunnerStatus = "timedout"
	RunnerRunning  RunnerStatus = "running"
)

// Derive works out the job's final status from its records and what the runner told
// cleanup, at time now.
//
// A cancel and a timeout both arrive as SIGTERM and the runner's SIGKILL leaves no record
// at all, so the records alone cannot tell everything; CI_JOB_STATUS settles what they
// cannot, and the records give the detail (stage, exit code). The rules, in order:
//   - a denial recorded by prepare wins;
//   - a stage stopped by a cancel from chat failed, as GitLab shows it (the runner saw
//     the script end with a build failure; the job token cannot cancel a job in GitLab),
//     and the outcome says who cancelled it;
//   - a stage the runner terminated is a timeout when it came at the job's timeout (or the
//     runner says "timedout"), a cancel when the runner says "canceled", and otherwise
//     "stopped": a hard abort and a runner shutdown look the same from here, and neither
//     is a cancel GitLab's job page would show as such for certain;
//   - a stage that started and never ended (its executor was killed) is never a success:
//     the runner's word decides, else it failed;
//   - a failing user-script stage (or a failing stage before it, such as get_sources) is a
//     failure with that exit code; after_script cannot fail a job, as in GitLab, unless the
//     runner says the job failed;
//   - a job whose user script never ran to its end did not succeed: it was stopped (or
//     timed out) before.
func Derive(job JobRecord, recs []StageRecord, runner RunnerStatus, now time.Time) Outcome {
	o := Outcome{Status: Succeeded}
	if !job.PreparedAt.IsZero() {
		o.Elapsed = now.Sub(job.PreparedAt)
	}
	if job.Denied {
		o.Status, o.Reason = Denied, job.DenyReason
		return o
	}
	timeout := time.Duration(job.TimeoutSeconds) * time.Second
	atTimeout := func(t time.Time) bool {
		return timeout > 0 && !t.IsZero() && t.Sub(job.PreparedAt) >= timeout-timeoutTolerance(timeout)
	}
	// stopped is the outcome of a job the runner ended from outside.
	stopped := func(stage string, at time.Time, fallback Status, reason string) Outcome {
		o.Stage = stage
		switch {
		case runner == RunnerTimedOut || atTimeout(at):
			o.Status = TimedOut
		case runner == RunnerCanceled:
			o.Status = Cancelled
		case runner == "" && fallback == Stopped:
			// No word from the runner (an older runner, or a job that set CI_JOB_STATUS
			// itself): a SIGTERM that was not the timeout is most likely a cancel.
			o.Status = Cancelled
		default:
			o.Status, o.Reason = fallback, reason
		}
		return o
	}
	// Stages after the user script (after_script and the rest) cannot change the job's
	// result, however they end — except the job's timeout.
	for _, r := range recs {
		if r.Terminated && r.CancelledBy != "" && decides(r.Stage) {
			// Stopped by the executor itself, for a cancel from chat: the runner saw the
			// script fail, and so GitLab shows it. Chat says the same, and why.
			o.Status, o.Stage, o.CancelledBy = Failed, r.Stage, r.CancelledBy
			return o
		}
	}
	for _, r := range recs {
		if r.Terminated && (decides(r.Stage) || atTimeout(r.TerminatedAt)) {
			return stopped(r.Stage, r.TerminatedAt, Stopped, "the runner stopped the job (aborted by GitLab, or the runner shut down)")
		}
	}
	for _, r := range recs {
		if r.Running && decides(r.Stage) {
			return stopped(r.Stage, now, Failed, fmt.Sprintf("the executor was killed while %s ran", r.Stage))
		}
	}
	ranScript := false
	for _, r := range recs {
		if !decides(r.Stage) {
			continue
		}
		if r.ExitCode != 0 || r.Error != "" {
			o.Status, o.ExitCode, o.Stage, o.Reason = Failed, r.ExitCode, r.Stage, r.Error
			return o
		}
		ranScript = ranScript || IsUserScript(r.Stage)
	}
	switch runner {
	case RunnerFailed:
		o.Status = Failed
		for _, r := range recs {
			if r.Stage == "after_script" && r.ExitCode != 0 {
				o.ExitCode, o.Stage = r.ExitCode, r.Stage
			}
		}
		if o.Stage == "" {
			o.Reason = "the runner reports the job failed"
		}
		return o
	case RunnerCanceled, RunnerTimedOut:
		return stopped("", time.Time{}, Cancelled, "")
	}
	if !ranScript {
		// Nothing failed and the user script never ran: the job was ended from outside
		// before it (a cancel, an abort or the runner stopping; the runner does not say
		// which: CI_JOB_STATUS is set only once the user script has run).
		o.Status, o.Reason = Stopped, "the job ended before its script ran: cancelled, or stopped by the runner"
		if atTimeout(now) {
			o.Status, o.Reason = TimedOut, ""
		}
		return o
	}
	return o
}
