package coordinatortest

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/gitlab"
)

const job = `{"id": 7, "token": "glcbt-seven", "job_info": {"name": "deploy", "project_id": 3},
	"variables": [{"key": "GITLAB_USER_ID", "value": "101"}, {"key": "GITLAB_USER_LOGIN", "value": "alice"},
	{"key": "CI_PIPELINE_ID", "value": "55"}, {"key": "CI_PIPELINE_SOURCE", "value": "chat"}]}`

type client struct {
	t   *testing.T
	url string
}

func (c client) do(method, path, body string, header ...string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c client) patch(start int, body string) *http.Response {
	c.t.Helper()
	resp, _ := c.do("PATCH", "/api/v4/jobs/7/trace?debug_trace=false", body,
		"Content-Range", fmt.Sprintf("%d-%d", start, start+len(body)-1))
	return resp
}

func TestJobLifecycle(t *testing.T) {
	s := New(t)
	j := s.Enqueue(t, []byte(job))
	c := client{t, s.URL}

	if resp, _ := c.do("GET", "/api/v4/job", "", "JOB-TOKEN", "glcbt-seven"); resp.StatusCode != 401 || j.Status() != "pending" {
		t.Errorf("identity before any runner took the job: %d (status %s), want 401", resp.StatusCode, j.Status())
	}
	resp, body := c.do("POST", "/api/v4/jobs/request", `{"token":"glrt-x","info":{}}`)
	if resp.StatusCode != 201 || body != job {
		t.Fatalf("first request: %d %q", resp.StatusCode, body)
	}
	if resp, _ := c.do("POST", "/api/v4/jobs/request", `{"token":"glrt-x"}`); resp.StatusCode != 204 {
		t.Errorf("second request: %d, want 204", resp.StatusCode)
	}
	resp, body = c.do("GET", "/api/v4/job", "", "JOB-TOKEN", "glcbt-seven")
	var g gitlab.Job
	_ = json.Unmarshal([]byte(body), &g)
	want := gitlab.Job{ID: 7, Name: "deploy", Status: "running", User: gitlab.User{ID: 101, Username: "alice"},
		Pipeline: gitlab.Pipeline{ID: 55, Source: "chat", ProjectID: 3}}
	if resp.StatusCode != 200 || g != want {
		t.Errorf("identity: %d %+v, want %+v", resp.StatusCode, g, want)
	}
	if resp, _ := c.do("GET", "/api/v4/job", "", "JOB-TOKEN", "glcbt-other"); resp.StatusCode != 401 {
		t.Errorf("identity with a wrong token: %d", resp.StatusCode)
	}

	if resp := c.patch(0, "hello "); resp.StatusCode != 202 || resp.Header.Get("Range") != "0-6" ||
		resp.Header.Get("X-GitLab-Trace-Update-Interval") != "1" || resp.Header.Get("Job-Status") != "running" {
		t.Errorf("PATCH: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := c.patch(3, "xx"); resp.StatusCode != 416 || resp.Header.Get("Range") != "0-6" {
		t.Errorf("PATCH at a wrong offset: %d %v", resp.StatusCode, resp.Header)
	}
	c.patch(6, "world\n")
	trace := "hello world\n"
	put := fmt.Sprintf(`{"state":"failed","failure_reason":"script_failure","exit_code":3,"output":{"checksum":"crc32:%08x","bytesize":%d}}`,
		crc32.ChecksumIEEE([]byte(trace)), len(trace))
	if resp, _ := c.do("PUT", "/api/v4/jobs/7", put); resp.StatusCode != 200 {
		t.Errorf("final PUT: %d", resp.StatusCode)
	}
	if st := j.Status(); st != "failed" {
		t.Errorf("status = %q", st)
	}
	u, ok := j.Final()
	if !ok || u.State != "failed" || u.FailureReason != "script_failure" || u.ExitCode != 3 || !u.TraceComplete {
		t.Errorf("final = %+v %v", u, ok)
	}
	if string(j.Trace()) != trace || len(j.Patches()) != 3 {
		t.Errorf("trace %q, patches %+v", j.Trace(), j.Patches())
	}
	if resp, _ := c.do("GET", "/api/v4/job", "", "JOB-TOKEN", "glcbt-seven"); resp.StatusCode != 401 {
		t.Errorf("identity after the job ended: %d, want 401", resp.StatusCode)
	}
	if got := j.Verifications(); len(got) != 3 {
		t.Errorf("verifications %q", got)
	}
}

func TestCancelAndAbortMarkers(t *testing.T) {
	s := New(t)
	j := s.Enqueue(t, []byte(job))
	c := client{t, s.URL}
	c.do("POST", "/api/v4/jobs/request", `{}`)
	j.CancelWhen("stop-here")
	j.AbortWhen("give-up", Canceled)
	if st := c.patch(0, "before stop-"); st.Header.Get("Job-Status") != "running" {
		t.Errorf("Job-Status %q before the marker", st.Header.Get("Job-Status"))
	}
	// The marker straddles two PATCHes; the answer to the one completing it cancels.
	if st := c.patch(12, "here\n"); st.Header.Get("Job-Status") != "canceling" {
		t.Errorf("Job-Status %q after the cancel marker", st.Header.Get("Job-Status"))
	}
	if st := c.patch(17, "give-up\n"); st.StatusCode != 202 || st.Header.Get("Job-Status") != "canceling" {
		t.Errorf("PATCH with the abort marker: %d %q (stored, abort from the next answer)", st.StatusCode, st.Header.Get("Job-Status"))
	}
	if st := c.patch(25, "more\n"); st.StatusCode != 403 || st.Header.Get("Job-Status") != "canceled" {
		t.Errorf("PATCH after the abort: %d %q", st.StatusCode, st.Header.Get("Job-Status"))
	}
	// The rest of the trace never arrives after an abort: no problem about the checksum.
	put := `{"state":"failed","failure_reason":"job_canceled","output":{"checksum":"crc32:00000000","bytesize":99}}`
	if resp, _ := c.do("PUT", "/api/v4/jobs/7", put); resp.Header.Get("Job-Status") != "canceled" {
		t.Errorf("final PUT answered %q", resp.Header.Get("Job-Status"))
	}
	if u, _ := j.Final(); u.TraceComplete {
		t.Error("a short trace counted as complete")
	}
	if st := j.Status(); st != "canceled" {
		t.Errorf("status after an abort = %q", st)
	}
}

// identity is GET /api/v4/job with token: the HTTP status and the job it names.
func (c client) identity(token string) (int, gitlab.Job) {
	c.t.Helper()
	resp, body := c.do("GET", "/api/v4/job", "", "JOB-TOKEN", token)
	var g gitlab.Job
	_ = json.Unmarshal([]byte(body), &g)
	return resp.StatusCode, g
}

// projectJob is GET /api/v4/projects/:id/jobs/:job_id with token as PRIVATE-TOKEN.
func (c client) projectJob(path, token string) (int, gitlab.Job) {
	c.t.Helper()
	resp, body := c.do("GET", "/api/v4/projects/"+path, "", "PRIVATE-TOKEN", token)
	var g gitlab.Job
	_ = json.Unmarshal([]byte(body), &g)
	return resp.StatusCode, g
}

// The job token works while GitLab runs the job, canceling included, and says so; once
// GitLab aborted the job it is rejected, as GitLab rejects it. The admin's token still
// sees the job, with GitLab's status and failure_reason.
func TestJobTokenAndAdminViewFollowTheJob(t *testing.T) {
	for _, tt := range []struct {
		name         string
		stop         func(*Job)
		token        int    // GET /api/v4/job afterwards
		status, why  string // what the admin's token sees afterwards
		identityText string // the identity's status while the token works
	}{
		{"cancel", (*Job).Cancel, 200, Canceling, "", Canceling},
		{"abort canceled", func(j *Job) { j.Abort(Canceled) }, 401, Canceled, "", ""},
		{"abort failed", func(j *Job) { j.Abort(Failed) }, 401, Failed, AbortFailureReason, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t)
			s.SetPrivateToken("glpat-admin")
			j := s.Enqueue(t, []byte(job))
			c := client{t, s.URL}
			if code, _ := c.projectJob("3/jobs/7", "glpat-admin"); code != 200 || j.Status() != "pending" {
				t.Errorf("admin view of a pending job: %d", code)
			}
			c.do("POST", "/api/v4/jobs/request", `{}`)
			if code, g := c.identity("glcbt-seven"); code != 200 || g.Status != Running {
				t.Errorf("identity of the running job: %d %+v", code, g)
			}
			tt.stop(j)
			code, g := c.identity("glcbt-seven")
			if code != tt.token || (code == 200 && g.Status != tt.identityText) {
				t.Errorf("identity after %s: %d %+v, want %d", tt.name, code, g, tt.token)
			}
			if code, g := c.projectJob("3/jobs/7", "glpat-admin"); code != 200 || g.ID != 7 || g.Status != tt.status || g.FailureReason != tt.why {
				t.Errorf("admin view after %s: %d %+v, want %s (%q)", tt.name, code, g, tt.status, tt.why)
			}
			if j.Status() != tt.status || j.FailureReason() != tt.why {
				t.Errorf("Status %q FailureReason %q", j.Status(), j.FailureReason())
			}
			for _, bad := range []struct{ path, token string }{{"3/jobs/7", "glpat-other"}, {"3/jobs/7", ""}} {
				if code, _ := c.projectJob(bad.path, bad.token); code != 401 {
					t.Errorf("admin view with token %q: %d, want 401", bad.token, code)
				}
			}
			for _, path := range []string{"4/jobs/7", "3/jobs/8"} {
				if code, _ := c.projectJob(path, "glpat-admin"); code != 404 {
					t.Errorf("admin view of %s: %d, want 404", path, code)
				}
			}
			if n := j.Lookups(); n != 3 {
				t.Errorf("%d lookups of job 7 with the admin's token, want 3", n)
			}
		})
	}
}

