package gitlab_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/gitlab"
	"github.com/chatops-executor/chatops-executor/gitlab/gitlabtest"
)

const (
	jobToken     = "glcbt-secret-job-token-123"
	privateToken = "glpat-secret-admin-token-456"
)

func fake(t *testing.T) *gitlabtest.Server {
	t.Helper()
	g := gitlabtest.New(t)
	g.PrivateToken = privateToken
	g.Jobs[jobToken] = gitlab.Job{ID: 42, Name: "deploy", User: gitlab.User{ID: 7, Username: "alice"},
		Pipeline: gitlab.Pipeline{ID: 9, Source: "chat", ProjectID: 3}}
	g.Users = []gitlab.User{{ID: 7, Username: "alice"}, {ID: 8, Username: "bob"}}
	g.Groups["ops/sre"] = map[int64]int{7: gitlab.DeveloperAccess}
	g.Projects["ops/infra"] = map[int64]int{7: gitlab.MaintainerAccess}
	g.Projects["3"] = map[int64]int{7: gitlab.MaintainerAccess}
	return g
}

func client(t *testing.T, url string, timeout time.Duration) *gitlab.Client {
	t.Helper()
	c, err := gitlab.New(url, privateToken, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCurrentJob(t *testing.T) {
	g := fake(t)
	c := client(t, g.URL+"/", time.Second) // a trailing slash in gitlab.url is fine
	j, err := c.CurrentJob(context.Background(), jobToken)
	if err != nil {
		t.Fatal(err)
	}
	if j.ID != 42 || j.User != (gitlab.User{ID: 7, Username: "alice"}) || j.Pipeline.Source != "chat" || j.Pipeline.ProjectID != 3 {
		t.Errorf("job = %+v", j)
	}
	reqs := g.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/api/v4/job" || reqs[0].JobToken != jobToken || reqs[0].PrivateToken != "" {
		t.Errorf("requests = %+v; want one GET /api/v4/job with the job token only", reqs)
	}
}

// A stopped job's token no longer works; the project jobs API, with the read_api token,
// still says how GitLab ended it.
func TestProjectJob(t *testing.T) {
	g := fake(t)
	g.Jobs[jobToken] = gitlab.Job{ID: 42, Name: "deploy", Status: "failed", FailureReason: "stuck_or_timeout_failure",
		User: gitlab.User{ID: 7, Username: "alice"}, Pipeline: gitlab.Pipeline{ID: 9, Source: "chat", ProjectID: 3}}
	c := client(t, g.URL, time.Second)
	var ge *gitlab.Error
	if _, err := c.CurrentJob(context.Background(), jobToken); !errors.As(err, &ge) || ge.StatusCode != http.StatusUnauthorized {
		t.Errorf("the token of a failed job: err = %v, want GitLab's 401", err)
	}
	j, err := c.ProjectJob(context.Background(), 3, 42)
	if err != nil {
		t.Fatal(err)
	}
	if j.ID != 42 || j.Status != "failed" || j.FailureReason != "stuck_or_timeout_failure" {
		t.Errorf("job = %+v", j)
	}
	last := g.Requests()[len(g.Requests())-1]
	if last.Path != "/api/v4/projects/3/jobs/42" || last.PrivateToken != privateToken || last.JobToken != "" {
		t.Errorf("request = %+v; want GET /api/v4/projects/3/jobs/42 with the read_api token only", last)
	}
	if _, err := c.ProjectJob(context.Background(), 4, 42); !errors.As(err, &ge) || ge.StatusCode != http.StatusNotFound {
		t.Errorf("a job of another project: err = %v, want GitLab's 404", err)
	}
	if _, err := c.ProjectJob(context.Background(), 0, 42); err == nil {
		t.Error("no project id: no error")
	}
	bare, _ := gitlab.New(g.URL, "", time.Second)
	if _, err := bare.ProjectJob(context.Background(), 3, 42); err == nil || !strings.Contains(err.Error(), "gitlab.token_file") {
		t.Errorf("no token: err = %v", err)
	}
	g.Handler = func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"id": 41, "status": "running"}`))
	}
	if _, err := c.ProjectJob(context.Background(), 3, 42); err == nil || !strings.Contains(err.Error(), "not job 42") {
		t.Errorf("an answer about another job: err = %v", err)
	}
}

func TestRelativeURLInstall(t *testing.T) {
	g := fake(t)
	g.Handler = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/gitlab/api/v4/job" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"id":1,"user":{"id":2,"username":"x"},"pipeline":{"source":"chat"}}`))
	}
	c := client(t, g.URL+"/gitlab", time.Second)
	if _, err := c.CurrentJob(context.Background(), jobToken); err != nil {
		t.Fatal(err)
	}
}

