package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
)

// adminConfig is a production-like config: a policy with user conditions, and a Slack that
// is reachable (a fake standing in for the production workspace).
func adminConfig(t *testing.T, slack *slacktest.Server) string {
	t.Helper()
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "slack-token", "xoxb-production\n", 0o600)
	return writeFile(t, dir, "config.toml", tryExecutorTOML+`
[gitlab]
url = "https://gitlab.example.com"

[slack]
token_file = "`+tokenFile+`"
api_url = "`+slack.APIURL()+`"
progress_interval = "0s"

[policy]
default = "deny"
audit_log = "/nonexistent/audit.jsonl"

[[policy.rule]]
name = "alice-runs-status"
action = "allow"
jobs = ["status"]
users = ["alice"]
`, 0o600)
}

// Issue 10: try --config used to fail on any rule with users (identities were unverified),
// and with a reachable Slack it posted into the production channel. It now evaluates the
// policy as `policy explain` does and posts nothing unless --post.
func TestTryConfigEvaluatesPolicyAndNeverPostsUnasked(t *testing.T) {
	useBuiltExecutor(t)
	prod := slacktest.New(t, "xoxb-production")
	cfg := adminConfig(t, prod)

	code, out, errs := runTryCmd(t, tryEnv(), cfg, "--ci", tryCI, "--channel", "C0123ABCD", "status", "eu")
	if code != 0 || !strings.Contains(out, "all green for eu") {
		t.Fatalf("a users rule for the given user: code %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, `it allows job status (rule "alice-runs-status")`) {
		t.Errorf("stderr does not say which rule allowed it:\n%s", errs)
	}
	if !strings.Contains(out, "nothing was posted to Slack") || strings.Contains(out, "the reply was posted to Slack") {
		t.Errorf("banner:\n%s", out)
	}
	if calls := prod.Calls(slacktest.AnyMethod); len(calls) != 0 {
		t.Errorf("try without --post called the production Slack %d times", len(calls))
	}

	// Another user is denied: the requester's message is shown, nothing is posted, and no
	// hint names try's temporary files.
	env := tryEnv()
	env["USER"] = "mallory"
	code, out, errs = runTryCmd(t, env, cfg, "--ci", tryCI, "--channel", "C0123ABCD", "status")
	if code != 1 || !strings.Contains(out, "👁 only visible to @mallory") || !strings.Contains(errs, "job status was refused by the policy") {
		t.Errorf("denied: code %d\n%s\n%s", code, out, errs)
	}
	if strings.Contains(out+errs, "chatops-executor-try-") {
		t.Errorf("output names a temporary file:\n%s\n%s", out, errs)
	}
	if calls := prod.Calls(slacktest.AnyMethod); len(calls) != 0 {
		t.Errorf("a denied try called the production Slack %d times", len(calls))
	}

	// --post posts, to the channel given, and says so.
	code, out, errs = runTryCmd(t, tryEnv(), cfg, "--ci", tryCI, "--channel", "C0123ABCD", "--post", "status", "eu")
	if code != 0 || !strings.Contains(out, "the reply was posted to Slack, channel C0123ABCD") {
		t.Errorf("--post: code %d\n%s\n%s", code, out, errs)
	}
	if msgs := prod.Channel("C0123ABCD"); len(msgs) == 0 {
		t.Errorf("--post posted nothing:\n%s", prod)
	}
	if code, _, errs := runTryCmd(t, tryEnv(), cfg, "--ci", tryCI, "--post", "status"); code != 2 || !strings.Contains(errs, "--post needs --channel") {
		t.Errorf("--post without --channel: code %d %s", code, errs)
	}

	// When Slack refuses, --post says the reply did not arrive, and gives no flush advice
	// for an outbox that is deleted when try ends.
	prod.FailAlways(slacktest.AnyMethod, slacktest.SlackError("not_in_channel"))
	code, out, errs = runTryCmd(t, tryEnv(), cfg, "--ci", tryCI, "--channel", "C0123ABCD", "--post", "status", "eu")
	if strings.Contains(out, "the reply was posted to Slack") || !strings.Contains(out, "did not all reach Slack") {
		t.Errorf("Slack refusing: code %d\n%s\n%s", code, out, errs)
	}
	if strings.Contains(errs, "flush") || strings.Contains(out+errs, "chatops-executor-try-") {
		t.Errorf("Slack refusing: advice about try's temporary outbox:\n%s", errs)
	}
}

// Issue 10: try could not show how a secret is redacted. --masked values are masked in the
// job log and the reply; --var values are plain, and rules see both.
func TestTryVarAndMasked(t *testing.T) {
	useBuiltExecutor(t)
	dir := t.TempDir()
	ci := writeFile(t, dir, "ci.yml", `show:
  rules:
    - if: $DEPLOY_ENV == "staging"
  variables:
    DEPLOY_ENV: production
  script:
    - echo "env $DEPLOY_ENV key $DEPLOY_KEY"
`, 0o644)
	code, out, errs := runTryCmd(t, tryEnv(), "", "--ci", ci, "--var", "DEPLOY_ENV=staging", "--masked", "DEPLOY_KEY=s3cr3t-deploy-key", "show")
	if code != 0 {
		t.Fatalf("code %d\n%s\n%s", code, out, errs)
	}
	if strings.Contains(out+errs, "s3cr3t-deploy-key") {
		t.Errorf("the masked value was shown:\n%s", out)
	}
	if !strings.Contains(out, "env staging key [MASKED]") {
		t.Errorf("reply and log should show the variable and the mask:\n%s", out)
	}
	if code, _, errs := runTryCmd(t, tryEnv(), "", "--ci", ci, "--var", "NOEQUALS", "show"); code != 2 || !strings.Contains(errs, "want KEY=VALUE") {
		t.Errorf("bad --var: code %d %s", code, errs)
	}
}

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(filepath.Join("/dev/pts", strconv.Itoa(n)), os.O_RDWR, 0)
	if err != nil {
		t.Skipf("open the pty: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Issue 10: try's terminal rendering ignored NO_COLOR and TERM=dumb.
func TestTryColourFollowsNoColorAndDumbTerminals(t *testing.T) {
	tty := openPTY(t)
	for _, tt := range []struct {
		env              env
		colour, progress bool
	}{
		{env{"TERM": "xterm-256color"}, true, true},
		{env{"TERM": "xterm", "NO_COLOR": "1"}, false, true},
		{env{"TERM": "dumb"}, false, false},
		{env{"NO_COLOR": ""}, true, true}, // an empty NO_COLOR does not count (no-color.org)
	} {
		if got := useColour(tty, tt.env.get); got != tt.colour {
			t.Errorf("%v: colour %v", tt.env, got)
		}
		if got := useProgressLine(tty, tt.env.get); got != tt.progress {
			t.Errorf("%v: progress line %v", tt.env, got)
		}
	}
	if useColour(&strings.Builder{}, env{}.get) {
		t.Error("colour on a non-terminal")
	}
}
