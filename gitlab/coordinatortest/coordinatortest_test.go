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
