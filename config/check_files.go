package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// checkFiles finds what loads fine and then fails, or leaks, on the runner host: token
// files other users of the group can read or that hold KEY=value, a Slack user token
// instead of the bot's, relative paths (the runner's working directory decides what they
// mean), a gitlab.url with /api/v4 (every call would go to /api/v4/api/v4/…), channel and
// user names where Slack ids are needed (the rule could never hold), and an audit log that
// is a directory or readable by others. Check calls it; problems carry their lines.
func (c *Config) checkFiles(getenv func(string) string) []Problem {
	var ps []Problem
	add := func(key, format string, args ...any) {
		p := Problem{Key: key, Msg: fmt.Sprintf(format, args...)}
		if c.raw != nil {
			p.Line = keyLineDotted(c.raw, key)
		}
		ps = append(ps, p)
	}

	for _, f := range []struct{ key, path string }{
		{"slack.token_file", c.Slack.TokenFile},
		{"mattermost.token_file", c.Mattermost.TokenFile},
		{"gitlab.token_file", c.GitLab.TokenFile},
		{"policy.audit_log", c.Policy.AuditLog},
	} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			add(f.key, "%q is a relative path, resolved against whatever directory gitlab-runner starts the executor in: write an absolute path, e.g. %q", f.path, "/etc/chatops-executor/"+filepath.Base(f.path))
		}
	}

	if p := c.Slack.TokenFile; p != "" && filepath.IsAbs(p) {
		if tok, ok := tokenFileProblems(add, "slack.token_file", p); ok {
			slackTokenProblems(add, "slack.token_file", p, tok)
		}
	} else if p == "" {
		if tok := strings.TrimSpace(getenv("SLACK_BOT_TOKEN")); tok != "" {
			slackTokenProblems(add, "slack.token_file", "$SLACK_BOT_TOKEN", tok)
		}
	}
	if filepath.IsAbs(c.Mattermost.TokenFile) {
		c.checkMattermostFiles(add)
	}
	if p := c.GitLab.TokenFile; p != "" && filepath.IsAbs(p) {
		if tok, ok := tokenFileProblems(add, "gitlab.token_file", p); ok && strings.HasPrefix(tok, "xox") {
			add("gitlab.token_file", "%s holds a Slack token (xox…): it needs a GitLab personal, project or group access token with the read_api scope (glpat-…)", p)
		}
	}

	if u := strings.TrimRight(c.GitLab.URL, "/"); strings.HasSuffix(u, "/api/v4") {
		add("gitlab.url", "%q ends in /api/v4, but the executor adds that itself (it would call %s/api/v4/job): write url = %q", c.GitLab.URL, u, strings.TrimSuffix(u, "/api/v4"))
	}

	for i, r := range c.Policy.Rules {
		key := fmt.Sprintf("policy.rule[%d]", i+1)
		if r.Name != "" {
			key = fmt.Sprintf("policy.rule[%d] (%s)", i+1, r.Name)
		}
		for _, ch := range r.Channels {
			if !channelIDRe.MatchString(ch) && !IsMattermostID(ch) {
				add(key+".channels", "%q is not a Slack or Mattermost channel id: CHAT_CHANNEL is the channel's id, such as C0123ABCD (in Slack: the channel's name > About, at the bottom) or 26 lower-case letters and digits (in Mattermost: the channel's name > View Info), so this rule can never hold", ch)
			}
		}
		for _, u := range r.ChatUsers {
			if !userIDRe.MatchString(u) && !IsMattermostID(u) {
				add(key+".chat_users", "%q is not a Slack or Mattermost user id: CHAT_USER_ID is the member id, such as U0123ABCD (in Slack: the person's profile > ⋮ > Copy member ID) or 26 lower-case letters and digits for Mattermost, so this rule can never hold", u)
			}
		}
	}

	audit := c.AuditLogPath()
	if filepath.IsAbs(audit) {
		fi, err := os.Lstat(audit)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			add("policy.audit_log", "%s: %v", audit, unwrapPath(err))
		case fi.IsDir():
			add("policy.audit_log", "%s is a directory: audit_log names the file the decisions are appended to, e.g. %q", audit, filepath.Join(audit, "audit.jsonl"))
		case !fi.Mode().IsRegular():
			add("policy.audit_log", "%s is not a regular file (mode %s): point audit_log at a file", audit, fi.Mode())
		case fi.Mode().Perm()&0o077 != 0:
			add("policy.audit_log", "%s is readable or writable by other users (mode %04o): it records every request and its input; chmod 600 it (the logrotate file creates new ones 0600)", audit, fi.Mode().Perm())
		}
	}
	return ps
}

