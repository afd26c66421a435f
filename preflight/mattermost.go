package preflight

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/chatops-executor/chatops-executor/config"
)

// checkMattermost asks the Mattermost server of [mattermost] whether the token is a valid
// bot account's (GET /api/v4/users/me) and whether the bot is in every Mattermost channel
// the policy names (GET /api/v4/channels/{id}/members/me). It is its own small client:
// preflight knows nothing of delivery.
func checkMattermost(ctx context.Context, cfg *config.Config, opt Options) []Finding {
	if !cfg.MattermostEnabled() {
		return nil
	}
	var out []Finding
	ok := func(key, format string, args ...any) {
		out = append(out, Finding{Service: "mattermost", Key: key, OK: true, Msg: fmt.Sprintf(format, args...)})
	}
	fail := func(key, fix, format string, args ...any) {
		out = append(out, Finding{Service: "mattermost", Key: key, Fix: fix, Msg: fmt.Sprintf(format, args...)})
	}
	token, err := cfg.MattermostToken()
	if err != nil {
		fail("mattermost.token_file", "fix the token file first (see the problems above)", "cannot ask Mattermost: %v", err)
		return out
	}
	mm := &mmClient{base: strings.TrimSuffix(strings.TrimRight(cfg.Mattermost.URL, "/"), "/api/v4") + "/api/v4", token: token, opt: opt}

	var me struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		IsBot    bool   `json:"is_bot"`
	}
	status, err := mm.get(ctx, "/users/me", &me)
	switch {
	case err != nil:
		fail("mattermost.url", "check mattermost.url and that this host can reach it (proxy, firewall, DNS)", "cannot reach Mattermost at %s: %v", cfg.Mattermost.URL, err)
		return out
	case status == http.StatusUnauthorized:
		fail("mattermost.token_file", "create a new token for the bot (System Console > Integrations > Bot Accounts > Create New Token) and write it into mattermost.token_file",
			"Mattermost refuses the token: it is wrong, revoked, or the bot account is disabled")
		return out
	case status != http.StatusOK:
		fail("mattermost.url", "check mattermost.url: it is the server's address, without /api/v4", "Mattermost answered HTTP %d to GET /api/v4/users/me", status)
		return out
	case !me.IsBot:
		fail("mattermost.token_file", "use a bot account's token (System Console > Integrations > Bot Accounts), not a person's",
			"the token is valid but belongs to the user @%s, not to a bot: replies would be posted as that person", me.Username)
		return out
	}
	ok("mattermost.token_file", "token valid: bot @%s (%s)", me.Username, me.ID)

	first := map[string]string{}
	var channels []string
	for i, r := range cfg.Policy.Rules {
		for _, ch := range r.Channels {
			if _, seen := first[ch]; !seen && config.IsMattermostID(ch) {
				first[ch] = ruleKey(cfg, i) + ".channels"
				channels = append(channels, ch)
			}
		}
	}
	sort.Strings(channels)
	if len(channels) == 0 {
		ok("policy", "the policy names no Mattermost channels: add @%s to every channel chat jobs run from", me.Username)
	}
	for _, id := range channels {
		key := first[id]
		status, err := mm.get(ctx, "/channels/"+id+"/members/me", nil)
		switch {
		case err != nil:
			fail(key, "check that this host can reach mattermost.url", "channel %s: %v", id, err)
		case status == http.StatusOK:
			ok(key, "channel %s: the bot is a member", id)
		case status == http.StatusNotFound || status == http.StatusForbidden:
			fail(key, fmt.Sprintf("add the bot to the channel (/invite @%s there), or check the id (the channel's name > View Info)", me.Username),
				"the bot is not a member of channel %s, or it does not exist: its replies would be refused", id)
		default:
			fail(key, "try again later", "Mattermost answered HTTP %d about channel %s", status, id)
		}
	}
	return out
}

type mmClient struct {
	base, token string
	opt         Options
}

// get makes one GET with the bearer token; redirects are not followed (they would carry
// the token elsewhere) and come back as their status.
func (c *mmClient) get(ctx context.Context, path string, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	client := *c.opt.HTTPClient
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s", strings.ReplaceAll(err.Error(), c.token, "[MASKED]"))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return 0, fmt.Errorf("unreadable answer to GET %s: %v", path, err)
		}
	}
	return resp.StatusCode, nil
}
