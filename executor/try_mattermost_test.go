package main

import (
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/delivery/mattermosttest"
)

const tryMMChannel = "opsopsopsopsopsopsopsopso1"

// try --channel with a Mattermost id renders the Mattermost reply: Markdown, the requester
// @-mentioned by username, Mattermost's own limit for what goes inline.
func TestTryMattermostChannel(t *testing.T) {
	useBuiltExecutor(t)
	code, out, errs := runTryCmd(t, tryEnv(), "", "--ci", tryCI, "--channel", tryMMChannel, "--project", "ops/infra", "status", "staging")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"what the Mattermost channel would show",
		"┌─ #" + tryMMChannel,
		"✅ @alice **status** in ops/infra succeeded",
		"all green for staging",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "<@") || strings.Contains(out, "\u200b") {
		t.Errorf("Slack markup or raw escapes in the rendering:\n%s", out)
	}
	// 400 lines of ~25 characters: a file on Slack (3000), inline on Mattermost (16383).
	code, out, _ = runTryCmd(t, tryEnv(), "", "--ci", tryCI, "--channel", tryMMChannel, "big")
	if code != 0 || strings.Contains(out, "📎") || !strings.Contains(out, "line 400 of a long report") {
		t.Errorf("big: exit %d\n%s", code, out)
	}
	code, _, errs = runTryCmd(t, tryEnv(), "", "--ci", tryCI, "--channel", tryMMChannel, "--post", "status")
	if code != 2 || !strings.Contains(errs, "needs --config with [mattermost]") {
		t.Errorf("--post without config: exit %d %s", code, errs)
	}
}

func TestTryMattermostDenial(t *testing.T) {
	useBuiltExecutor(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "config.toml", tryExecutorTOML+`
[slack]
progress_interval = "0s"

[policy]
default = "deny"
audit_log = "/nonexistent/audit.jsonl"
`, 0o600)
	code, out, errs := runTryCmd(t, tryEnv(), cfg, "--ci", tryCI, "--channel", tryMMChannel, "status")
	if code != 1 || !strings.Contains(out, "what the requester would see") || !strings.Contains(out, "The runner's policy denied your chat command") ||
		!strings.Contains(out, "Sent as a direct message") {
		t.Errorf("denied: code %d\n%s\n%s", code, out, errs)
	}
}

// --post with --config: the reply goes to the configured Mattermost, as a job's would.
func TestTryMattermostPost(t *testing.T) {
	useBuiltExecutor(t)
	dir := t.TempDir()
	mm := mattermosttest.New(t, "mmtokenmmtokenmmtokenmmtok")
	mm.AddChannel(tryMMChannel)
	mm.AddUser(tryMattermostUser, "alice")
	token := writeFile(t, dir, "mm-token", "mmtokenmmtokenmmtokenmmtok\n", 0o600)
	cfg := writeFile(t, dir, "config.toml", tryExecutorTOML+`
[slack]
progress_interval = "0s"

[mattermost]
url = "`+mm.URL()+`"
token_file = "`+token+`"

[policy]
default = "allow"
audit_log = "/nonexistent/audit.jsonl"
`, 0o600)
	code, out, errs := runTryCmd(t, tryEnv(), cfg, "--ci", tryCI, "--channel", tryMMChannel, "--post", "status", "prod")
	if code != 0 || !strings.Contains(out, "the reply was posted to Mattermost, channel "+tryMMChannel) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	posts := mm.Posts(tryMMChannel)
	if len(posts) != 2 || !strings.HasPrefix(posts[0].Message, ":white_check_mark: @alice **status**") || posts[1].RootID != posts[0].ID ||
		!strings.Contains(posts[1].Message, "all green for prod") {
		t.Errorf("posted:\n%s", mm)
	}
}
