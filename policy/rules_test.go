package policy

import (
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/config"
)

func TestCompileGlob(t *testing.T) {
	tests := []struct {
		pattern string
		project bool
		match   []string
		noMatch []string
	}{
		{"deploy-*", false, []string{"deploy-", "deploy-prod", "deploy-a/b"}, []string{"deploy", "xdeploy-prod", "Deploy-prod"}},
		{"deploy", false, []string{"deploy"}, []string{"deploy-prod", "deplo"}},
		{"log?", false, []string{"logs", "log1"}, []string{"log", "logs2"}},
		{"job [ab]", false, []string{"job a", "job b"}, []string{"job c", "job [ab]"}},
		{"x[!0-9]", false, []string{"xa"}, []string{"x1"}},
		{`a\*b`, false, []string{"a*b"}, []string{"axb"}},
		{"a.b+c", false, []string{"a.b+c"}, []string{"aXb+c", "a.bbc"}},
		{"ops/*", true, []string{"ops/infra", "OPS/Infra"}, []string{"ops/sub/infra", "ops", "opsx/infra"}},
		{"ops/**", true, []string{"ops/infra", "ops/sub/infra"}, []string{"ops", "other/ops/infra"}},
		{"ops/infra", true, []string{"ops/infra", "Ops/Infra"}, []string{"ops/infra2", "ops/infra/x"}},
		{"*/infra", true, []string{"ops/infra"}, []string{"a/b/infra"}},
	}
	for _, tt := range tests {
		re, err := compileGlob(tt.pattern, tt.project)
		if err != nil {
			t.Errorf("compileGlob(%q): %v", tt.pattern, err)
			continue
		}
		for _, s := range tt.match {
			if !re.MatchString(s) {
				t.Errorf("%q (project=%v) does not match %q", tt.pattern, tt.project, s)
			}
		}
		for _, s := range tt.noMatch {
			if re.MatchString(s) {
				t.Errorf("%q (project=%v) matches %q", tt.pattern, tt.project, s)
			}
		}
	}
	for _, bad := range []string{"", "deploy-[", `trailing\`, "[z-a]"} {
		if _, err := compileGlob(bad, false); err == nil {
			t.Errorf("compileGlob(%q) accepted a bad glob", bad)
		}
	}
}

func TestCompileInputMatchesWholeInput(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{`(staging|production) v[0-9]+\.[0-9]+\.[0-9]+`,
			[]string{"staging v1.2.3", "production v10.0.1"},
			[]string{
				"production v1.2.3\nrm -rf /",   // a second line that the pattern never allowed
				"rm -rf /\nproduction v1.2.3",   // ... before the match
				"production v1.2.3\n",           // even a bare trailing newline
				"production v1.2.3; rm -rf /",   // more on the same line
				"xproduction v1.2.3",            // alternation must not escape the anchors
				"staging v1.2.3 production v1.", //
				"",
			}},
		{`staging|production`, []string{"staging", "production"}, []string{"staging-x", "x-production", "staging\nproduction"}},
		{`.*`, []string{"", "anything on one line"}, []string{"two\nlines"}},
		{`(?s).*`, []string{"two\nlines"}, nil},                                     // multi-line is allowed only when asked for
		{`(?m)^deploy$`, []string{"deploy"}, []string{"deploy\nmore", "x\ndeploy"}}, // (?m) cannot unanchor the whole
	}
	for _, tt := range tests {
		re, err := compileInput(tt.pattern)
		if err != nil {
			t.Fatalf("compileInput(%q): %v", tt.pattern, err)
		}
		for _, s := range tt.match {
			if !re.MatchString(s) {
				t.Errorf("%q does not match %q", tt.pattern, s)
			}
		}
		for _, s := range tt.noMatch {
			if re.MatchString(s) {
				t.Errorf("%q matches %q; it must match the whole input", tt.pattern, s)
			}
		}
	}
	// An unbalanced ")" would otherwise close the wrapping group: ^(?:a)|(b)$.
	for _, bad := range []string{`a)|(b`, `(`, `[`, `a**`, `\`} {
		if _, err := compileInput(bad); err == nil {
			t.Errorf("compileInput(%q) accepted a bad pattern", bad)
		}
	}
}

func TestValidateNamesTheRule(t *testing.T) {
	base := func() *config.Config {
		c := config.Default()
		c.GitLab.URL = "https://gitlab.example.com"
		c.GitLab.TokenFile = "/etc/token"
		c.Policy.Rules = []config.Rule{{Name: "first", Action: "allow", Jobs: []string{"ok"}}}
		return &c
	}
	tests := []struct {
		name    string
		rule    config.Rule
		mod     func(*config.Config)
		want    string
		warning bool
	}{
		{"bad glob", config.Rule{Name: "deployers", Action: "allow", Jobs: []string{"deploy-["}}, nil, "policy.rule[2] (deployers).jobs: bad glob \"deploy-[\"", false},
		{"bad project glob", config.Rule{Name: "deployers", Action: "allow", Projects: []string{`ops\`}}, nil, "policy.rule[2] (deployers).projects: bad glob", false},
		{"bad regexp", config.Rule{Name: "deployers", Action: "allow", Input: "(prod"}, nil, "policy.rule[2] (deployers).input: bad regular expression \"(prod\": missing closing )", false},
		{"unknown action", config.Rule{Name: "deployers", Action: "permit"}, nil, `policy.rule[2] (deployers).action: must be "allow", "deny" or "approve", got "permit"`, false},
		{"unnamed rule", config.Rule{Action: "alow"}, nil, "policy.rule[2].action", false},
		{"group without token", config.Rule{Name: "sre", Action: "allow", Groups: []string{"ops/sre"}}, func(c *config.Config) { c.GitLab.TokenFile = "" }, "policy.rule[2] (sre).groups: group and access-level conditions need gitlab.token_file", false},
		{"access level without token", config.Rule{Name: "sre", Action: "allow", MinAccessLevel: 40}, func(c *config.Config) { c.GitLab.TokenFile = "" }, "policy.rule[2] (sre).groups: group and access-level conditions need gitlab.token_file", false},
		{"users without url", config.Rule{Name: "sre", Action: "allow", Users: []string{"alice"}}, func(c *config.Config) { c.GitLab.URL = "" }, "policy.rule[2] (sre).users: user, group and access-level conditions need gitlab.url", false},
		{"users without verification", config.Rule{Name: "sre", Action: "deny", Users: []string{"mallory"}}, func(c *config.Config) { c.GitLab.VerifyIdentity = false }, "need gitlab.verify_identity = true", false},
		{"empty channel", config.Rule{Name: "c", Action: "allow", Channels: []string{""}}, nil, "policy.rule[2] (c).channels", false},
		{"bad user id", config.Rule{Name: "u", Action: "allow", Users: []string{"0"}}, nil, "policy.rule[2] (u).users", false},
		{"bad default", config.Rule{Name: "ok", Action: "allow"}, func(c *config.Config) { c.Policy.Default = "maybe" }, "policy.default", false},
		{"unreachable after catch-all", config.Rule{Name: "late", Action: "allow"}, func(c *config.Config) {
			c.Policy.Rules[0] = config.Rule{Name: "all", Action: "deny"}
		}, "policy.rule[2] (late): unreachable: policy.rule[1] has no conditions", true},
		{"reserved name", config.Rule{Name: "default", Action: "allow"}, nil, `policy.rule[2] (default).name: "default" is reserved`, false},
		{"duplicate name", config.Rule{Name: "first", Action: "allow", Jobs: []string{"x"}}, nil, "policy.rule[2] (first).name: same name as policy.rule[1]", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			c.Path = "/etc/chatops-executor/config.toml"
			c.Policy.Rules = append(c.Policy.Rules, tt.rule)
			if tt.mod != nil {
				tt.mod(c)
			}
			var found *config.Problem
			for _, p := range Validate(c) {
				if strings.Contains(p.String(), tt.want) {
					found = &p
				}
			}
			if found == nil {
				t.Fatalf("Validate: no problem containing %q in %v", tt.want, Validate(c))
			}
			if found.Warning != tt.warning {
				t.Errorf("warning = %v, want %v", found.Warning, tt.warning)
			}
			_, err := New(c)
			if tt.warning {
				if err != nil && strings.Contains(err.Error(), tt.want) {
					t.Errorf("New failed on a warning: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), c.Path) {
				t.Errorf("New: err = %v; want it to name %q and the config file", err, tt.want)
			}
		})
	}
}