func TestAdminViewNeedsAToken(t *testing.T) {
	s := New(t)
	s.Enqueue(t, []byte(job))
	if code, _ := (client{t, s.URL}).projectJob("3/jobs/7", ""); code != 401 {
		t.Errorf("no private token set: %d, want 401", code)
	}
}

// The runner's failure_reason is what GitLab shows for a job it did not fail itself.
func TestFailureReasonAfterTheFinalUpdate(t *testing.T) {
	s := New(t)
	s.SetPrivateToken("glpat-admin")
	j := s.Enqueue(t, []byte(job))
	c := client{t, s.URL}
	c.do("POST", "/api/v4/jobs/request", `{}`)
	c.do("PUT", "/api/v4/jobs/7", `{"state":"failed","failure_reason":"runner_interrupted","output":{"checksum":"crc32:00000000","bytesize":0}}`)
	if code, g := c.projectJob("3/jobs/7", "glpat-admin"); code != 200 || g.Status != "failed" || g.FailureReason != "runner_interrupted" ||
		j.FailureReason() != "runner_interrupted" {
		t.Errorf("admin view: %d %+v", code, g)
	}
	if code, _ := c.identity("glcbt-seven"); code != 401 {
		t.Errorf("identity after the final update: %d, want 401", code)
	}
}

