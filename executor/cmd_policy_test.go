package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/gitlab"
	"github.com/chatops-executor/chatops-executor/gitlab/gitlabtest"
)

const explainPolicy = `
[policy]
default = "deny"

[[policy.rule]]
name = "production-deploys"
action = "allow"
jobs = ["deploy"]
projects = ["ops/infra"]
channels = ["C0123ABCD"]
users = ["alice"]
input = '(staging|production) v[0-9]+\.[0-9]+\.[0-9]+'

[[policy.rule]]
name = "no-other-deploys"
action = "deny"
jobs = ["deploy*"]

[[policy.rule]]
name = "read-only"
action = "allow"
jobs = ["status", "logs-*"]
`

// policyApp writes a config file with the [executor] table, gitlabURL (none when empty)
// and extra, and returns an app for it with its output buffers.
func policyApp(t *testing.T, gitlabURL, extra string) (*app, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	cfg := "[executor]\nbuilds_dir = \"" + dir + "/builds\"\ncache_dir = \"" + dir + "/cache\"\nstate_dir = \"" + dir + "/state\"\n"
	if gitlabURL != "" {
		cfg += "[gitlab]\nurl = \"" + gitlabURL + "\"\ntimeout = \"2s\"\n"
	}
	cfg += extra
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	a := &app{stdout: &stdout, stderr: &stderr, configFlag: path, getenv: func(string) string { return "" }}
	return a, &stdout, &stderr
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, errUsage):
		return exitUsage
	}
	t.Fatalf("unexpected error %T: %v", err, err)
	return -1
}

func TestPolicyExplain(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want []string // lines in stdout
	}{
		{"allowed deploy", []string{"explain", "--job", "deploy", "--project", "ops/infra", "--user", "alice", "--channel", "C0123ABCD", "--input", "production v1.2.3"}, 0, []string{
			`rule 1 "production-deploys" (allow): holds, decides: job "deploy" matches "deploy", project "ops/infra" matches "ops/infra", channel "C0123ABCD", the input matches the rule's pattern, GitLab user "alice" is "alice"`,
			`rule 2 "no-other-deploys" (deny): not reached`,
			`decision: allow (rule "production-deploys")`,
		}},
		{"wrong channel", []string{"explain", "--job", "deploy", "--project", "ops/infra", "--user", "alice", "--channel", "C999", "--input", "production v1.2.3"}, 1, []string{
			`rule 1 "production-deploys" (allow): does not hold: channel "C999" is not one of ["C0123ABCD"]`,
			`rule 2 "no-other-deploys" (deny): holds, decides: job "deploy" matches "deploy*"`,
			`rule 3 "read-only" (allow): not reached`,
			`decision: deny (rule "no-other-deploys")`,
		}},
		{"multi-line input", []string{"explain", "--job", "deploy", "--project", "ops/infra", "--user", "alice", "--channel", "C0123ABCD", "--input", "production v1.2.3\nrm -rf /"}, 1, []string{
			`rule 1 "production-deploys" (allow): does not hold: the input does not match the rule's pattern "(staging|production) v[0-9]+\\.[0-9]+\\.[0-9]+" as a whole (it has several lines)`,
		}},
		{"no user: not verified", []string{"explain", "--job", "deploy", "--project", "ops/infra", "--channel", "C0123ABCD", "--input", "staging v1.0.0"}, 1, []string{
			`rule 1 "production-deploys" (allow): does not hold: the rule needs a verified GitLab identity, and this one is not verified (no --user given)`,
		}},
		{"user by numeric id", []string{"explain", "--job", "deploy", "--project", "ops/infra", "--user", "42", "--channel", "C0123ABCD", "--input", "staging v1.0.0"}, 1, []string{
			`rule 1 "production-deploys" (allow): does not hold: GitLab user id 42 is not one of ["alice"]`,
		}},
		{"read-only job", []string{"explain", "--job", "logs-web"}, 0, []string{
			`request: job "logs-web", project (none), user (none), channel (none), chat user (none), input ""`,
			`rule 1 "production-deploys" (allow): does not hold: job "logs-web" matches none of ["deploy"]`,
			`rule 3 "read-only" (allow): holds, decides: job "logs-web" matches "logs-*"`,
			`decision: allow (rule "read-only")`,
		}},
		{"default", []string{"explain", "--job", "other"}, 1, []string{
			`decision: deny (rule default)`,
			`reason: no rule decided, so policy.default "deny" applies`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, stdout, stderr := policyApp(t, "https://gitlab.invalid", explainPolicy)
			err := runPolicy(context.Background(), a, tt.args)
			if got := exitCode(t, err); got != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", got, tt.code, stdout, stderr)
			}
			lines := strings.Split(stdout.String(), "\n")
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					found = found || l == w
				}
				if !found {
					t.Errorf("no line %q in\n%s", w, stdout)
				}
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr: %s", stderr)
			}
		})
	}
}