func TestMembers(t *testing.T) {
	g := fake(t)
	c := client(t, g.URL, time.Second)
	ctx := context.Background()
	tests := []struct {
		name   string
		call   func() (int, error)
		want   int
		path   string
		wantEr bool
	}{
		{"group member, path escaped", func() (int, error) { return c.GroupAccess(ctx, "ops/sre", 7) }, gitlab.DeveloperAccess, "/api/v4/groups/ops%2Fsre/members/all/7", false},
		{"group non-member is 404", func() (int, error) { return c.GroupAccess(ctx, "ops/sre", 8) }, gitlab.NoAccess, "/api/v4/groups/ops%2Fsre/members/all/8", false},
		{"project by path", func() (int, error) { return c.ProjectAccess(ctx, "ops/infra", 7) }, gitlab.MaintainerAccess, "/api/v4/projects/ops%2Finfra/members/all/7", false},
		{"project by id", func() (int, error) { return c.ProjectAccess(ctx, "3", 7) }, gitlab.MaintainerAccess, "/api/v4/projects/3/members/all/7", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(g.Requests())
			got, err := tt.call()
			if (err != nil) != tt.wantEr || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
			reqs := g.Requests()[before:]
			if len(reqs) != 1 || reqs[0].Path != tt.path || reqs[0].PrivateToken != privateToken || reqs[0].JobToken != "" {
				t.Errorf("requests = %+v; want %s with PRIVATE-TOKEN", reqs, tt.path)
			}
		})
	}
}

func TestMembersOfAGroupTheTokenCannotSee(t *testing.T) {
	g := fake(t)
	c := client(t, g.URL, time.Second)
	for _, call := range []func() (int, error){
		func() (int, error) { return c.GroupAccess(context.Background(), "ops/typo", 7) },
		func() (int, error) { return c.ProjectAccess(context.Background(), "ops/typo", 7) },
	} {
		_, err := call()
		var ge *gitlab.Error
		if !errors.As(err, &ge) || ge.StatusCode != 404 || !strings.Contains(err.Error(), `"ops/typo"`) || !strings.Contains(err.Error(), "Not Found") {
			t.Errorf("err = %v; a missing group or project is an error, not a non-member", err)
		}
	}
}

