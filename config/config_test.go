package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
[executor]
builds_dir = "/srv/builds"
cache_dir  = "/srv/cache"
state_dir  = "/srv/state"
`

func TestParseMinimalUsesDefaults(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Executor.BuildsDir != "/srv/builds" || cfg.Executor.Shell != "bash" || cfg.Executor.NonChatJobs != "reject" {
		t.Errorf("executor = %+v", cfg.Executor)
	}
	if cfg.Slack.Reply != "always" || cfg.Slack.ReplyWindow.D() != 30*time.Minute || cfg.Slack.InlineLimit != 3000 || !cfg.Slack.Ack {
		t.Errorf("slack defaults = %+v", cfg.Slack)
	}
	if cfg.Policy.Default != "deny" || !cfg.GitLab.VerifyIdentity || cfg.GitLab.Timeout.D() != 10*time.Second {
		t.Errorf("policy/gitlab defaults = %+v %+v", cfg.Policy, cfg.GitLab)
	}
}

func TestParseFullExample(t *testing.T) {
	data, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("config.example.toml", data)
	if err != nil {
		t.Fatalf("config.example.toml must stay valid: %v", err)
	}
	if len(cfg.Policy.Rules) == 0 {
		t.Error("config.example.toml should show policy rules")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // substrings of the error, in order of appearance
	}{
		{"unknown key with suggestion and line", minimal + "shel = \"bash\"\n",
			[]string{"line 6: executor.shel: unknown key (did you mean \"shell\"?)"}},
		{"unknown table", minimal + "[slak]\ntoken_file = \"x\"\n",
			[]string{"line 6: slak: unknown table [slak] (did you mean [slack]?): everything in it is ignored"}},
		{"wrong type names key and line", minimal + "[slack]\ninline_limit = \"big\"\n",
			[]string{"line 7", "inline_limit"}},
		{"bare number duration", minimal + "[gitlab]\ntimeout = 10\n",
			[]string{"line 7", "timeout", "quoted string"}},
		{"bad duration text", minimal + "[slack]\nreply_window = \"30 minutes\"\n",
			[]string{"reply_window", "invalid duration"}},
		{"budget zero", minimal + "[slack]\nprepare_budget = \"0s\"\n",
			[]string{"line 7: slack.prepare_budget: must be positive"}},
		{"budget too long", minimal + "[slack]\ncleanup_budget = \"1h\"\n",
			[]string{"slack.cleanup_budget: must be positive and at most 10m"}},
		{"state size text", minimal + "max_state_size = \"lots\"\n",
			[]string{"max_state_size", "invalid size"}},
		{"state size too small", minimal + "max_state_size = \"4KiB\"\n",
			[]string{"executor.max_state_size: must be at least 1MiB"}},
		{"enum", minimal + "[slack]\nreply = \"sometimes\"\n",
			[]string{"line 7: slack.reply", `"sometimes"`}},
		{"relative dir", strings.Replace(minimal, "/srv/state", "state", 1),
			[]string{"line 5: executor.state_dir: must be an absolute path"}},
		{"missing executor", "[slack]\nreply = \"never\"\n",
			[]string{"executor: missing"}},
		{"case-sensitive keys", minimal + "Shell = \"bash\"\n",
			[]string{"line 6", "case-sensitive", `"shell"`}},
		{"rule action", minimal + "[[policy.rule]]\nname = \"a\"\naction = \"permit\"\n",
			[]string{"line 8: policy.rule[1] (a).action", `"permit"`}},
		{"second rule line", minimal + "[[policy.rule]]\nname = \"a\"\naction = \"allow\"\n[[policy.rule]]\nname = \"b\"\naction = \"nope\"\n",
			[]string{"line 11: policy.rule[2] (b).action"}},
		{"group rule without token", minimal + "[gitlab]\nurl = \"https://g\"\n[[policy.rule]]\naction = \"allow\"\ngroups = [\"ops\"]\n",
			[]string{"policy.rule[1].groups", "gitlab.token_file"}},
		{"user rule without gitlab url", minimal + "[[policy.rule]]\naction = \"allow\"\nusers = [\"alice\"]\n",
			[]string{"policy.rule[1].users", "gitlab.url"}},
		{"syntax error", minimal + "[slack\n", []string{"line 7", "end table name"}},
		{"several problems at once", minimal + "shel = 1\n[slack]\nreply = \"x\"\n",
			[]string{"2 problems", "line 6: executor.shel", "line 8: slack.reply"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.toml", []byte(tt.toml))
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not *config.Error: %v", err, err)
			}
			msg := err.Error()
			at := 0
			for _, w := range tt.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error %q\nlacks %q (after offset %d)", msg, w, at)
				}
				at += i
			}
		})
	}
}

// Every problem of a file is reported in one run, each with the line of the rule it is in,
// in words a person can act on: never the decoder's Go types.
func TestParseReportsEveryProblemInPlainWords(t *testing.T) {
	text := minimal + `[gitlab]
