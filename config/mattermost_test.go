package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func problemsOf(t *testing.T, toml string) string {
	t.Helper()
	_, err := Parse("c.toml", []byte("[executor]\n"+toml))
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestMattermostConfig(t *testing.T) {
	cfg, err := Parse("c.toml", []byte("[executor]\n[mattermost]\nurl = \"https://chat.example.com\"\ntoken_file = \"/etc/chatops-executor/mattermost-token\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.MattermostEnabled() || cfg.Mattermost.InlineLimit != MattermostMaxRunes {
		t.Errorf("%+v", cfg.Mattermost)
	}
	if d := Default(); d.MattermostEnabled() {
		t.Error("Mattermost on by default")
	}
	for toml, want := range map[string]string{
		"[mattermost]\nurl = \"chat.example.com\"\ntoken_file = \"/t\"\n":                "mattermost.url",
		"[mattermost]\nurl = \"https://chat.example.com\"\n":                             "url and token_file go together",
		"[mattermost]\ntoken_file = \"/t\"\n":                                            "url and token_file go together",
		"[mattermost]\nurl = \"https://c\"\ntoken_file = \"/t\"\ninline_limit = 16384\n": "between 100 and 16383",
		"[mattermost]\nurl = \"https://c\"\ntoken_file = \"/t\"\ntokenfile = \"/t\"\n":   "tokenfile",
		"[mattermost]\nurl = \"https://u:p@c\"\ntoken_file = \"/t\"\n":                   "mattermost.url",
	} {
		if got := problemsOf(t, toml); !strings.Contains(got, want) {
			t.Errorf("%q: %q, want it to say %q", toml, got, want)
		}
	}
}

// The token file has Slack's rules: private, one line, only the token — and a Mattermost
// token, not someone else's.
func TestMattermostTokenFileProblems(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		content string
		mode    os.FileMode
		want    string
	}{
		{"abcdefghijklmnopqrstuvwxyz\n", 0o600, ""},
		{"abcdefghijklmnopqrstuvwxyz\n", 0o640, "readable by its group"},
		{"abcdefghijklmnopqrstuvwxyz\n", 0o644, "readable by every user"},
		{"TOKEN=abcdefghijklmnopqrstuvwxyz\n", 0o600, "environment assignment"},
		{"xoxb-123-456\n", 0o600, "Slack token"},
		{"not-a-token\n", 0o600, "does not hold a Mattermost access token"},
		{"", 0o600, "is empty"},
	} {
		p := write("tok", c.content, c.mode)
		cfg := Default()
		cfg.Mattermost.URL, cfg.Mattermost.TokenFile = "https://chat.example.com", p
		var all []string
		for _, pr := range cfg.Check(func(string) string { return "" }) {
			if strings.HasPrefix(pr.Key, "mattermost") {
				all = append(all, pr.String())
			}
		}
		got := strings.Join(all, "\n")
		if c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("%q mode %o: %q, want %q", c.content, c.mode, got, c.want)
		}
		if c.want == "" {
			if tok, err := cfg.MattermostToken(); err != nil || tok != "abcdefghijklmnopqrstuvwxyz" {
				t.Errorf("token %q %v", tok, err)
			}
		}
	}
}

func TestPolicyMayNameMattermostIDs(t *testing.T) {
	cfg := Default()
	cfg.Policy.Rules = []Rule{{Action: "allow", Channels: []string{"chan0chan0chan0chan0chan01", "general"}, ChatUsers: []string{"user0user0user0user0user01"}}}
	var got []string
	for _, p := range cfg.checkFiles(func(string) string { return "" }) {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	if strings.Contains(all, "chan0chan0") || strings.Contains(all, "user0user0") || !strings.Contains(all, `"general"`) {
		t.Errorf("%s", all)
	}
}

// The reply keys [mattermost] sets hold for Mattermost; the others are [slack]'s.
func TestMattermostReplyKeys(t *testing.T) {
	cfg, err := Parse("c.toml", []byte("[executor]\n[slack]\nreply = \"after-window\"\nack = false\nthread = false\n"+
		"[mattermost]\nurl = \"https://c\"\ntoken_file = \"/t\"\nack = true\nprogress_interval = \"10s\"\ncleanup_budget = \"20s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.MattermostReplies()
	if !r.Ack || r.ProgressInterval.D() != 10*1e9 || r.CleanupBudget.D() != 20*1e9 || r.Reply != "after-window" || r.Thread || r.InlineLimit != MattermostMaxRunes {
		t.Errorf("%+v", r)
	}
	if cfg.Slack.Ack || cfg.Slack.ProgressInterval.D() == 10*1e9 {
		t.Errorf("[mattermost] changed [slack]: %+v", cfg.Slack)
	}
	for toml, want := range map[string]string{
		"reply = \"sometimes\"\n":   "mattermost.reply: must be",
		"cleanup_budget = \"0s\"\n": "mattermost.cleanup_budget: must be positive",
		"ack = \"yes\"\n":           "mattermost.ack",
		"progress_interval = 10\n":  "mattermost.progress_interval",
		"reply_window = \"-1m\"\n":  "mattermost.reply_window: must be positive",
	} {
		got := problemsOf(t, "[mattermost]\nurl = \"https://c\"\ntoken_file = \"/t\"\n"+toml)
		if !strings.Contains(got, want) || strings.Contains(got, "slack.") {
			t.Errorf("%q: %q, want %q", toml, got, want)
		}
	}
}

func TestMattermostChannelsWithoutMattermostWarn(t *testing.T) {
	cfg := Default()
	cfg.Policy.Rules = []Rule{{Action: "allow", Channels: []string{"C0OPS0001"}}, {Action: "allow", Channels: []string{"chan0chan0chan0chan0chan01"}}}
	ps := cfg.checkMattermostChannels()
	if len(ps) != 1 || !ps[0].Warning || !strings.Contains(ps[0].Msg, "policy.rule[2] names the Mattermost channel chan0chan0chan0chan0chan01") {
		t.Errorf("%v", ps)
	}
	cfg.Mattermost.URL, cfg.Mattermost.TokenFile = "https://c", "/t"
	if ps := cfg.checkMattermostChannels(); len(ps) != 0 {
		t.Errorf("warned with [mattermost] set: %v", ps)
	}
}
