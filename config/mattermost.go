package config

import (
	"net/url"
	"regexp"
	"strings"
)

// Mattermost configures replies to chat jobs started from Mattermost slash commands. Which
// chat a job came from is told by the shape of its CHAT_CHANNEL (see delivery.BackendOf);
// the reply behaviour keys of [slack] (reply, reply_window, ack, progress_interval, thread
// and the budgets) apply to both chats. Only the limits differ, and so have keys here.
type Mattermost struct {
	// URL is the Mattermost server, e.g. "https://chat.example.com" (the API is under
	// /api/v4).
	URL string `toml:"url"`
	// TokenFile holds the bot account's access token, with the same rules as
	// slack.token_file (mode 0600, one line, nothing else).
	TokenFile string `toml:"token_file"`
	// InlineLimit is the longest output shown in the post itself, in characters; longer
	// output is attached as a file. At most Mattermost's post limit.
	InlineLimit int `toml:"inline_limit"`
}

// MattermostMaxRunes is Mattermost's limit on a post's message.
const MattermostMaxRunes = 16383

// mattermostIDRe is the shape of every Mattermost id: channel, user, post.
var mattermostIDRe = regexp.MustCompile(`^[a-z0-9]{26}$`)

// IsMattermostID reports whether s has the form of a Mattermost id (26 lower-case letters
// and digits), as CHAT_CHANNEL and CHAT_USER_ID carry them for a Mattermost command.
func IsMattermostID(s string) bool { return mattermostIDRe.MatchString(s) }

// MattermostEnabled reports whether Mattermost replies are configured, without reading the
// token file.
func (c *Config) MattermostEnabled() bool {
	return c.Mattermost.URL != "" && c.Mattermost.TokenFile != ""
}

// MattermostToken returns the bot account's token from mattermost.token_file, "" when
// Mattermost is not configured. There is no environment fallback: the token must be kept
// as a file, like every secret the executor reads for itself.
func (c *Config) MattermostToken() (string, error) {
	if !c.MattermostEnabled() {
		return "", nil
	}
	return ReadSecret(c.Mattermost.TokenFile)
}

// validateMattermost checks [mattermost] as Load does.
func (c *Config) validateMattermost(add func(key, format string, args ...any)) {
	m := c.Mattermost
	if m.URL != "" {
		u, err := url.Parse(m.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			add("mattermost.url", "must be the server's http(s) URL, e.g. %q, got %q", "https://chat.example.com", m.URL)
		}
	}
	if (m.URL == "") != (m.TokenFile == "") {
		add("mattermost", "url and token_file go together: set both for Mattermost replies, or neither")
	}
	if m.InlineLimit < 100 || m.InlineLimit > MattermostMaxRunes {
		add("mattermost.inline_limit", "must be between 100 and %d characters (Mattermost's post limit), got %d", MattermostMaxRunes, m.InlineLimit)
	}
}

// checkMattermostFiles is checkFiles for [mattermost]: the token file's rules are Slack's.
func (c *Config) checkMattermostFiles(add func(key, format string, args ...any)) {
	p := c.Mattermost.TokenFile
	if p == "" {
		return
	}
	tok, ok := tokenFileProblems(add, "mattermost.token_file", p)
	if !ok {
		return
	}
	switch {
	case strings.HasPrefix(tok, "xox"):
		add("mattermost.token_file", "%s holds a Slack token (xox…): it needs the Mattermost bot account's access token", p)
	case strings.HasPrefix(tok, "glpat-"):
		add("mattermost.token_file", "%s holds a GitLab token (glpat-): it needs the Mattermost bot account's access token", p)
	case !mattermostIDRe.MatchString(tok):
		add("mattermost.token_file", "%s does not hold a Mattermost access token (26 lower-case letters and digits, from System Console > Integrations > Bot Accounts > Create New Token)", p)
	}
}
