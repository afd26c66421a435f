// Package coordinatortest is a fake GitLab for end-to-end tests that run the real
// gitlab-runner: it hands jobs to runners, takes their traces and states the way GitLab's
// runner API does, cancels or aborts a job when the test says so, and answers
// GET /api/v4/job so the executor can verify, with the job's own token, who started the job.
//
// The runner side, all under /api/v4 (see gitlab-runner 19.4's network/gitlab.go and
// network/trace.go):
//
//   - POST /jobs/request: 201 with the next queued job's JSON, each job once; 204 when none
//     is queued (the runner asks again 3 s later).
//   - PUT /jobs/:id: records the update. The final one (state success or failed) carries
//     failure_reason, exit_code and output.checksum/bytesize, which are checked against the
//     trace received: a mismatch is a protocol problem (see Problems).
//   - PATCH /jobs/:id/trace: Content-Range "<start>-<end>" inclusive. 202 with
//     Range "0-<bytes received>" when start is the number of bytes received so far, else 416
//     with the same Range, and the runner resends from there.
//
// Every PATCH and PUT answer carries X-GitLab-Trace-Update-Interval (SetUpdateInterval)
// and Job-Status: running, canceling (a cancel: the runner SIGTERMs the stage, runs
// after_script and cleanup), or canceled or failed (an abort: GitLab has given the job up,
// after_script is skipped, and no more trace is taken). A cancel or an abort is raised by
// the test, at once (Job.Cancel, Job.Abort) or when the trace first contains a marker
// (Job.CancelWhen, Job.AbortWhen). Job.Status says what GitLab then shows for the job.
//
// The job side: GET /api/v4/job with header JOB-TOKEN answers the job the token belongs to
// (id, name, status, user, pipeline), as long as GitLab runs the job (status running or
// canceling): from the moment a runner received it until an abort or its final PUT. After
// that the token gets 401, as GitLab's Ci::AuthJobFinder answers "Job is not running".
//
// The admin side: GET /api/v4/projects/:id/jobs/:job_id with header PRIVATE-TOKEN (the
// token SetPrivateToken names; none works by default) answers the job in any state, with
// its current status and failure_reason: what an admin's read_api token sees. Other tokens
// are not checked (the runner's Runner-Token is not).
//
// What differs from GitLab: job requests are answered at once instead of long-polled,
// nothing is registered, there are no artifacts, caches or dependencies, and the job JSON
// is the test's.
package coordinatortest

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chatops-executor/chatops-executor/gitlab"
)

// FailureReasons is what a real GitLab lists in a job's features.failure_reasons. The
// runner sends any reason not listed as unknown_failure, so job JSON for this fake should
// carry it.
var FailureReasons = []string{
	"unknown_failure", "script_failure", "api_failure", "stuck_or_timeout_failure",
	"runner_system_failure", "missing_dependency_failure", "runner_unsupported",
	"stale_schedule", "job_execution_timeout", "archived_failure", "unmet_prerequisites",
	"scheduler_failure", "data_integrity_failure", "forward_deployment_failure",
	"user_blocked", "project_deleted", "insufficient_bridge_permissions",
	"downstream_bridge_project_not_found", "invalid_bridge_trigger",
	"upstream_bridge_project_not_found", "bridge_pipeline_is_child_pipeline",
	"downstream_pipeline_creation_failed", "secrets_provider_not_found",
	"reached_max_descendant_pipelines_depth", "ip_restriction_failure",
	"reached_max_pipeline_hierarchy_size", "reached_downstream_pipeline_trigger_rate_limit",
	"job_canceled", "runner_interrupted", "image_pull_failure",
	"runner_configuration_error", "runner_external_dependency_failure",
}

// Remote states a PATCH or PUT answer can carry in Job-Status.
const (
	Running   = "running"
	Canceling = "canceling" // a cancel: after_script still runs
	Canceled  = "canceled"  // an abort: the runner stops the job at once
	Failed    = "failed"    // an abort too, GitLab having failed the job itself
)