func TestPolicyExplainFullOutput(t *testing.T) {
	a, stdout, _ := policyApp(t, "", `
[[policy.rule]]
name = "status"
action = "allow"
jobs = ["status"]

[[policy.rule]]
action = "deny"
chat_users = ["U0MALLORY"]
`)
	err := runPolicy(context.Background(), a, []string{"explain", "--job", "deploy", "--chat-user", "U0MALLORY"})
	if exitCode(t, err) != 1 {
		t.Fatalf("err = %v", err)
	}
	want := `policy ` + a.configFlag + `: 2 rule(s), default "deny"
request: job "deploy", project (none), user (none), channel (none), chat user "U0MALLORY", input ""

rule 1 "status" (allow): does not hold: job "deploy" matches none of ["status"]
rule 2 (deny): holds, decides: chat user "U0MALLORY"

decision: deny (rule policy.rule[2])
reason: rule "policy.rule[2]" denies it: chat user "U0MALLORY"
`
	if stdout.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", stdout, want)
	}
}

func TestPolicyExplainAsksGitLabForGroups(t *testing.T) {
	g := gitlabtest.New(t)
	g.PrivateToken = "glpat-explain-admin-token"
	g.Users = []gitlab.User{{ID: 7, Username: "alice"}, {ID: 8, Username: "bob"}}
	g.Groups["ops/sre"] = map[int64]int{7: gitlab.MaintainerAccess}
	g.Projects["ops/infra"] = map[int64]int{7: gitlab.MaintainerAccess, 8: gitlab.DeveloperAccess}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(g.PrivateToken), 0o600)
	rules := `token_file = "` + tokenFile + `"
[[policy.rule]]
name = "sre"
action = "allow"
groups = ["ops/sre"]
min_access_level = 40
`
	tests := []struct {
		user string
		code int
		want string
	}{
		{"alice", 0, `GitLab user "alice" (id 7) is a member of "ops/sre", GitLab user "alice" (id 7) has Maintainer (40) in the project (at least Maintainer (40))`},
		{"7", 0, `is a member of "ops/sre"`},
		{"bob", 1, `GitLab user "bob" (id 8) is not a member of ["ops/sre"]`},
		{"ghost", 1, `note: GitLab has no user "ghost"`},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			a, stdout, stderr := policyApp(t, g.URL, rules)
			err := runPolicy(context.Background(), a, []string{"explain", "--job", "deploy", "--project", "ops/infra", "--user", tt.user})
			if got := exitCode(t, err); got != tt.code {
				t.Errorf("exit %d, want %d\n%s%s", got, tt.code, stdout, stderr)
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Errorf("output does not contain %q:\n%s", tt.want, stdout)
			}
			if strings.Contains(stdout.String()+stderr.String(), g.PrivateToken) {
				t.Error("the token is in the output")
			}
		})
	}
	for _, r := range g.Requests() {
		if r.Path == "/api/v4/job" || r.JobToken != "" {
			t.Errorf("explain asked %s with a job token; it verifies nothing", r.Path)
		}
	}
}

