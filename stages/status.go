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
)

// Outcome is what cleanup concludes about a job from the records its stages left.
type Outcome struct {
	Status   Status
	ExitCode int    // for Failed: the failing stage's exit code
	Stage    string // the stage that decided a failure, cancel or timeout
	Reason   string // for Denied, and for executor failures
	Elapsed  time.Duration
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
	case Denied:
		if o.Reason != "" {
			s += ": " + o.Reason
		}
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

// timeoutTolerance is how close to the job timeout a SIGTERM must come to count as the
// timeout rather than a cancel: the runner starts its clock a little before prepare.
func timeoutTolerance(timeout time.Duration) time.Duration {
	return min(30*time.Second, timeout/10)
}

// Derive works out the job's final status from its records, at time now.
//
// The runner tells the executor nothing about how a job ended, and a cancel and a timeout
// both arrive as SIGTERM, so the status is derived: a denial recorded by prepare wins; a
// terminated stage is a timeout when it came at the job's timeout, else a cancel; a failing
// user-script stage (or a failing stage before it, such as get_sources) is a failure with
// that exit code; anything else succeeded. after_script cannot fail a job, as in GitLab.
func Derive(job JobRecord, recs []StageRecord, now time.Time) Outcome {
	o := Outcome{Status: Succeeded}
	if !job.PreparedAt.IsZero() {
		o.Elapsed = now.Sub(job.PreparedAt)
	}
	if job.Denied {
		o.Status, o.Reason = Denied, job.DenyReason
		return o
	}
	for _, r := range recs {
		if r.Terminated {
			o.Status, o.Stage = Cancelled, r.Stage
			timeout := time.Duration(job.TimeoutSeconds) * time.Second
			if timeout > 0 && r.TerminatedAt.Sub(job.PreparedAt) >= timeout-timeoutTolerance(timeout) {
				o.Status = TimedOut
			}
			return o
		}
	}
	for _, r := range recs {
		if r.Stage == "after_script" || r.Stage == "cleanup_file_variables" ||
			strings.HasPrefix(r.Stage, "archive_cache") || strings.HasPrefix(r.Stage, "upload_artifacts") {
			continue
		}
		if r.ExitCode != 0 || r.Error != "" {
			o.Status, o.ExitCode, o.Stage, o.Reason = Failed, r.ExitCode, r.Stage, r.Error
			return o
		}
	}
	return o
}