// AbortFailureReason is the failure_reason GitLab gives a job it failed itself (an abort
// with Failed): the one its stuck-jobs worker gives a running job it drops.
const AbortFailureReason = "stuck_or_timeout_failure"

// Server is the fake GitLab on 127.0.0.1. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	interval int    // X-GitLab-Trace-Update-Interval, seconds
	private  string // the read_api token the project jobs API accepts; "" accepts none
	queue    []*Job
	jobs     map[int64]*Job
	requests []JobRequest
	problems []string
}

// JobRequest is one POST /api/v4/jobs/request as received.
type JobRequest struct {
	Token    string // the runner's token (glrt-…)
	SystemID string
	Info     json.RawMessage // version, executor, shell, features
	JobID    int64           // the job handed out, 0 for 204
}

// New starts a fake GitLab that is closed when the test ends. Protocol problems it saw (a
// wrong checksum, a malformed Content-Range, an update of an unknown job) fail the test.
func New(t testing.TB) *Server {
	t.Helper()
	s := start()
	t.Cleanup(func() {
		s.Close()
		for _, p := range s.Problems() {
			t.Errorf("coordinatortest: %s", p)
		}
	})
	return s
}

func start() *Server {
	s := &Server{interval: 1, jobs: map[int64]*Job{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// SetUpdateInterval sets the X-GitLab-Trace-Update-Interval every PATCH and PUT answer
// carries, in seconds (1 by default, so cancels arrive quickly; GitLab's is 3 to 30); 0
// sends none, and the runner keeps its default of 3 s.
func (s *Server) SetUpdateInterval(seconds int) {
	s.mu.Lock()
	s.interval = seconds
	s.mu.Unlock()
}

// SetPrivateToken sets the admin's read_api token that GET
// /api/v4/projects/:id/jobs/:job_id accepts (as PRIVATE-TOKEN); "" (the default) accepts none.
func (s *Server) SetPrivateToken(token string) {
	s.mu.Lock()
	s.private = token
	s.mu.Unlock()
}

// Problems returns the protocol violations seen so far.
func (s *Server) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}

// Requests returns the job requests received so far.
func (s *Server) Requests() []JobRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]JobRequest(nil), s.requests...)
}

