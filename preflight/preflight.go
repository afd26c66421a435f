// Package preflight asks the services the executor depends on what `check` cannot see from
// the host: whether the Slack token is a valid bot token with the scopes replies need, whether
// the channels the policy names exist with the bot in them, whether gitlab.url is a GitLab and
// which version, and what the gitlab.token_file token may do for group and access-level rules.
// It is `chatops-executor check --online`. Every failure comes with what to do about it.
package preflight

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/chatops-executor/chatops-executor/config"
)

// Finding is one answer: a success, a warning (works, with less) or a failure.
type Finding struct {
	// Service is "slack", "mattermost" or "gitlab".
	Service string
	// Key is the config key it concerns, e.g. "slack.token_file" or
	// "policy.rule[2] (deploys).channels".
	Key     string
	Msg     string
	Fix     string // for warnings and failures: what to do
	OK      bool
	Warning bool
}

// Options adjust Run; the zero value is for production.
type Options struct {
	// HTTPClient makes the Slack calls; nil: a plain client. GitLab calls use the gitlab
	// package's own (bounded by gitlab.timeout, no redirects).
	HTTPClient *http.Client
	// Timeout bounds each Slack call; zero: 15s.
	Timeout time.Duration
	// Now is the clock token expiry is judged by; nil: time.Now.
	Now func() time.Time
}

// Run asks Slack, Mattermost (when configured) and GitLab and returns what they said, in
// that order.
func Run(ctx context.Context, cfg *config.Config, getenv func(string) string, opt Options) []Finding {
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{}
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 15 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	out := checkSlack(ctx, cfg, getenv, opt)
	out = append(out, checkMattermost(ctx, cfg, opt)...)
	return append(out, checkGitLab(ctx, cfg, opt)...)
}

// Failed reports whether any finding is a failure.
func Failed(fs []Finding) bool {
	for _, f := range fs {
		if !f.OK && !f.Warning {
			return true
		}
	}
	return false
}

// ruleKey names rule i (0-based) as config problems do.
func ruleKey(cfg *config.Config, i int) string {
	r := cfg.Policy.Rules[i]
	if r.Name != "" {
		return "policy.rule[" + strconv.Itoa(i+1) + "] (" + r.Name + ")"
	}
	return "policy.rule[" + strconv.Itoa(i+1) + "]"
}
