package preflight

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/gitlab"
	"github.com/chatops-executor/chatops-executor/gitlab/gitlabtest"
)

const (
	slackToken = "xoxb-test-1-2"
	glToken    = "glpat-test-token"
)

// setup is a fake Slack and GitLab where everything is right: a bot with every scope in
// channel C0OPS0001, a GitLab with a read_api token that can see group ops/sre and
// project ops/infra.
type setup struct {
	t      *testing.T
	dir    string
	slack  *slacktest.Server
	gitlab *gitlabtest.Server
	// slackURL and gitlabURL go into the config; tests may point them elsewhere.
	slackURL, gitlabURL string
	slackTok, glTok     string
	rules               string
	env                 map[string]string
}

func newSetup(t *testing.T) *setup {
	s := &setup{t: t, dir: t.TempDir(), slack: slacktest.New(t, slackToken), gitlab: gitlabtest.New(t),
		slackTok: slackToken, glTok: glToken}
	s.slackURL, s.gitlabURL = s.slack.APIURL(), s.gitlab.URL
	s.slack.AddChannel("C0OPS0001", slacktest.Channel{Name: "ops", Member: true})
	s.gitlab.PrivateToken = glToken
	s.gitlab.Token = &gitlab.Token{ID: 1, Name: "chatops", Scopes: []string{"read_api"}, Active: true, ExpiresAt: "2030-01-01"}
	s.gitlab.Groups["ops/sre"] = map[int64]int{}
	s.gitlab.Projects["ops/infra"] = map[int64]int{}
	s.rules = `
[[policy.rule]]
name = "deploys"
action = "allow"
projects = ["ops/infra"]
channels = ["C0OPS0001"]
groups = ["ops/sre"]
min_access_level = 40
`
	return s
}

func (s *setup) file(name, content string) string {
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return p
}

func (s *setup) run() []Finding {
	s.t.Helper()
	text := "[executor]\nbuilds_dir = \"/b\"\ncache_dir = \"/c\"\nstate_dir = \"/s\"\n"
	text += "[gitlab]\n"
	if s.gitlabURL != "" {
		text += "url = " + strconv.Quote(s.gitlabURL) + "\ntimeout = \"5s\"\n"
		if s.glTok != "" {
			text += "token_file = " + strconv.Quote(s.file("gl", s.glTok)) + "\n"
		}
	}
	text += "[slack]\napi_url = " + strconv.Quote(s.slackURL) + "\n"
	if s.slackTok != "" {
		text += "token_file = " + strconv.Quote(s.file("slack", s.slackTok)) + "\n"
	}
	if s.gitlabURL == "" {
		s.rules = strings.NewReplacer("groups = [\"ops/sre\"]\n", "", "min_access_level = 40\n", "").Replace(s.rules)
	}
	text += s.rules
	cfg, err := config.Parse("c.toml", []byte(text))
	if err != nil {
		s.t.Fatalf("config: %v\n%s", err, text)
	}
	now := func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }
	return Run(context.Background(), cfg, func(k string) string { return s.env[k] }, Options{Timeout: 5 * time.Second, Now: now})
}

