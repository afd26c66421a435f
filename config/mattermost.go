package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Mattermost configures replies to chat jobs started from Mattermost slash commands. Which
// chat a job came from is told by the shape of its CHAT_CHANNEL (see delivery.BackendOf).
// The reply keys of [slack] that apply to any chat (reply, reply_window, ack,
// progress_interval, thread and the budgets) may be set here too; unset, [slack]'s hold.
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

	// Unset (nil): the [slack] key of the same name.
	Reply            *string   `toml:"reply"`
	ReplyWindow      *Duration `toml:"reply_window"`
	Ack              *bool     `toml:"ack"`
	ProgressInterval *Duration `toml:"progress_interval"`
	Thread           *bool     `toml:"thread"`
	PrepareBudget    *Duration `toml:"prepare_budget"`
	CleanupBudget    *Duration `toml:"cleanup_budget"`
	FlushBudget      *Duration `toml:"flush_budget"`
}

// MattermostReplies is how replies to Mattermost jobs behave: [slack]'s reply keys, with
// those [mattermost] sets instead, and Mattermost's inline_limit. Its token_file, api_url
// and rate_share are Slack's and mean nothing for Mattermost.
func (c *Config) MattermostReplies() Slack {
	r, m := c.Slack, c.Mattermost
	set := func(dst *Duration, src *Duration) {
		if src != nil {
			*dst = *src
		}
	}
	if m.Reply != nil {
		r.Reply = *m.Reply
	}
	if m.Ack != nil {
		r.Ack = *m.Ack
	}
	if m.Thread != nil {
		r.Thread = *m.Thread
	}
	set(&r.ReplyWindow, m.ReplyWindow)
	set(&r.ProgressInterval, m.ProgressInterval)
	set(&r.PrepareBudget, m.PrepareBudget)
	set(&r.CleanupBudget, m.CleanupBudget)
	set(&r.FlushBudget, m.FlushBudget)
	r.InlineLimit = m.InlineLimit
	return r
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
	// The reply keys set here, checked as [slack]'s are.
	probe := Config{Slack: c.MattermostReplies()}
	probe.Slack.APIURL, probe.Slack.InlineLimit, probe.Slack.RateShare = "https://x/", 100, 0
	for _, p := range probe.validateSlack() {
		if k, ok := strings.CutPrefix(p.Key, "slack."); ok && c.mattermostSets(k) {
			add("mattermost."+k, "%s", p.Msg)
		}
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

// mattermostSets reports whether [mattermost] sets the reply key k itself.
func (c *Config) mattermostSets(k string) bool {
	m := c.Mattermost
	switch k {
	case "reply":
		return m.Reply != nil
	case "reply_window":
		return m.ReplyWindow != nil
	case "progress_interval":
		return m.ProgressInterval != nil
	case "prepare_budget":
		return m.PrepareBudget != nil
	case "cleanup_budget":
		return m.CleanupBudget != nil
	case "flush_budget":
		return m.FlushBudget != nil
	}
	return false
}

// checkMattermostChannels warns when the policy names Mattermost channels and [mattermost]
// is not set: their jobs would run with no reply.
func (c *Config) checkMattermostChannels() []Problem {
	if c.MattermostEnabled() {
		return nil
	}
	for i, r := range c.Policy.Rules {
		for _, ch := range r.Channels {
			if IsMattermostID(ch) {
				return []Problem{{Key: "mattermost", Warning: true, Msg: fmt.Sprintf(
					"policy.rule[%d] names the Mattermost channel %s, but url and token_file are not set: jobs from Mattermost run and get no reply", i+1, ch)}}
			}
		}
	}
	return nil
}