func TestProblemsAreRecorded(t *testing.T) {
	s := start()
	defer s.Close()
	j := &Job{ID: 7, Token: "t", response: []byte(job), remote: Running, final: make(chan struct{})}
	s.jobs[7] = j
	c := client{t, s.URL}
	j.LosePatches(1)
	if st := c.patch(0, "lost"); st.StatusCode != 202 || !j.Patches()[0].Lost {
		t.Errorf("lost PATCH answered %d", st.StatusCode)
	}
	if st := c.patch(4, "next"); st.StatusCode != 416 || st.Header.Get("Range") != "0-0" {
		t.Errorf("PATCH after a lost one: %d %q", st.StatusCode, st.Header.Get("Range"))
	}
	c.do("PATCH", "/api/v4/jobs/7/trace", "abc", "Content-Range", "0-9")
	c.do("PUT", "/api/v4/jobs/8", `{}`)
	c.do("PUT", "/api/v4/jobs/7", `{"state":"success","output":{"checksum":"crc32:deadbeef","bytesize":1}}`)
	c.do("PUT", "/api/v4/jobs/7", `{"state":"success"}`)
	c.do("GET", "/api/v4/runners", "")
	got := strings.Join(s.Problems(), "\n")
	for _, want := range []string{`Content-Range "0-9" for 3 bytes`, `PUT for unknown job "8"`,
		"final PUT says crc32:deadbeef, 1 bytes; received crc32:00000000, 0 bytes",
		`PUT state "success" after the final update`, "unexpected request GET /api/v4/runners"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
}

func TestStripTimestamps(t *testing.T) {
	trace := "2026-12-01T13:52:01.123456Z 00O Running with gitlab-runner\n" +
		"2026-12-01T13:52:01.123457Z 01O progress 10%\r\n" +
		"2026-12-01T13:52:01.123458Z 01O+progress 100%\n" +
		"2026-12-01T13:52:01.123459Z 01E an error\n"
	want := "Running with gitlab-runner\nprogress 10%\rprogress 100%\nan error\n"
	if got := StripTimestamps([]byte(trace)); got != want {
		t.Errorf("StripTimestamps = %q, want %q", got, want)
	}
	if got := StripTimestamps([]byte("plain\nlog\n")); got != "plain\nlog\n" {
		t.Errorf("a trace without timestamps changed: %q", got)
	}
}