// Enqueue queues a job for the next runner that asks. response is the job JSON as GitLab
// sends it; its id and token name the job. GET /api/v4/job will say the job was started
// by the user in its GITLAB_USER_ID and GITLAB_USER_LOGIN variables, in the pipeline of
// CI_PIPELINE_ID and CI_PIPELINE_SOURCE, in project job_info.project_id, unless
// SetIdentity says otherwise.
func (s *Server) Enqueue(t testing.TB, response []byte) *Job {
	t.Helper()
	var r struct {
		ID      int64  `json:"id"`
		Token   string `json:"token"`
		JobInfo struct {
			Name      string `json:"name"`
			ProjectID int64  `json:"project_id"`
		} `json:"job_info"`
		Variables []struct{ Key, Value string } `json:"variables"`
	}
	if err := json.Unmarshal(response, &r); err != nil {
		t.Fatalf("coordinatortest: job JSON: %v", err)
	}
	if r.ID <= 0 || r.Token == "" {
		t.Fatalf("coordinatortest: job JSON needs an id and a token")
	}
	vars := map[string]string{}
	for _, v := range r.Variables {
		vars[v.Key] = v.Value
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(vars[k], 10, 64); return n }
	j := &Job{
		ID: r.ID, Token: r.Token, response: response, remote: Running, final: make(chan struct{}),
		identity: gitlab.Job{
			ID: r.ID, Name: r.JobInfo.Name, WebURL: vars["CI_JOB_URL"],
			User:     gitlab.User{ID: num("GITLAB_USER_ID"), Username: vars["GITLAB_USER_LOGIN"]},
			Pipeline: gitlab.Pipeline{ID: num("CI_PIPELINE_ID"), Source: vars["CI_PIPELINE_SOURCE"], ProjectID: r.JobInfo.ProjectID},
		},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.jobs[j.ID]; dup {
		t.Fatalf("coordinatortest: job %d queued twice", j.ID)
	}
	s.jobs[j.ID] = j
	s.queue = append(s.queue, j)
	return j
}

func (s *Server) problem(format string, args ...any) {
	s.mu.Lock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/api/v4/")
	parts := strings.Split(path, "/")
	switch {
	case r.Method == http.MethodPost && path == "jobs/request":
		s.request(w, r)
	case r.Method == http.MethodGet && path == "job":
		s.identify(w, r)
	case r.Method == http.MethodGet && len(parts) == 4 && parts[0] == "projects" && parts[2] == "jobs":
		s.projectJob(w, r, parts[1], parts[3])
	case r.Method == http.MethodPut && len(parts) == 2 && parts[0] == "jobs":
		s.withJob(w, parts[1], s.update, r)
	case r.Method == http.MethodPatch && len(parts) == 3 && parts[0] == "jobs" && parts[2] == "trace":
		s.withJob(w, parts[1], s.patch, r)
	default:
		s.problem("unexpected request %s %s", r.Method, r.URL.RequestURI())
		reply(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
	}
}

func (s *Server) request(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Token    string          `json:"token"`
		SystemID string          `json:"system_id"`
		Info     json.RawMessage `json:"info"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		s.problem("job request: %v", err)
		reply(w, http.StatusBadRequest, map[string]string{"message": "400 Bad request"})
		return
	}
	req := JobRequest{Token: body.Token, SystemID: body.SystemID, Info: body.Info}
	s.mu.Lock()
	var j *Job
	if len(s.queue) > 0 {
		j, s.queue = s.queue[0], s.queue[1:]
		req.JobID = j.ID
	}
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	if j == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	j.mu.Lock()
	j.handed = true
	j.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(j.response)
}

// identify is GET /api/v4/job: 401 for a token of no job GitLab runs, as GitLab does.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) {
	token := r.Header.Get("JOB-TOKEN")
	s.mu.Lock()
	var found *Job
	for _, j := range s.jobs {
		if token != "" && j.Token == token {
			found = j
		}
	}
	s.mu.Unlock()
	if found == nil {
		reply(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	found.mu.Lock()
	found.verified = append(found.verified, token)
	identity := found.current()
	found.mu.Unlock()
	// Ci::HasStatus::EXECUTING_STATUSES: a job token works while the job runs or cancels.
	if identity.Status != Running && identity.Status != Canceling {
		reply(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	identity.FailureReason = ""
	reply(w, http.StatusOK, identity)
}

// projectJob is GET /api/v4/projects/:id/jobs/:job_id: the job as it stands, to the admin's
// token only; 404 for a job the project does not have, as GitLab does.
func (s *Server) projectJob(w http.ResponseWriter, r *http.Request, project, id string) {
	token := r.Header.Get("PRIVATE-TOKEN")
	n, _ := strconv.ParseInt(id, 10, 64)
	s.mu.Lock()
	ok := s.private != "" && token == s.private
	j := s.jobs[n]
	s.mu.Unlock()
	if !ok {
		reply(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	if j == nil {
		reply(w, http.StatusNotFound, map[string]string{"message": "404 Not found"})
		return
	}
	j.mu.Lock()
	j.lookups++
	job := j.current()
	j.mu.Unlock()
	if strconv.FormatInt(job.Pipeline.ProjectID, 10) != project {
		reply(w, http.StatusNotFound, map[string]string{"message": "404 Not found"})
		return
	}
	reply(w, http.StatusOK, job)
}

func (s *Server) withJob(w http.ResponseWriter, id string, fn func(http.ResponseWriter, *http.Request, *Job), r *http.Request) {
	n, _ := strconv.ParseInt(id, 10, 64)
	s.mu.Lock()
	j := s.jobs[n]
	interval := s.interval
	s.mu.Unlock()
	if j == nil {
		s.problem("%s for unknown job %q", r.Method, id)
		reply(w, http.StatusNotFound, map[string]string{"message": "404 Not found"})
		return
	}
	if interval > 0 {
		w.Header().Set("X-GitLab-Trace-Update-Interval", strconv.Itoa(interval))
	}
	fn(w, r, j)
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, j *Job) {
	var u Update
	if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
		s.problem("job %d: PUT: %v", j.ID, err)
		reply(w, http.StatusBadRequest, map[string]string{"message": "400 Bad request"})
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.last != nil {
		// GitLab answers updates of a finished job with 403; the runner stops.
		j.updates = append(j.updates, u)
		s.problem("job %d: PUT state %q after the final update", j.ID, u.State)
		reply(w, http.StatusForbidden, map[string]string{"message": "403 Forbidden - Job is not running"})
		return
	}
	u.RemoteState = j.remote
	j.updates = append(j.updates, u)
	if u.Final() {
		want := fmt.Sprintf("crc32:%08x", crc32.ChecksumIEEE(j.trace))
		u.TraceComplete = u.Output.Checksum == want && u.Output.Bytesize == len(j.trace)
		// After an abort GitLab refuses the rest of the trace, so it cannot match.
		if !u.TraceComplete && !j.aborted() {
			s.problem("job %d: final PUT says %s, %d bytes; received %s, %d bytes",
				j.ID, u.Output.Checksum, u.Output.Bytesize, want, len(j.trace))
		}
		last := u
		j.last = &last
		close(j.final)
	}
	w.Header().Set("Job-Status", j.remote)
	reply(w, http.StatusOK, map[string]string{})
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request, j *Job) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.problem("job %d: PATCH body: %v", j.ID, err)
		reply(w, http.StatusBadRequest, map[string]string{"message": "400 Bad request"})
		return
	}
	var start, end int
	if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "%d-%d", &start, &end); err != nil || end-start+1 != len(body) {
		s.problem("job %d: PATCH with Content-Range %q for %d bytes", j.ID, r.Header.Get("Content-Range"), len(body))
		reply(w, http.StatusBadRequest, map[string]string{"message": "400 Bad request"})
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	p := Patch{Start: start, End: end}
	switch {
	case j.last != nil || j.aborted():
		// GitLab takes no more trace of a job that ended or was given up.
		p.Status = http.StatusForbidden
	case start != len(j.trace):
		p.Status = http.StatusRequestedRangeNotSatisfiable
	case j.lose > 0:
		j.lose--
		p.Status, p.Lost = http.StatusAccepted, true
	default:
		p.Status = http.StatusAccepted
		j.trace = append(j.trace, body...)
	}
	j.patches = append(j.patches, p)
	answer := j.remote
	if p.Status == http.StatusAccepted && !p.Lost {
		// A marker may straddle two PATCHes: look at the whole trace. A cancel is told in
		// this very answer; an abort from the next one on, since the runner takes an
		// answer saying canceled as "not stored", and this PATCH was stored.
		if j.cancelAt != "" && j.remote == Running && strings.Contains(string(j.trace), j.cancelAt) {
			j.remote, j.cancelAt = Canceling, ""
			answer = Canceling
		}
		if j.abortAt != "" && strings.Contains(string(j.trace), j.abortAt) {
			j.remote, j.abortAt = j.abortAs, ""
		}
	}
	w.Header().Set("Range", fmt.Sprintf("0-%d", len(j.trace)))
	w.Header().Set("Job-Status", answer)
	w.WriteHeader(p.Status)
}

func reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body) //nolint:errcheck // the client notices a short body
}