// AuditLogPath is the audit log's file: policy.audit_log, else <state_dir>/audit.jsonl.
func (c *Config) AuditLogPath() string {
	if c.Policy.AuditLog != "" {
		return c.Policy.AuditLog
	}
	return filepath.Join(c.Executor.StateDir, "audit.jsonl")
}

var (
	// Slack ids: C… public and G… private channels, D… direct messages; U…/W… users.
	channelIDRe = regexp.MustCompile(`^[CGD][A-Z0-9]{6,}$`)
	userIDRe    = regexp.MustCompile(`^[UW][A-Z0-9]{6,}$`)
	// KEY=value, as in an environment file.
	assignmentRe = regexp.MustCompile(`^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=`)
)

// tokenFileProblems reports a token file that other users of its group may read, or that
// holds KEY=value, and returns the token when the file is otherwise usable. ReadSecret's own
// problems (missing, empty, world-readable) are Check's to report.
func tokenFileProblems(add func(string, string, ...any), key, path string) (string, bool) {
	tok, err := ReadSecret(path)
	if err != nil {
		return "", false
	}
	fi, err := os.Stat(path)
	if err == nil && fi.Mode().Perm()&0o070 != 0 {
		add(key, "secret file %s is readable by its group (mode %04o): every member can use the token; chmod 600 it, owned by the user the executor runs as", path, fi.Mode().Perm())
	}
	if m := assignmentRe.FindStringSubmatch(tok); m != nil {
		add(key, "secret file %s holds %s=…, an environment assignment: the whole line would be sent as the token; put only the token in the file", path, m[1])
		return "", false
	}
	if strings.HasPrefix(tok, `"`) || strings.HasPrefix(tok, `'`) {
		add(key, "secret file %s holds a quoted token: the quotes would be sent too; put only the token in the file", path)
		return "", false
	}
	return tok, true
}

// slackTokenProblems reports a token that is not a Slack bot token.
func slackTokenProblems(add func(string, string, ...any), key, where, tok string) {
	switch {
	case strings.HasPrefix(tok, "xoxb-"):
	case strings.HasPrefix(tok, "xoxp-"):
		add(key, "%s holds a Slack user token (xoxp-): replies would be posted as that person, with their access; use the app's Bot User OAuth Token (xoxb-) from OAuth & Permissions", where)
	case strings.HasPrefix(tok, "xapp-"):
		add(key, "%s holds a Slack app-level token (xapp-), which cannot post messages; use the app's Bot User OAuth Token (xoxb-) from OAuth & Permissions", where)
	case strings.HasPrefix(tok, "glpat-"):
		add(key, "%s holds a GitLab token (glpat-): slack.token_file needs the Slack app's Bot User OAuth Token (xoxb-)", where)
	default:
		add(key, "%s does not hold a Slack bot token (they start with xoxb-): use the app's Bot User OAuth Token from OAuth & Permissions", where)
	}
}

// IsSlackChannelID reports whether s has the form of a Slack channel id (C…, G…, D…), as
// CHAT_CHANNEL carries it.
func IsSlackChannelID(s string) bool { return channelIDRe.MatchString(s) }