func TestMemberAwaitingIsNotAMember(t *testing.T) {
	g := fake(t)
	g.Handler = func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"id":7,"access_level":40,"state":"awaiting"}`))
	}
	got, err := client(t, g.URL, time.Second).GroupAccess(context.Background(), "ops", 7)
	if err != nil || got != gitlab.NoAccess {
		t.Errorf("got %d, %v; want no access", got, err)
	}
}

func TestUsers(t *testing.T) {
	g := fake(t)
	c := client(t, g.URL, time.Second)
	ctx := context.Background()
	if u, err := c.UserByUsername(ctx, "Alice"); err != nil || u.ID != 7 {
		t.Errorf("UserByUsername = %+v, %v", u, err)
	}
	if u, err := c.UserByID(ctx, 8); err != nil || u.Username != "bob" {
		t.Errorf("UserByID = %+v, %v", u, err)
	}
	if _, err := c.UserByUsername(ctx, "mallory"); !errors.Is(err, gitlab.ErrNotFound) {
		t.Errorf("unknown username: err = %v, want ErrNotFound", err)
	}
	if _, err := c.UserByID(ctx, 99); !errors.Is(err, gitlab.ErrNotFound) {
		t.Errorf("unknown id: err = %v, want ErrNotFound", err)
	}
}

// closedURL returns the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		url     func(*testing.T, string) string
		token   string
		want    []string
		status  int
	}{
		{name: "job token rejected", token: "glcbt-wrong-token-789", want: []string{"401", "rejected the job token"}, status: 401},
		{name: "server error", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"message":"500 Internal Server Error"}`, 500)
		}, want: []string{"500", "may be down"}, status: 500},
		{name: "bad gateway HTML", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
			w.Write([]byte("<html>nginx</html>"))
		}, want: []string{"502", "try again"}, status: 502},
		{name: "malformed JSON", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"id": 42, "user": `))
		}, want: []string{"not the JSON GitLab sends"}, status: 200},
		{name: "HTML sign-in page", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`<!DOCTYPE html><title>Sign in</title>`))
		}, want: []string{"not the JSON GitLab sends"}, status: 200},
		{name: "JSON without a user", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"id": 42}`))
		}, want: []string{`no "user"`}, status: 200},
		{name: "too large", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"id": 42, "name": "`))
			w.Write([]byte(strings.Repeat("x", gitlab.MaxResponseSize)))
			w.Write([]byte(`"}`))
		}, want: []string{"larger than"}, status: 200},
		{name: "redirect not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				t.Error("redirect was followed, carrying the token")
			}
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, want: []string{"302", "not followed"}, status: 302},
		{name: "echoes the token", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(400)
			w.Write([]byte(`{"message":"bad token ` + r.Header.Get("JOB-TOKEN") + `"}`))
		}, want: []string{"400", "[MASKED]"}, status: 400},
		{name: "slow", handler: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}, want: []string{"no answer", "within 200ms", "gitlab.timeout"}},
		{name: "connection refused", url: func(t *testing.T, _ string) string { return closedURL(t) },
			want: []string{"connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := fake(t)
			g.Handler = tt.handler
			url := g.URL
			if tt.url != nil {
				url = tt.url(t, url)
			}
			token := jobToken
			if tt.token != "" {
				token = tt.token
			}
			start := time.Now()
			_, err := client(t, url, 200*time.Millisecond).CurrentJob(context.Background(), token)
			if err == nil {
				t.Fatal("no error")
			}
			if time.Since(start) > 3*time.Second {
				t.Errorf("took %v; the timeout is 200ms", time.Since(start))
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, token) || strings.Contains(msg, privateToken) {
				t.Errorf("error %q contains a token", msg)
			}
			var ge *gitlab.Error
			if !errors.As(err, &ge) || ge.StatusCode != tt.status {
				t.Errorf("error %#v: want *gitlab.Error with status %d", err, tt.status)
			}
		})
	}
}

func TestPrivateTokenErrors(t *testing.T) {
	g := fake(t)
	c, err := gitlab.New(g.URL, "glpat-revoked-000", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GroupAccess(context.Background(), "ops/sre", 7)
	if err == nil || !strings.Contains(err.Error(), "gitlab.token_file") || strings.Contains(err.Error(), "glpat-revoked-000") {
		t.Errorf("err = %v; want a rejected-token error naming gitlab.token_file without the token", err)
	}
	c, _ = gitlab.New(g.URL, "", time.Second)
	if _, err := c.GroupAccess(context.Background(), "ops/sre", 7); err == nil || !strings.Contains(err.Error(), "gitlab.token_file") {
		t.Errorf("no token: err = %v", err)
	}
	if n := len(g.Requests()); n != 1 {
		t.Errorf("%d requests; without a token none should be sent", n-1)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "gitlab.example.com", "ftp://x", "https://x/?a=b", "http://"} {
		if _, err := gitlab.New(u, "", time.Second); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	if _, err := gitlab.New("https://user:hunter2@x/", "", 0); err == nil {
		t.Error("zero timeout accepted")
	}
}
