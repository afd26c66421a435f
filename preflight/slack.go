package preflight

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/slack-go/slack"

	"github.com/chatops-executor/chatops-executor/config"
)

// Scope is a Slack bot scope the executor needs, and what for.
type Scope struct {
	Name, Why string
	// Used, when not nil, says whether cfg relies on the scope. A scope cfg does not rely
	// on is still in the manifest, but its absence is a warning, not a failure: an app
	// installed before approvals existed keeps passing check until a rule needs them.
	Used func(cfg *config.Config) (bool, string)
}

// NeededScopes are the bot scopes the executor calls Slack with: exactly those in
// slack-app-manifest.yml (a test keeps them equal).
var NeededScopes = []Scope{
	{Name: "chat:write", Why: "post replies, progress edits and the ephemeral denied message (chat.postMessage, chat.update, chat.postEphemeral)"},
	{Name: "files:write", Why: "upload long output into the thread (files.getUploadURLExternal, files.completeUploadExternal)"},
	{Name: "channels:read", Why: "let check --online see the policy's public channels (conversations.info)"},
	{Name: "groups:read", Why: "let check --online see the policy's private channels (conversations.info)"},
	{Name: "channels:history", Why: "settle a post cut short by a crash by finding it in a public channel (conversations.history, conversations.replies)"},
	{Name: "groups:history", Why: "the same in private channels"},
	{Name: "reactions:read", Why: "read the reactions on a start message that approve, refuse or cancel a job (reactions.get)", Used: approvalsUsed},
	{Name: "usergroups:read", Why: "resolve a rule's approver_groups to their members (usergroups.users.list)", Used: approverGroupsUsed},
}

// approvalsUsed: reactions are read for every rule with action = "approve"; without the
// scope, cancels from chat are all that is lost.
func approvalsUsed(cfg *config.Config) (bool, string) {
	for _, r := range cfg.Policy.Rules {
		if r.Action == "approve" {
			return true, ""
		}
	}
	return false, "without it no rule uses approvals, but cancels from chat (:octagonal_sign:) are off"
}

// approverGroupsUsed: user groups are resolved only for a rule's approver_groups.
func approverGroupsUsed(cfg *config.Config) (bool, string) {
	for _, r := range cfg.Policy.Rules {
		if len(r.ApproverGroups) > 0 {
			return true, ""
		}
	}
	return false, "no rule names approver_groups yet, so nothing needs it now"
}

const reinstall = "add it under OAuth & Permissions > Bot Token Scopes (slack-app-manifest.yml lists it), reinstall the app to the workspace, and write the new xoxb- token into slack.token_file"

