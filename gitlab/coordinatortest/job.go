package coordinatortest

import (
	"sync"
	"time"

	"github.com/chatops-executor/chatops-executor/gitlab"
)

// Job is one job of the fake, from the test's side.
type Job struct {
	ID    int64
	Token string

	response []byte

	mu       sync.Mutex
	identity gitlab.Job
	handed   bool // a runner received it; the token works until final
	remote   string
	cancelAt string // marker that raises a cancel
	abortAt  string // marker that raises an abort
	abortAs  string // Canceled or Failed
	lose     int    // PATCHes still to lose
	trace    []byte
	patches  []Patch
	updates  []Update
	verified []string // JOB-TOKEN of every GET /api/v4/job for this job
	lookups  int      // GET /api/v4/projects/:id/jobs/:job_id for this job, with the admin's token
	final    chan struct{}
	last     *Update
}

// Patch is one trace PATCH as received and answered.
type Patch struct {
	Start, End int // Content-Range, inclusive
	Status     int // 202, 416, …
	Lost       bool
}

// Update is one PUT /api/v4/jobs/:id as received.
type Update struct {
	State         string `json:"state"`
	FailureReason string `json:"failure_reason"`
	ExitCode      int    `json:"exit_code"`
	Output        struct {
		Checksum string `json:"checksum"`
		Bytesize int    `json:"bytesize"`
	} `json:"output"`
	// RemoteState is the Job-Status the answer carried.
	RemoteState string `json:"-"`
	// TraceComplete says, for the final update, that its checksum and size match the
	// trace received.
	TraceComplete bool `json:"-"`
}

// Final reports whether the final update arrived (state success or failed).
func (u Update) Final() bool { return u.State == "success" || u.State == "failed" }

// SetIdentity replaces what GET /api/v4/job says about the job (its user, pipeline, …).
// Its Status and FailureReason are ignored: GitLab answers with the job's current ones.
func (j *Job) SetIdentity(g gitlab.Job) {
	j.mu.Lock()
	j.identity = g
	j.mu.Unlock()
}

// Cancel makes every later PATCH and PUT answer say Job-Status: canceling.
func (j *Job) Cancel() { j.setRemote(Canceling) }

// Abort makes every later PATCH and PUT answer say Job-Status: status, Canceled (the job
// was cancelled for good) or Failed (GitLab failed it, e.g. as stuck).
func (j *Job) Abort(status string) { j.setRemote(status) }

func (j *Job) setRemote(state string) {
	j.mu.Lock()
	if !j.aborted() {
		j.remote = state
	}
	j.mu.Unlock()
}

// aborted says GitLab gave the job up; j.mu is held.
func (j *Job) aborted() bool { return j.remote == Canceled || j.remote == Failed }

// Status is the job's status as GitLab shows it: "pending" until a runner takes it, then
// "running" ("canceling" once cancelled, while the runner still runs after_script), then
// "success", "failed" or "canceled". An abort is GitLab's own decision, which the runner's
// final update does not change; a job whose runner reports it failed with job_canceled
// shows canceled.
func (j *Job) Status() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.current().Status
}

// FailureReason is GitLab's failure_reason for a failed job: AbortFailureReason when
// GitLab failed it itself, else the runner's; "" for a job that did not fail.
func (j *Job) FailureReason() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.current().FailureReason
}

// current is the job as GitLab's API shows it now; j.mu is held.
func (j *Job) current() gitlab.Job {
	g := j.identity
	g.Status, g.FailureReason = "", ""
	switch {
	case j.aborted():
		g.Status = j.remote
		if j.remote == Failed {
			g.FailureReason = AbortFailureReason
		}
	case !j.handed:
		g.Status = "pending"
	case j.last == nil && j.remote == Canceling:
		g.Status = Canceling
	case j.last == nil:
		g.Status = Running
	case j.last.State == "failed" && j.last.FailureReason == "job_canceled":
		g.Status = Canceled
	default:
		g.Status = j.last.State
		if g.Status == "failed" {
			g.FailureReason = j.last.FailureReason
		}
	}
	return g
}

// Lookups returns how many GET /api/v4/projects/:id/jobs/:job_id named this job with the
// admin's token.
func (j *Job) Lookups() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lookups
}

// CancelWhen cancels the job once its trace contains marker.
func (j *Job) CancelWhen(marker string) {
	j.mu.Lock()
	j.cancelAt = marker
	j.mu.Unlock()
}

// AbortWhen aborts the job, with Job-Status status, once its trace contains marker.
func (j *Job) AbortWhen(marker, status string) {
	j.mu.Lock()
	j.abortAt, j.abortAs = marker, status
	j.mu.Unlock()
}

// LosePatches makes the fake acknowledge the next n non-empty trace PATCHes with 202 and
// then forget them, as a GitLab that lost a chunk would: the runner's next PATCH starts
// past what was received, is answered 416, and the runner resends from there.
func (j *Job) LosePatches(n int) {
	j.mu.Lock()
	j.lose = n
	j.mu.Unlock()
}

// Trace returns the trace bytes received so far, as GitLab stores them (masked and, with
// FF_TIMESTAMPS on, timestamped by the runner).
func (j *Job) Trace() []byte {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]byte(nil), j.trace...)
}

// Log returns the trace without the runner's timestamp prefixes: the job log as GitLab's
// raw log view shows it.
func (j *Job) Log() string { return StripTimestamps(j.Trace()) }

// Patches returns the trace PATCHes received so far.
func (j *Job) Patches() []Patch {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Patch(nil), j.patches...)
}

// Updates returns the PUTs received so far.
func (j *Job) Updates() []Update {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Update(nil), j.updates...)
}

// Verifications returns the JOB-TOKEN header of every GET /api/v4/job that named this job.
func (j *Job) Verifications() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.verified...)
}

// Final returns the final update, and whether it arrived.
func (j *Job) Final() (Update, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.last == nil {
		return Update{}, false
	}
	return *j.last, true
}

// Wait waits up to timeout for the final update.
func (j *Job) Wait(timeout time.Duration) (Update, bool) {
	select {
	case <-j.final:
	case <-time.After(timeout):
	}
	return j.Final()
}
