package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/delivery/mattermosttest"
	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/gitlab/gitlabtest"
)

// check --online against the fakes: it passes where Slack and GitLab agree with the
// config, and fails with a fix where they do not.
func TestCheckOnline(t *testing.T) {
	dir := t.TempDir()
	slack := slacktest.New(t, "xoxb-online-1")
	slack.AddChannel("C0OPS0001", slacktest.Channel{Name: "ops", Member: true})
	gl := gitlabtest.New(t)
	token := writeFile(t, dir, "slack-token", "xoxb-online-1\n", 0o600)
	cfg := writeFile(t, dir, "config.toml", "[executor]\nbuilds_dir = \""+dir+"/b\"\ncache_dir = \""+dir+"/c\"\nstate_dir = \""+dir+"/s\"\n"+asRoot()+
		"[gitlab]\nurl = "+strconv.Quote(gl.URL)+"\n"+
		"[slack]\ntoken_file = "+strconv.Quote(token)+"\napi_url = "+strconv.Quote(slack.APIURL())+"\n"+
		"[[policy.rule]]\naction = \"allow\"\nchannels = [\"C0OPS0001\"]\n", 0o600)

	code, stdout, stderr := runCmd(t, env{}, "check", "--online", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "online: slack: token valid: bot @chatops") ||
		!strings.Contains(stdout, "online: gitlab: GitLab answers at "+gl.URL) ||
		!strings.Contains(stdout, "is valid, and Slack and GitLab agree with it") {
		t.Errorf("good setup: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// Offline, Slack is not asked.
	before := len(slack.Calls(slacktest.AnyMethod))
	if code, _, _ := runCmd(t, env{}, "check", "--config", cfg); code != 0 || len(slack.Calls(slacktest.AnyMethod)) != before {
		t.Errorf("check without --online: exit %d, asked Slack %d times", code, len(slack.Calls(slacktest.AnyMethod))-before)
	}

	slack.AddChannel("C0OPS0001", slacktest.Channel{Name: "ops"})
	code, _, stderr = runCmd(t, env{}, "check", "--online", "--config", cfg)
	if code != 1 || !strings.Contains(stderr, "online: policy.rule[1].channels: the bot is not a member of #ops (C0OPS0001)") ||
		!strings.Contains(stderr, "fix: type /invite @chatops in #ops") {
		t.Errorf("bot not in channel: exit %d\nstderr:\n%s", code, stderr)
	}
}

// A file with problems is still checked against the host: one run shows them all, each
// once, with its line.
func TestCheckReportsFileAndHostProblemsTogether(t *testing.T) {
	dir := t.TempDir()
	token := writeFile(t, dir, "token", "xoxb-1", 0o640)
	cfg := writeFile(t, dir, "c.toml", "[executor]\nbuilds_dir = \""+dir+"/b\"\ncache_dir = \""+dir+"/c\"\nstate_dir = \""+dir+"/s\"\n"+
		"[slack]\ntoken_file = \""+token+"\"\ninline_limit = \"big\"\n"+
		"[[policy.rule]]\nname = \"a\"\njobs = \"status\"\nchannels = [\"#ops\"]\n", 0o600)
	code, _, stderr := runCmd(t, env{}, "check", "--config", cfg)
	for _, want := range []string{
		"line 7: slack.inline_limit: got \"big\" (a string); write a number of characters",
		"line 6: slack.token_file: secret file " + token + " is readable by its group (mode 0640)",
		"line 8: policy.rule[1] (a).action: missing: every rule needs action",
		"line 10: policy.rule[1] (a).jobs: got \"status\" (a string); write a list of globs, e.g. jobs = [\"status\"]",
		"line 11: policy.rule[1] (a).channels: \"#ops\" is not a Slack or Mattermost channel id",
	} {
		if strings.Count(stderr, want) != 1 {
			t.Errorf("want once: %s\nstderr:\n%s", want, stderr)
		}
	}
	if code != 1 || strings.Count(stderr, "policy.rule[1] (a).action") != 1 {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

// check --online on a host that serves Mattermost only: the bot's token and channels are
// asked of Mattermost.
func TestCheckOnlineMattermost(t *testing.T) {
	cfg := mattermostOnlyConfig(t, `"opsopsopsopsopsopsopsopso1", "missingmissingmissingmiss1"`)
	code, stdout, stderr := runCmd(t, env{}, "check", "--online", "--config", cfg)
	if code != 1 || !strings.Contains(stdout, "online: mattermost: token valid: bot @"+mattermosttest.BotName) ||
		!strings.Contains(stdout, "channel opsopsopsopsopsopsopsopso1: the bot is a member") ||
		!strings.Contains(stderr, "the bot is not a member of channel missingmissingmissingmiss1") ||
		strings.Contains(stderr, "SLACK_BOT_TOKEN is empty") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestCheckOnlineMattermostAllGood(t *testing.T) {
	cfg := mattermostOnlyConfig(t, `"opsopsopsopsopsopsopsopso1"`)
	code, stdout, stderr := runCmd(t, env{}, "check", "--online", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "is valid, and Mattermost and GitLab agree with it") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// mattermostOnlyConfig writes the config of a host that serves Mattermost only, against a
// fake Mattermost whose bot is a member of channel opsopsopsopsopsopsopsopso1 and a fake
// GitLab, with one rule allowing the channels listed (TOML strings, comma-separated).
func mattermostOnlyConfig(t *testing.T, channels string) string {
	t.Helper()
	dir := t.TempDir()
	mm := mattermosttest.New(t, "mmtokenmmtokenmmtokenmmtok")
	mm.AddChannel("opsopsopsopsopsopsopsopso1")
	gl := gitlabtest.New(t)
	token := writeFile(t, dir, "mm-token", "mmtokenmmtokenmmtokenmmtok\n", 0o600)
	return writeFile(t, dir, "config.toml", "[executor]\nbuilds_dir = \""+dir+"/b\"\ncache_dir = \""+dir+"/c\"\nstate_dir = \""+dir+"/s\"\n"+asRoot()+
		"[gitlab]\nurl = "+strconv.Quote(gl.URL)+"\n"+
		"[mattermost]\nurl = "+strconv.Quote(mm.URL())+"\ntoken_file = "+strconv.Quote(token)+"\n"+
		"[[policy.rule]]\naction = \"allow\"\nchannels = ["+channels+"]\n", 0o600)
}
