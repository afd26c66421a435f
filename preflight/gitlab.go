package preflight

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/gitlab"
)

func checkGitLab(ctx context.Context, cfg *config.Config, opt Options) []Finding {
	var out []Finding
	ok := func(key, format string, args ...any) {
		out = append(out, Finding{Service: "gitlab", Key: key, OK: true, Msg: fmt.Sprintf(format, args...)})
	}
	fail := func(key, fix, format string, args ...any) {
		out = append(out, Finding{Service: "gitlab", Key: key, Fix: fix, Msg: fmt.Sprintf(format, args...)})
	}
	warn := func(key, fix, format string, args ...any) {
		out = append(out, Finding{Service: "gitlab", Key: key, Fix: fix, Warning: true, Msg: fmt.Sprintf(format, args...)})
	}

	g := cfg.GitLab
	if g.URL == "" {
		warn("gitlab.url", "set gitlab.url to your GitLab's address", "gitlab.url is not set, so nothing to ask GitLab: identities are not verified and user, group and access-level rules never hold")
		return out
	}
	token := ""
	if g.TokenFile != "" {
		t, err := config.ReadSecret(g.TokenFile)
		if err != nil {
			fail("gitlab.token_file", "fix the token file first (see the problems above)", "cannot use the token: %v", err)
		}
		token = t
	}
	client, err := gitlab.New(g.URL, token, g.Timeout.D())
	if err != nil {
		fail("gitlab.url", "write your GitLab's base URL, e.g. url = \"https://gitlab.example.com\"", "%v", err)
		return out
	}

	tokFix := "create a personal, project or group access token with the read_api scope (GitLab: Preferences > Access tokens) and write it into gitlab.token_file"
	urlFix := "check gitlab.url: it is the address of GitLab's web pages, without /api/v4, and this host must reach it"
	v, err := client.Version(ctx)
	var ge *gitlab.Error
	switch {
	case err == nil:
		ok("gitlab.url", "GitLab %s (revision %s) answers at %s", v.Version, v.Revision, g.URL)
	case token == "" && errors.As(err, &ge) && ge.StatusCode == http.StatusUnauthorized:
		ok("gitlab.url", "GitLab answers at %s (it tells its version only to a token)", g.URL)
	case token != "" && errors.As(err, &ge) && ge.StatusCode == http.StatusForbidden:
		// The token lacks an API scope: GitLab is there; TokenSelf says what the token may do.
		ok("gitlab.url", "GitLab answers at %s (its version is not told to this token)", g.URL)
	case errors.As(err, &ge) && ge.StatusCode == http.StatusUnauthorized:
		fail("gitlab.token_file", tokFix, "GitLab answers at %s but rejects the token: %v", g.URL, err)
		return out
	default:
		fail("gitlab.url", urlFix, "%v", err)
		return out
	}

	var groups, projects []string
	needs := false
	firstRule := map[string]string{}
	for i, r := range cfg.Policy.Rules {
		if len(r.Groups) == 0 && r.MinAccessLevel == 0 {
			continue
		}
		needs = true
		for _, grp := range r.Groups {
			if _, seen := firstRule["groups/"+grp]; !seen {
				firstRule["groups/"+grp] = ruleKey(cfg, i) + ".groups"
				groups = append(groups, grp)
			}
		}
		if r.MinAccessLevel > 0 {
			for _, p := range r.Projects {
				if _, seen := firstRule["projects/"+p]; !seen && !strings.ContainsAny(p, "*?[") {
					firstRule["projects/"+p] = ruleKey(cfg, i) + ".projects"
					projects = append(projects, p)
				}
			}
		}
	}
	if token == "" {
		if g.TokenFile == "" && needs {
			fail("gitlab.token_file", "set gitlab.token_file to a file (mode 0600) holding a read_api token", "group and access-level rules need a token to ask GitLab with")
		}
		return out
	}

	t, err := client.TokenSelf(ctx)
	switch {
	case errors.Is(err, gitlab.ErrNotFound):
		warn("gitlab.token_file", "make sure the token has the read_api scope", "this GitLab cannot describe tokens (before 15.5): the token's scopes were not checked")
	case err != nil:
		fail("gitlab.token_file", tokFix, "%v", err)
		return out
	case !t.Active || t.Revoked:
		fail("gitlab.token_file", tokFix, "GitLab says the token %q is not active (revoked or expired)", t.Name)
		return out
	case !slices.Contains(t.Scopes, "read_api") && !slices.Contains(t.Scopes, "api"):
		sc := strings.Join(t.Scopes, ", ")
		if sc == "" {
			sc = "none"
		}
		fail("gitlab.token_file", tokFix, "the token %q has the scopes %s, not read_api: GitLab refuses the membership questions of group and access-level rules, and jobs that reach them are denied", t.Name, sc)
	default:
		exp := "never expires"
		if t.ExpiresAt != "" {
			exp = "expires " + t.ExpiresAt
		}
		ok("gitlab.token_file", "the token %q may read the API (scopes %s), %s", t.Name, strings.Join(t.Scopes, ", "), exp)
		if d, err := time.Parse("2006-01-02", t.ExpiresAt); err == nil && d.Sub(opt.Now()) < 14*24*time.Hour {
			warn("gitlab.token_file", "create a new token before then and write it into gitlab.token_file",
				"the token expires on %s: after that, group and access-level rules never hold", t.ExpiresAt)
		}
	}
	if err != nil {
		return out
	}

	sort.Strings(groups)
	sort.Strings(projects)
	for _, q := range []struct {
		kind, what string
		ids        []string
	}{{"groups", "group", groups}, {"projects", "project", projects}} {
		for _, id := range q.ids {
			key := firstRule[q.kind+"/"+id]
			seen, err := client.CanSee(ctx, q.kind, id)
			switch {
			case err != nil:
				fail(key, urlFix, "%v", err)
			case !seen:
				fail(key, fmt.Sprintf("check the %s's full path (as in its URL), and give the token's user access to it", q.what),
					"the token cannot see the %s %q: every membership question about it fails, and jobs that reach this rule are denied", q.what, id)
			default:
				ok(key, "the token can see the %s %q", q.what, id)
			}
		}
	}
	return out
}