timeout = 10
[[policy.rule]]
name = "a"
action = "allow"
jobs = "status"
[[policy.rule]]
name = "b"
actoin = "deny"
[[policy.rule]]
name = "c"
action = "allow"
channels = [5]
min_access_level = "40"
[slack]
inline_limit = "big"
thread = "yes"
`
	_, err := Parse("c.toml", []byte(text))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Parse: %v", err)
	}
	want := []string{
		`line 7: gitlab.timeout: a duration must be a quoted string such as "90s"`,
		`line 11: policy.rule[1] (a).jobs: got "status" (a string); write a list of globs, e.g. jobs = ["status"]`,
		`line 14: policy.rule[2] (b).actoin: unknown key (did you mean "action"?)`,
		`line 18: policy.rule[3] (c).channels: every entry must be a quoted string, got 5 (a number); write a list of Slack channel ids`,
		`line 19: policy.rule[3] (c).min_access_level: got "40" (a string); write a GitLab access level, e.g. min_access_level = 40`,
		`line 21: slack.inline_limit: got "big" (a string); write a number of characters, e.g. inline_limit = 3000`,
		`line 22: slack.thread: got "yes" (a string); write true or false, e.g. thread = true`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q:\n%s", w, msg)
		}
	}
	// Rule b has no action now that actoin is dropped: validate still runs on the rest.
	if !strings.Contains(msg, `line 12: policy.rule[2] (b).action: missing: every rule needs action = "allow" or action = "deny"`) {
		t.Errorf("the rest of the file was not validated:\n%s", msg)
	}
	for _, gotype := range []string{"slice", "int64", "destination", "incompatible", "[]string", "config.Duration"} {
		if strings.Contains(msg, gotype) {
			t.Errorf("error names the decoder's Go type %q:\n%s", gotype, msg)
		}
	}
}

// [[policy.rules]] for [[policy.rule]] is one clear line naming every entry, not one
// unknown key per key of every rule.
func TestParseMisspeltRuleTable(t *testing.T) {
	text := minimal + `[[policy.rules]]
name = "a"
action = "allow"
[[policy.rules]]
name = "b"
action = "deny"
jobs = ["x"]
[[policy.rule]]
name = "c"
action = "allo"
`
	_, err := Parse("c.toml", []byte(text))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Parse: %v", err)
	}
	if len(ce.Problems) != 2 {
		t.Fatalf("want 2 problems, got %d:\n%v", len(ce.Problems), err)
	}
	if got, want := ce.Problems[0].String(), "line 6: policy.rules: unknown table [[policy.rules]] (did you mean [[policy.rule]]?): its 2 entries, at lines 6, 9, are ignored"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// The real rule keeps its own number and line.
	if got, want := ce.Problems[1].String(), `line 15: policy.rule[1] (c).action: must be "allow", "deny" or "approve", got "allo"`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestResolve(t *testing.T) {
	env := map[string]string{PathEnv: "/from/env.toml"}
	get := func(k string) string { return env[k] }
	if got := Resolve("/flag.toml", get); got != "/flag.toml" {
		t.Errorf("flag: %q", got)
	}
	if got := Resolve("", get); got != "/from/env.toml" {
		t.Errorf("env: %q", got)
	}
	if got := Resolve("", func(string) string { return "" }); got != DefaultPath {
		t.Errorf("default: %q", got)
	}
}

func TestReadSecret(t *testing.T) {
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
	if s, err := ReadSecret(write("ok", "xoxb-1\n", 0o600)); err != nil || s != "xoxb-1" {
		t.Errorf("ok: %q %v", s, err)
	}
	for _, tt := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"world readable", write("wr", "xoxb-1", 0o644), "readable by every user"},
		{"empty", write("empty", " \n", 0o600), "is empty"},
		{"two lines", write("two", "a\nb\n", 0o600), "more than one line"},
	} {
		if _, err := ReadSecret(tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		} else if strings.Contains(err.Error(), "xoxb") {
			t.Errorf("%s: error leaks the secret: %v", tt.name, err)
		}
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenPath, []byte("xoxb-1"), 0o644); err != nil {
		t.Fatal(err)
	}
	openState := filepath.Join(dir, "state")
	if err := os.Mkdir(openState, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openState, 0o777); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("c.toml", []byte(`