func checkSlack(ctx context.Context, cfg *config.Config, getenv func(string) string, opt Options) []Finding {
	var out []Finding
	ok := func(key, format string, args ...any) {
		out = append(out, Finding{Service: "slack", Key: key, OK: true, Msg: fmt.Sprintf(format, args...)})
	}
	fail := func(key, fix, format string, args ...any) {
		out = append(out, Finding{Service: "slack", Key: key, Fix: fix, Msg: fmt.Sprintf(format, args...)})
	}
	warn := func(key, fix, format string, args ...any) {
		out = append(out, Finding{Service: "slack", Key: key, Fix: fix, Warning: true, Msg: fmt.Sprintf(format, args...)})
	}

	token, err := cfg.SlackToken(getenv)
	if err != nil {
		fail("slack.token_file", "fix the token file first (see the problems above)", "cannot ask Slack: %v", err)
		return out
	}
	if token == "" {
		warn("slack.token_file", "create the bot from slack-app-manifest.yml and set slack.token_file", "no Slack token, so nothing to ask Slack: jobs run, no reply is posted")
		return out
	}
	api := cfg.Slack.APIURL
	if !strings.HasSuffix(api, "/") {
		api += "/"
	}
	client := slack.New(token, slack.OptionAPIURL(api), slack.OptionHTTPClient(opt.HTTPClient))

	actx, cancel := context.WithTimeout(ctx, opt.Timeout)
	auth, err := client.AuthTestContext(actx)
	cancel()
	if err != nil {
		key, fix, msg := slackFailure(err, token, cfg.Slack.APIURL)
		fail(key, fix, "auth.test: %s", msg)
		return out
	}
	if auth.BotID == "" {
		fail("slack.token_file", "use the app's Bot User OAuth Token (xoxb-) from OAuth & Permissions",
			"the token is valid but belongs to the user %s (%s), not to a bot: replies would be posted as that person", auth.User, auth.UserID)
		return out
	}
	ok("slack.token_file", "token valid: bot @%s (%s) in workspace %s (%s)", auth.User, auth.UserID, auth.Team, auth.TeamID)

	granted := map[string]bool{}
	header := auth.Header.Get("X-OAuth-Scopes")
	for _, s := range strings.Split(header, ",") {
		if s = strings.TrimSpace(s); s != "" {
			granted[s] = true
		}
	}
	switch {
	case header == "":
		warn("slack.token_file", "compare the app's Bot Token Scopes with slack-app-manifest.yml by hand",
			"Slack did not say which scopes the token has (no X-OAuth-Scopes header)")
	default:
		var missing []string
		for _, s := range NeededScopes {
			if granted[s.Name] {
				continue
			}
			missing = append(missing, s.Name)
			if s.Used != nil {
				if used, unused := s.Used(cfg); !used {
					warn("slack.token_file", reinstall, "the bot lacks the %s scope, needed to %s; %s", s.Name, s.Why, unused)
					continue
				}
			}
			fail("slack.token_file", reinstall, "the bot lacks the %s scope, needed to %s", s.Name, s.Why)
		}
		if len(missing) == 0 {
			names := make([]string, len(NeededScopes))
			for i, s := range NeededScopes {
				names[i] = s.Name
			}
			ok("slack.token_file", "the bot has every scope the executor needs: %s", strings.Join(names, ", "))
		}
	}

	// Every channel the policy names, once, under the first rule that names it.
	first := map[string]string{}
	var channels []string
	for i, r := range cfg.Policy.Rules {
		for _, ch := range r.Channels {
			if _, seen := first[ch]; !seen && config.IsSlackChannelID(ch) {
				first[ch] = ruleKey(cfg, i) + ".channels"
				channels = append(channels, ch)
			}
		}
	}
	sort.Strings(channels)
	if len(channels) == 0 {
		ok("policy", "the policy names no channels: /invite @%s in every channel chat jobs run from", auth.User)
	}
	for _, id := range channels {
		key := first[id]
		cctx, cancel := context.WithTimeout(ctx, opt.Timeout)
		ch, err := client.GetConversationInfoContext(cctx, &slack.GetConversationInfoInput{ChannelID: id})
		cancel()
		var se slack.SlackErrorResponse
		switch {
		case errors.As(err, &se) && se.Err == "channel_not_found":
			fail(key, fmt.Sprintf("check the id (in Slack: the channel's name > About, at the bottom); for a private channel, /invite @%s there", auth.User),
				"channel %s does not exist, or it is private and the bot is not in it", id)
		case errors.As(err, &se) && se.Err == "missing_scope":
			fail(key, strings.Replace(reinstall, "add it", "add "+neededOr(se.Needed, "channels:read"), 1),
				"cannot look channel %s up: the bot lacks the %s scope", id, neededOr(se.Needed, "channels:read"))
		case err != nil:
			_, fix, msg := slackFailure(err, token, cfg.Slack.APIURL)
			fail(key, fix, "conversations.info %s: %s", id, msg)
		case ch.IsArchived:
			fail(key, "unarchive it, or take it out of the policy", "channel #%s (%s) is archived: nothing can be posted there", ch.Name, id)
		case !ch.IsMember:
			fail(key, fmt.Sprintf("type /invite @%s in #%s", auth.User, ch.Name), "the bot is not a member of #%s (%s): its replies would fail with not_in_channel", ch.Name, id)
		default:
			ok(key, "#%s (%s) exists and the bot is a member", ch.Name, id)
		}
	}
	return out
}

func neededOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// slackFailure turns a failed call into the key it concerns, a fix and words, without the
// token.
func slackFailure(err error, token, apiURL string) (key, fix, msg string) {
	var se slack.SlackErrorResponse
	var sc slack.StatusCodeError
	msg = strings.ReplaceAll(err.Error(), token, "[MASKED]")
	switch {
	case errors.As(err, &se):
		switch se.Err {
		case "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive":
			return "slack.token_file", "reinstall the app (OAuth & Permissions) and write its current Bot User OAuth Token (xoxb-) into slack.token_file",
				fmt.Sprintf("Slack refuses the token (%s): it is wrong, revoked or from an uninstalled app", se.Err)
		}
		return "slack.token_file", "see Slack's error code in its Web API documentation", "Slack answered " + se.Err
	case errors.As(err, &sc):
		return "slack.api_url", "check slack.api_url (the default is https://slack.com/api/) and try again later",
			fmt.Sprintf("Slack answered HTTP %d at %s", sc.Code, apiURL)
	}
	return "slack.api_url", "check slack.api_url and that this host can reach it (proxy, firewall, DNS)",
		fmt.Sprintf("cannot reach Slack at %s: %s", apiURL, msg)
}
