package stages

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/gitlab"
	"github.com/chatops-executor/chatops-executor/job"
)

// fakeJobs is a JobSource: job and err answer the job's own token, admin and adminErr the
// admin's (only with token), and the calls are counted.
type fakeJobs struct {
	job      *gitlab.Job
	err      error
	token    bool
	admin    *gitlab.Job
	adminErr error

	asked      []string // "job" or "project <id> <job id>", in order
	askedToken string
}

func (f *fakeJobs) CurrentJob(_ context.Context, token string) (*gitlab.Job, error) {
	f.asked, f.askedToken = append(f.asked, "job"), token
	return f.job, f.err
}

func (f *fakeJobs) ProjectJob(_ context.Context, project, id int64) (*gitlab.Job, error) {
	if !f.token {
		return nil, errors.New("ProjectJob without a token")
	}
	f.asked = append(f.asked, fmt.Sprintf("project %d %d", project, id))
	return f.admin, f.adminErr
}

func (f *fakeJobs) HasToken() bool { return f.token }

var stoppedOutcome = Outcome{Status: Stopped, Reason: "the runner stopped the job (aborted by GitLab, or the runner shut down)"}

// Without the admin's token only the job's own token can be asked, and GitLab rejects it
// once it no longer runs the job: such a job stays stopped, and says GitLab ended it.
func TestAskGitLabWithTheJobToken(t *testing.T) {
	f := newFixture(t, nil)
	j := &job.Response{ID: 4242, Token: "glcbt-x", Info: job.Info{ProjectID: 7}}
	for _, tt := range []struct {
		name string
		src  *fakeJobs
		want Status
		why  string
	}{
		{"still running", &fakeJobs{job: &gitlab.Job{ID: 4242, Status: "running"}}, Failed, "runner_interrupted"},
		{"canceling", &fakeJobs{job: &gitlab.Job{ID: 4242, Status: "canceling"}}, Cancelled, ""},
		{"token rejected", &fakeJobs{err: &gitlab.Error{StatusCode: 401}}, Stopped, "GitLab ended the job (cancelled or failed it)"},
		{"token forbidden", &fakeJobs{err: &gitlab.Error{StatusCode: 403}}, Stopped, "GitLab ended the job"},
		{"another job", &fakeJobs{job: &gitlab.Job{ID: 1, Status: "running"}}, Stopped, "aborted by GitLab, or the runner shut down"},
		{"unreachable", &fakeJobs{err: errors.New("connection refused")}, Stopped, "aborted by GitLab, or the runner shut down"},
		{"GitLab down", &fakeJobs{err: &gitlab.Error{StatusCode: 502}}, Stopped, "aborted by GitLab, or the runner shut down"},
	} {
		f.stages.GitLab = tt.src
		o := f.stages.askGitLab(context.Background(), j, stoppedOutcome)
		if o.Status != tt.want || !strings.Contains(o.Reason, tt.why) || (tt.why == "" && o.Reason != "") {
			t.Errorf("%s: %+v", tt.name, o)
		}
		if strings.Join(tt.src.asked, ",") != "job" || tt.src.askedToken != "glcbt-x" {
			t.Errorf("%s: asked %q with %q, want the job token once", tt.name, tt.src.asked, tt.src.askedToken)
		}
	}
	if log := f.stderr.String(); !strings.Contains(log, "set gitlab.token_file (a read_api token) for cleanup to ask GitLab whether it cancelled or failed it") {
		t.Errorf("the runner log does not say how to get the precise status:\n%s", log)
	}
}

// With the admin's token (gitlab.token_file) cleanup asks the project jobs API, which sees
// the job however it ended, and reports exactly that.
func TestAskGitLabWithTheAdminToken(t *testing.T) {
	f := newFixture(t, nil)
	j := &job.Response{ID: 4242, Token: "glcbt-x", Info: job.Info{ProjectID: 7}}
	admin := func(status, reason string) *fakeJobs {
		return &fakeJobs{token: true, err: &gitlab.Error{StatusCode: 401},
			admin: &gitlab.Job{ID: 4242, Status: status, FailureReason: reason}}
	}
	for _, tt := range []struct {
		name  string
		src   *fakeJobs
		want  Status
		why   string
		asked string
	}{
		{"aborted as cancelled", admin("canceled", ""), Cancelled, "", "project 7 4242"},
		{"canceling", admin("canceling", ""), Cancelled, "", "project 7 4242"},
		{"failed by GitLab", admin("failed", "stuck_or_timeout_failure"), Failed, "GitLab failed the job (stuck_or_timeout_failure)", "project 7 4242"},
		{"failed, no reason", admin("failed", ""), Failed, "GitLab failed the job", "project 7 4242"},
		{"failed, odd reason", admin("failed", "<!channel> look"), Failed, "GitLab failed the job", "project 7 4242"},
		{"failed, interrupted", admin("failed", "runner_interrupted"), Failed, "the runner was stopped while the job ran (runner_interrupted)", "project 7 4242"},
		{"still running", admin("running", ""), Failed, "the runner was stopped while the job ran (runner_interrupted)", "project 7 4242"},
		{"an unknown status", admin("success", ""), Stopped, "aborted by GitLab, or the runner shut down", "project 7 4242"},
		// The token cannot see the project: the job's own token is asked instead.
		{"admin refused", &fakeJobs{token: true, adminErr: &gitlab.Error{StatusCode: 404},
			err: &gitlab.Error{StatusCode: 401}}, Stopped, "GitLab ended the job", "project 7 4242,job"},
		{"admin refused, running", &fakeJobs{token: true, adminErr: &gitlab.Error{StatusCode: 403},
			job: &gitlab.Job{ID: 4242, Status: "running"}}, Failed, "runner_interrupted", "project 7 4242,job"},
	} {
		f.stages.GitLab = tt.src
		o := f.stages.askGitLab(context.Background(), j, stoppedOutcome)
		if o.Status != tt.want || !strings.Contains(o.Reason, tt.why) || (tt.why == "" && o.Reason != "") ||
			(tt.name == "failed, odd reason" && o.Reason != "GitLab failed the job") {
			t.Errorf("%s: %+v", tt.name, o)
		}
		if got := strings.Join(tt.src.asked, ","); got != tt.asked {
			t.Errorf("%s: asked %q, want %q", tt.name, got, tt.asked)
		}
	}
	if log := f.stderr.String(); strings.Contains(log, "set gitlab.token_file") {
		t.Errorf("the runner log asks for a token that is set:\n%s", log)
	}
}

// Only a stopped job is asked about: every other outcome is the records' own.
func TestAskGitLabOnlyForStopped(t *testing.T) {
	f := newFixture(t, nil)
	j := &job.Response{ID: 4242, Token: "glcbt-x", Info: job.Info{ProjectID: 7}}
	src := &fakeJobs{token: true, job: &gitlab.Job{ID: 4242, Status: "running"}, admin: &gitlab.Job{ID: 4242, Status: "canceled"}}
	f.stages.GitLab = src
	for _, o := range []Outcome{{Status: Succeeded}, {Status: Failed, ExitCode: 3}, {Status: Cancelled}, {Status: TimedOut}} {
		if got := f.stages.askGitLab(context.Background(), j, o); got != o {
			t.Errorf("%+v was changed to %+v", o, got)
		}
	}
	if len(src.asked) != 0 {
		t.Errorf("GitLab was asked %q", src.asked)
	}
}