func dump(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		kind := "ok"
		switch {
		case f.Warning:
			kind = "warning"
		case !f.OK:
			kind = "FAIL"
		}
		b.WriteString(kind + " " + f.Key + ": " + f.Msg)
		if f.Fix != "" {
			b.WriteString(" | fix: " + f.Fix)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// find returns the findings whose Msg contains want.
func find(fs []Finding, want string) []Finding {
	var out []Finding
	for _, f := range fs {
		if strings.Contains(f.Msg, want) {
			out = append(out, f)
		}
	}
	return out
}

// expect asserts exactly one finding says want, of the given kind, for key, with a fix
// when it is not a success.
func expect(t *testing.T, fs []Finding, kind, key, want string) {
	t.Helper()
	got := find(fs, want)
	if len(got) != 1 {
		t.Fatalf("want one finding saying %q, got %d:\n%s", want, len(got), dump(fs))
	}
	f := got[0]
	ok := map[string]bool{"ok": f.OK, "warning": f.Warning, "fail": !f.OK && !f.Warning}[kind]
	if !ok || f.Key != key {
		t.Errorf("finding %q: want %s for %s, got %+v", want, kind, key, f)
	}
	if kind != "ok" && f.Fix == "" {
		t.Errorf("finding %q has no fix", want)
	}
}

func TestAllGood(t *testing.T) {
	s := newSetup(t)
	fs := s.run()
	if Failed(fs) {
		t.Fatalf("failures in a good setup:\n%s", dump(fs))
	}
	expect(t, fs, "ok", "slack.token_file", "token valid: bot @chatops (U0BOT0001) in workspace Example (T0TEAM001)")
	expect(t, fs, "ok", "slack.token_file", "every scope the executor needs: chat:write, files:write, channels:read, groups:read")
	expect(t, fs, "ok", "policy.rule[1] (deploys).channels", "#ops (C0OPS0001) exists and the bot is a member")
	expect(t, fs, "ok", "gitlab.url", "GitLab 17.5.2 (revision 0123abcd) answers at "+s.gitlab.URL)
	expect(t, fs, "ok", "gitlab.token_file", `the token "chatops" may read the API (scopes read_api), expires 2030-01-01`)
	expect(t, fs, "ok", "policy.rule[1] (deploys).groups", `the token can see the group "ops/sre"`)
	expect(t, fs, "ok", "policy.rule[1] (deploys).projects", `the token can see the project "ops/infra"`)
	// The real API was asked, with the token, never logged.
	if c := s.slack.Calls("auth.test"); len(c) != 1 || !c[0].Auth {
		t.Errorf("auth.test calls: %+v", c)
	}
}

func TestSlackFailures(t *testing.T) {
	closed := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr + "/api/"
	}
	tests := []struct {
		name        string
		change      func(*setup)
		kind, key   string
		want        string
		stopsBefore string // a finding that must not be there: nothing after a failed auth.test
	}{
		{"wrong token", func(s *setup) { s.slackTok = "xoxb-wrong" },
			"fail", "slack.token_file", "Slack refuses the token (invalid_auth)", "exists and the bot"},
		{"unreachable", func(s *setup) { s.slackURL = closed(t) },
			"fail", "slack.api_url", "cannot reach Slack at", "token valid"},
		{"server error", func(s *setup) { s.slack.FailAlways("auth.test", slacktest.HTTPError(503)) },
			"fail", "slack.api_url", "Slack answered HTTP 503", "token valid"},
		{"user token", func(s *setup) {
			s.slack.SetIdentity(slacktest.Bot{ID: "U0PERSON1", Name: "alice"}, slacktest.Team{ID: "T1", Name: "Example"})
		}, "fail", "slack.token_file", "belongs to the user alice (U0PERSON1), not to a bot", "every scope"},
		{"missing scope", func(s *setup) { s.slack.SetScopes("chat:write", "channels:read", "groups:read") },
			"fail", "slack.token_file", "the bot lacks the files:write scope, needed to upload long output", "every scope"},
		{"no reactions:read, no approval rule", func(s *setup) {
			s.slack.SetScopes("chat:write", "files:write", "channels:read", "groups:read", "channels:history", "groups:history")
		}, "warning", "slack.token_file", "the bot lacks the reactions:read scope, needed to read the reactions on a start message that approve, refuse or cancel a job (reactions.get); without it no rule uses approvals, but cancels from chat", "every scope"},
		{"no reactions:read, an approval rule", func(s *setup) {
			s.slack.SetScopes("chat:write", "files:write", "channels:read", "groups:read", "channels:history", "groups:history", "usergroups:read")
			s.rules += "\n[[policy.rule]]\nname = \"prod\"\naction = \"approve\"\njobs = [\"deploy\"]\napprovers = [\"U0BOB\"]\n"
		}, "fail", "slack.token_file", "the bot lacks the reactions:read scope", "every scope"},
		{"no usergroups:read, approver groups", func(s *setup) {
			s.slack.SetScopes("chat:write", "files:write", "channels:read", "groups:read", "channels:history", "groups:history", "reactions:read")
			s.rules += "\n[[policy.rule]]\nname = \"prod\"\naction = \"approve\"\njobs = [\"deploy\"]\napprover_groups = [\"S0SRE\"]\n"
		}, "fail", "slack.token_file", "the bot lacks the usergroups:read scope", "every scope"},
		{"no scopes header", func(s *setup) { s.slack.SetScopes() },
			"warning", "slack.token_file", "Slack did not say which scopes the token has", "every scope"},
		{"channel missing", func(s *setup) { s.rules = strings.Replace(s.rules, "C0OPS0001", "C0GONE001", 1) },
			"fail", "policy.rule[1] (deploys).channels", "channel C0GONE001 does not exist, or it is private and the bot is not in it", ""},
		{"private channel without the bot", func(s *setup) {
			s.slack.AddChannel("C0OPS0001", slacktest.Channel{Name: "ops", Private: true})
		}, "fail", "policy.rule[1] (deploys).channels", "channel C0OPS0001 does not exist, or it is private", ""},
		{"bot not in channel", func(s *setup) { s.slack.AddChannel("C0OPS0001", slacktest.Channel{Name: "ops"}) },
			"fail", "policy.rule[1] (deploys).channels", "the bot is not a member of #ops (C0OPS0001)", ""},
		{"archived channel", func(s *setup) {
			s.slack.AddChannel("C0OPS0001", slacktest.Channel{Name: "ops", Member: true, Archived: true})
		}, "fail", "policy.rule[1] (deploys).channels", "channel #ops (C0OPS0001) is archived", ""},
		{"no channels:read", func(s *setup) { s.slack.SetScopes("chat:write", "files:write", "groups:read") },
			"fail", "policy.rule[1] (deploys).channels", "cannot look channel C0OPS0001 up: the bot lacks the channels:read scope", ""},
		{"token from the environment", func(s *setup) { s.slackTok, s.env = "", map[string]string{"SLACK_BOT_TOKEN": slackToken} },
			"ok", "slack.token_file", "token valid: bot @chatops", ""},
		{"wrong token from the environment", func(s *setup) { s.slackTok, s.env = "", map[string]string{"SLACK_BOT_TOKEN": "xoxb-env-wrong"} },
			"fail", "slack.token_file", "Slack refuses the token (invalid_auth)", "token valid"},
		{"no token", func(s *setup) { s.slackTok = "" },
			"warning", "slack.token_file", "no Slack token, so nothing to ask Slack", "token valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t)
			tt.change(s)
			fs := s.run()
			expect(t, fs, tt.kind, tt.key, tt.want)
			if tt.kind == "fail" && !Failed(fs) {
				t.Error("Failed is false")
			}
			if tt.stopsBefore != "" && len(find(fs, tt.stopsBefore)) > 0 {
				t.Errorf("went on after the failure:\n%s", dump(fs))
			}
			if strings.Contains(dump(fs), s.slackTok) && s.slackTok != "" {
				t.Errorf("a finding shows the token:\n%s", dump(fs))
			}
		})
	}
}