func TestPolicyExplainOfflineWithoutReadableToken(t *testing.T) {
	a, stdout, _ := policyApp(t, "https://gitlab.invalid", `token_file = "/nonexistent/gitlab-token"
[[policy.rule]]
name = "sre"
action = "allow"
groups = ["ops/sre"]

[[policy.rule]]
name = "alice"
action = "allow"
users = ["alice"]
`)
	err := runPolicy(context.Background(), a, []string{"explain", "--job", "deploy", "--user", "alice"})
	if exitCode(t, err) != 0 {
		t.Fatalf("err = %v\n%s", err, stdout)
	}
	for _, want := range []string{
		"note: config " + a.configFlag + ": gitlab.token_file: secret file /nonexistent/gitlab-token",
		"explaining offline",
		`rule 1 "sre" (allow): does not hold: group and access-level conditions cannot be evaluated offline`,
		`decision: allow (rule "alice")`,
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output does not contain %q:\n%s", want, stdout)
		}
	}
}

func TestPolicyExplainErrors(t *testing.T) {
	tests := []struct {
		name   string
		config string // policy part; "-" for a missing config file
		args   []string
		code   int
		stderr string
		usage  string
	}{
		{"no subcommand", explainPolicy, nil, 2, "", "policy needs a subcommand"},
		{"unknown subcommand", explainPolicy, []string{"check"}, 2, "", `unknown policy subcommand "check"`},
		{"missing --job", explainPolicy, []string{"explain", "--user", "alice"}, 2, "", "--job NAME is required"},
		{"unknown flag", explainPolicy, []string{"explain", "--job", "x", "--usr", "a"}, 2, "", "flag provided but not defined: -usr"},
		{"stray argument", explainPolicy, []string{"explain", "--job", "x", "production", "v1"}, 2, "", "takes only flags"},
		{"bad regexp", "[[policy.rule]]\nname = \"deployers\"\naction = \"allow\"\ninput = \"(prod\"\n", []string{"explain", "--job", "x"}, 2,
			`policy.rule[1] (deployers).input: bad regular expression "(prod": missing closing )`, ""},
		{"bad glob", "[[policy.rule]]\nname = \"deployers\"\naction = \"allow\"\njobs = [\"deploy-[\"]\n", []string{"explain", "--job", "x"}, 2,
			`policy.rule[1] (deployers).jobs: bad glob "deploy-[": unterminated [`, ""},
		{"unknown action", "[[policy.rule]]\nname = \"deployers\"\naction = \"permit\"\n", []string{"explain", "--job", "x"}, 2,
			`policy.rule[1] (deployers).action`, ""},
		{"missing config", "-", []string{"explain", "--job", "x"}, 2, "read config", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, stdout, stderr := policyApp(t, "", tt.config)
			if tt.config == "-" {
				a.configFlag = filepath.Join(t.TempDir(), "missing.toml")
			}
			err := runPolicy(context.Background(), a, tt.args)
			if got := exitCode(t, err); got != tt.code {
				t.Errorf("exit %d, want %d (err %v)", got, tt.code, err)
			}
			if tt.usage != "" && (!errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.usage)) {
				t.Errorf("err = %v; want a usage error containing %q", err, tt.usage)
			}
			if tt.stderr != "" && !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderr)
			}
			if tt.stderr != "" && !strings.HasPrefix(stderr.String(), "chatops-executor: ") {
				t.Errorf("stderr %q is not in the one error style", stderr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %s", stdout)
			}
		})
	}
}

func TestPolicyExplainWritesNoAudit(t *testing.T) {
	auditLog := filepath.Join(t.TempDir(), "audit.jsonl")
	a, _, _ := policyApp(t, "", "[policy]\naudit_log = \""+auditLog+"\"\n")
	if err := runPolicy(context.Background(), a, []string{"explain", "--job", "x"}); exitCode(t, err) != 1 {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(auditLog); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("explain touched the audit log: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(a.configFlag), "state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("explain created the state dir: %v", err)
	}
}

func TestPolicyHelp(t *testing.T) {
	a, stdout, _ := policyApp(t, "", "")
	if err := runPolicy(context.Background(), a, []string{"explain", "-h"}); !errors.Is(err, errHelpShown) {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "usage: chatops-executor policy explain --job NAME") {
		t.Errorf("help: %s", stdout)
	}
}
