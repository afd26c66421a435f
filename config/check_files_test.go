package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkText parses a config made of minimal-like directories in dir plus extra, runs Check
// and returns every problem as printed.
func checkText(t *testing.T, dir, extra string, env map[string]string) string {
	t.Helper()
	text := "[executor]\nbuilds_dir = \"" + dir + "/b\"\ncache_dir = \"" + dir + "/c\"\nstate_dir = \"" + dir + "/s\"\n" + extra
	cfg, err := Parse("c.toml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var out []string
	for _, p := range cfg.Check(func(k string) string { return env[k] }) {
		out = append(out, p.String())
	}
	return strings.Join(out, "\n")
}

func secretFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each of these passed `check` silently and then failed, or leaked, on the runner host.
func TestCheckCatchesSilentPasses(t *testing.T) {
	dir := t.TempDir()
	good := secretFile(t, dir, "good", "xoxb-1-2-abc\n", 0o600)
	auditDir := filepath.Join(dir, "auditdir")
	if err := os.Mkdir(auditDir, 0o700); err != nil {
		t.Fatal(err)
	}
	openAudit := secretFile(t, dir, "audit.jsonl", "", 0o644)
	tests := []struct {
		name, extra string
		env         map[string]string
		want        string
	}{
		{"group-readable token file",
			"[slack]\ntoken_file = \"" + secretFile(t, dir, "group", "xoxb-1", 0o640) + "\"\n", nil,
			"line 6: slack.token_file: secret file " + dir + "/group is readable by its group (mode 0640): every member can use the token; chmod 600 it"},
		{"KEY=value token file",
			"[slack]\ntoken_file = \"" + secretFile(t, dir, "env", "SLACK_BOT_TOKEN=xoxb-1\n", 0o600) + "\"\n", nil,
			"line 6: slack.token_file: secret file " + dir + "/env holds SLACK_BOT_TOKEN=…, an environment assignment"},
		{"export KEY=value gitlab token",
			"[gitlab]\nurl = \"https://g\"\ntoken_file = \"" + secretFile(t, dir, "genv", "export GITLAB_TOKEN=glpat-1\n", 0o600) + "\"\n", nil,
			"line 7: gitlab.token_file: secret file " + dir + "/genv holds GITLAB_TOKEN=…"},
		{"user token",
			"[slack]\ntoken_file = \"" + secretFile(t, dir, "user", "xoxp-1-2-3", 0o600) + "\"\n", nil,
			"line 6: slack.token_file: " + dir + "/user holds a Slack user token (xoxp-)"},
		{"user token in the environment", "", map[string]string{"SLACK_BOT_TOKEN": "xoxp-1"},
			"slack.token_file: $SLACK_BOT_TOKEN holds a Slack user token (xoxp-)"},
		{"not a slack token",
			"[slack]\ntoken_file = \"" + secretFile(t, dir, "gl", "glpat-abc", 0o600) + "\"\n", nil,
			"holds a GitLab token (glpat-)"},
		{"slack token for gitlab",
			"[gitlab]\nurl = \"https://g\"\ntoken_file = \"" + good + "\"\n", nil,
			"line 7: gitlab.token_file: " + good + " holds a Slack token"},
		{"relative token file", "[slack]\ntoken_file = \"slack-token\"\n", nil,
			`line 6: slack.token_file: "slack-token" is a relative path`},
		{"relative audit log", "[policy]\naudit_log = \"audit.jsonl\"\n", nil,
			`line 6: policy.audit_log: "audit.jsonl" is a relative path`},
		{"gitlab url with /api/v4", "[gitlab]\nurl = \"https://gitlab.example.com/api/v4/\"\n", nil,
			`line 6: gitlab.url: "https://gitlab.example.com/api/v4/" ends in /api/v4, but the executor adds that itself (it would call https://gitlab.example.com/api/v4/api/v4/job): write url = "https://gitlab.example.com"`},
		{"channel name", "[[policy.rule]]\naction = \"allow\"\n[[policy.rule]]\nname = \"ops\"\naction = \"allow\"\nchannels = [\"C0123ABCD\", \"#ops\"]\n", nil,
			`line 10: policy.rule[2] (ops).channels: "#ops" is not a Slack or Mattermost channel id`},
		{"chat user name", "[[policy.rule]]\naction = \"allow\"\nchat_users = [\"@alice\"]\n", nil,
			`line 7: policy.rule[1].chat_users: "@alice" is not a Slack or Mattermost user id`},
		{"audit log is a directory", "[policy]\naudit_log = \"" + auditDir + "\"\n", nil,
			"line 6: policy.audit_log: " + auditDir + " is a directory"},
		{"audit log readable by others", "[policy]\naudit_log = \"" + openAudit + "\"\n", nil,
			"line 6: policy.audit_log: " + openAudit + " is readable or writable by other users (mode 0644)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkText(t, dir, tt.extra, tt.env)
			if !strings.Contains(got, tt.want) {
				t.Errorf("check says:\n%s\nwant a line with:\n%s", got, tt.want)
			}
		})
	}
}

// A sound setup has none of those problems.
func TestCheckFilesPassesGoodSetup(t *testing.T) {
	dir := t.TempDir()
	slack := secretFile(t, dir, "slack", "xoxb-1-2-abc\n", 0o600)
	gl := secretFile(t, dir, "gl", "glpat-abc\n", 0o600)
	audit := secretFile(t, dir, "audit.jsonl", "", 0o600)
	cfg, err := Parse("c.toml", []byte("[executor]\nbuilds_dir = \""+dir+"/b\"\ncache_dir = \""+dir+"/c\"\nstate_dir = \""+dir+"/s\"\n"+
		"[gitlab]\nurl = \"https://gitlab.example.com/\"\ntoken_file = \""+gl+"\"\n[slack]\ntoken_file = \""+slack+"\"\n"+
		"[policy]\naudit_log = \""+audit+"\"\n[[policy.rule]]\naction = \"allow\"\nchannels = [\"C0123ABCD\", \"G01234567\"]\nchat_users = [\"U0123ABCD\", \"W0123ABCD\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ps := cfg.checkFiles(func(string) string { return "" }); len(ps) != 0 {
		t.Errorf("problems in a good setup: %v", ps)
	}
}