[executor]
builds_dir = "`+dir+`/builds"
cache_dir  = "/proc/no/such/cache"
state_dir  = "`+openState+`"
shell      = "/no/such/shell"
run_as     = "no-such-user-chatops"
[slack]
token_file = "`+tokenPath+`"
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range cfg.CheckHost(func(string) string { return "" }, Host{Euid: 0}) {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"slack.token_file: secret file " + tokenPath + " is readable by every user",
		`executor.run_as: no such user "no-such-user-chatops"`,
		`executor.shell: "/no/such/shell" is not installed`,
		"executor.state_dir: " + openState + " is accessible to other users",
		"executor.cache_dir: /proc/no/such/cache does not exist and cannot be created: /proc is not writable",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("Check problems lack %q; got:\n%s", want, all)
		}
	}
	if strings.Contains(all, "builds_dir") {
		t.Errorf("builds_dir under a writable temp dir is fine; got:\n%s", all)
	}

	// A clean config: only the warning that replies are off.
	open := traversable(t)
	good, err := Parse("c.toml", []byte("[executor]\nbuilds_dir=\""+open+"/b\"\ncache_dir=\""+open+"/c\"\nstate_dir=\""+open+"/s\"\njob_uids=\"64000-64099\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	host := Host{Euid: 0}
	ps := good.CheckHost(func(string) string { return "" }, host)
	if len(ps) != 1 || !ps[0].Warning || ps[0].Key != "slack.token_file" {
		t.Errorf("clean config problems = %v, want one warning about slack.token_file", ps)
	}
	if ps := good.CheckHost(func(k string) string { return map[string]string{"SLACK_BOT_TOKEN": "xoxb-2"}[k] }, host); len(ps) != 0 {
		t.Errorf("with SLACK_BOT_TOKEN: %v", ps)
	}
}

func TestDurationRejectsNumbers(t *testing.T) {
	var d Duration
	if err := d.UnmarshalTOML(int64(10)); err == nil {
		t.Error("bare integer accepted")
	}
	if err := d.UnmarshalTOML("1m30s"); err != nil || d.D() != 90*time.Second {
		t.Errorf("1m30s: %v %v", d, err)
	}
}

func TestBudgetsAndStateSize(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(minimal+"max_state_size = \"512MiB\"\n[slack]\nprepare_budget = \"1s\"\ncleanup_budget = \"20s\"\nflush_budget = \"3s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Executor.MaxStateSize != 512<<20 || cfg.Slack.PrepareBudget.D() != time.Second ||
		cfg.Slack.CleanupBudget.D() != 20*time.Second || cfg.Slack.FlushBudget.D() != 3*time.Second {
		t.Errorf("parsed %+v %+v", cfg.Executor, cfg.Slack)
	}
	d := Default()
	if d.Slack.PrepareBudget.D() > 2*time.Second {
		t.Errorf("default prepare_budget %s: a job must not wait long on chat to start", d.Slack.PrepareBudget)
	}
	for _, tt := range []struct {
		in   string
		want Size
	}{{"1048576", 1 << 20}, {"4GiB", 4 << 30}, {"3 MiB", 3 << 20}, {"10KiB", 10 << 10}} {
		var s Size
		if err := s.UnmarshalText([]byte(tt.in)); err != nil || s != tt.want {
			t.Errorf("Size(%q) = %d, %v; want %d", tt.in, s, err, tt.want)
		}
	}
	if got := Size(4 << 30).String(); got != "4GiB" {
		t.Errorf("String = %q", got)
	}
}