func TestGitLabFailures(t *testing.T) {
	tests := []struct {
		name      string
		change    func(*setup)
		kind, key string
		want      string
	}{
		{"not set", func(s *setup) { s.gitlabURL = "" },
			"warning", "gitlab.url", "gitlab.url is not set"},
		{"unreachable", func(s *setup) { s.gitlab.Close() },
			"fail", "gitlab.url", "connection refused"},
		{"not a GitLab", func(s *setup) { s.gitlab.Version = "" },
			"fail", "gitlab.url", "GET /api/v4/version: GitLab answered 404"},
		{"no token: version needs one", func(s *setup) {
			s.glTok = ""
			s.rules = strings.NewReplacer("groups = [\"ops/sre\"]\n", "", "min_access_level = 40\n", "").Replace(s.rules)
		}, "ok", "gitlab.url", "it tells its version only to a token"},
		{"token rejected", func(s *setup) { s.glTok = "glpat-revoked" },
			"fail", "gitlab.token_file", "rejects the token"},
		{"token without read_api", func(s *setup) { s.gitlab.Token.Scopes = []string{"read_repository"} },
			"fail", "gitlab.token_file", `the token "chatops" has the scopes read_repository, not read_api`},
		{"token without read_api: GitLab still found", func(s *setup) { s.gitlab.Token.Scopes = []string{"read_user"} },
			"ok", "gitlab.url", "its version is not told to this token"},
		{"inactive token", func(s *setup) { s.gitlab.Token.Active = false },
			"fail", "gitlab.token_file", `the token "chatops" is not active`},
		{"token expiring", func(s *setup) { s.gitlab.Token.ExpiresAt = "2026-12-05" },
			"warning", "gitlab.token_file", "the token expires on 2026-12-05"},
		{"old GitLab", func(s *setup) { s.gitlab.Token = nil },
			"warning", "gitlab.token_file", "cannot describe tokens (before 15.5)"},
		{"group not visible", func(s *setup) { delete(s.gitlab.Groups, "ops/sre") },
			"fail", "policy.rule[1] (deploys).groups", `the token cannot see the group "ops/sre"`},
		{"project not visible", func(s *setup) { delete(s.gitlab.Projects, "ops/infra") },
			"fail", "policy.rule[1] (deploys).projects", `the token cannot see the project "ops/infra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t)
			tt.change(s)
			fs := s.run()
			expect(t, fs, tt.kind, tt.key, tt.want)
			if tt.kind == "fail" && !Failed(fs) {
				t.Error("Failed is false")
			}
			if s.glTok != "" && strings.Contains(dump(fs), s.glTok) {
				t.Errorf("a finding shows the token:\n%s", dump(fs))
			}
		})
	}
}

// The scopes check --online demands are exactly the manifest's: a scope added to one and
// not the other fails here.
func TestManifestHasExactlyTheNeededScopes(t *testing.T) {
	data, err := os.ReadFile("../slack-app-manifest.yml")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		OAuth struct {
			Scopes struct {
				Bot  []string `yaml:"bot"`
				User []string `yaml:"user"`
			} `yaml:"scopes"`
		} `yaml:"oauth_config"`
	}
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var need []string
	for _, s := range NeededScopes {
		need = append(need, s.Name)
	}
	got := slices.Clone(m.OAuth.Scopes.Bot)
	slices.Sort(got)
	slices.Sort(need)
	if !slices.Equal(got, need) || len(m.OAuth.Scopes.User) > 0 {
		t.Errorf("manifest bot scopes %v (user scopes %v), executor needs %v", got, m.OAuth.Scopes.User, need)
	}
	if !slices.Equal(slacktest.DefaultScopes, func() []string {
		var n []string
		for _, s := range NeededScopes {
			n = append(n, s.Name)
		}
		return n
	}()) {
		t.Errorf("slacktest.DefaultScopes %v differ from NeededScopes", slacktest.DefaultScopes)
	}
}
