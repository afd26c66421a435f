package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/chatops-executor/chatops-executor/config"
)

// rule is a [[policy.rule]] compiled once, at load, so that a bad glob or regexp is a
// config error and never a surprise while a job waits.
type rule struct {
	index    int    // 1-based position in the file
	name     string // Name, or "policy.rule[N]" when unnamed
	key      string // "policy.rule[N] (name)", for config problems
	allow    bool
	approve  bool // action = "approve": allow, once approved in chat
	cfg      config.Rule
	jobs     []*regexp.Regexp
	projects []*regexp.Regexp
	input    *regexp.Regexp
}

func (r *rule) action() string {
	if r.approve {
		return "approve"
	}
	if r.allow {
		return "allow"
	}
	return "deny"
}

// needsIdentity reports whether the rule has a condition that only a verified GitLab
// identity can satisfy.
func (r *rule) needsIdentity() bool {
	return len(r.cfg.Users) > 0 || len(r.cfg.Groups) > 0 || r.cfg.MinAccessLevel > 0
}

// Validate checks cfg's policy the way New does and returns every problem, keyed like
// config's own ("policy.rule[2] (deployers).input"), so that `check` can print them with
// the rest. Problems with Warning set do not stop New.
func Validate(cfg *config.Config) []config.Problem {
	_, ps := compile(cfg, false)
	return ps
}

// compile compiles cfg's rules. offline skips the checks that only matter when a real job
// is decided (a GitLab to verify identities with, a token for membership look-ups).
func compile(cfg *config.Config, offline bool) ([]*rule, []config.Problem) {
	var ps []config.Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, config.Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	warn := func(key, format string, args ...any) {
		ps = append(ps, config.Problem{Key: key, Msg: fmt.Sprintf(format, args...), Warning: true})
	}
	if d := cfg.Policy.Default; d != "allow" && d != "deny" {
		add("policy.default", `must be "allow" or "deny", got %q`, d)
	}
	var rules []*rule
	names := map[string]int{}
	catchAll := 0
	for i, rc := range cfg.Policy.Rules {
		r := &rule{index: i + 1, cfg: rc, name: rc.Name}
		r.key = fmt.Sprintf("policy.rule[%d]", r.index)
		if rc.Name != "" {
			r.key += " (" + rc.Name + ")"
		} else {
			r.name = r.key
		}
		if catchAll > 0 {
			warn(r.key, "unreachable: policy.rule[%d] has no conditions and decides every job first", catchAll)
		}
		if prev, ok := names[rc.Name]; ok && rc.Name != "" {
			warn(r.key+".name", "same name as policy.rule[%d]: the audit log will not tell them apart", prev)
		}
		names[rc.Name] = r.index
		switch rc.Name {
		case DefaultRule, IdentityRule, NonChatRule:
			// The audit log could not tell this rule from the decision of that name.
			add(r.key+".name", "%q is reserved for decisions made without a rule; choose another name", rc.Name)
		}
		switch rc.Action {
		case "allow":
			r.allow = true
		case "approve":
			r.allow, r.approve = true, true
		case "deny":
		default:
			add(r.key+".action", `must be "allow", "deny" or "approve", got %q`, rc.Action)
		}
		for _, p := range rc.Jobs {
			re, err := compileGlob(p, false)
			if err != nil {
				add(r.key+".jobs", "bad glob %q: %v", p, err)
				continue
			}
			r.jobs = append(r.jobs, re)
		}
		for _, p := range rc.Projects {
			re, err := compileGlob(p, true)
			if err != nil {
				add(r.key+".projects", "bad glob %q: %v", p, err)
				continue
			}
			r.projects = append(r.projects, re)
		}
		for _, list := range []struct {
			key    string
			values []string
		}{{"channels", rc.Channels}, {"chat_users", rc.ChatUsers}, {"users", rc.Users}, {"groups", rc.Groups}} {
			for _, v := range list.values {
				if strings.TrimSpace(v) == "" || strings.TrimSpace(v) != v {
					add(r.key+"."+list.key, "%q: entries must be non-empty and without surrounding spaces", v)
				}
			}
		}
		for _, u := range rc.Users {
			if n, err := strconv.ParseInt(u, 10, 64); err == nil && n <= 0 {
				add(r.key+".users", "%q is not a GitLab user id (ids are positive)", u)
			}
		}
		if rc.Input != "" {
			re, err := compileInput(rc.Input)
			if err != nil {
				add(r.key+".input", "bad regular expression %q: %v", rc.Input, err)
			}
			r.input = re
		}
		if rc.MinAccessLevel < 0 || rc.MinAccessLevel > 60 {
			add(r.key+".min_access_level", "must be a GitLab access level (10, 20, 30, 40, 50), got %d", rc.MinAccessLevel)
		}
		if !offline && (len(rc.Groups) > 0 || rc.MinAccessLevel > 0) && cfg.GitLab.TokenFile == "" {
			add(r.key+".groups", "group and access-level conditions need gitlab.token_file (a read_api token)")
		}
		if r.needsIdentity() && !offline {
			switch {
			case cfg.GitLab.URL == "":
				add(r.key+".users", "user, group and access-level conditions need gitlab.url: without it no identity is verified and the rule can never hold")
			case !cfg.GitLab.VerifyIdentity:
				add(r.key+".users", "user, group and access-level conditions need gitlab.verify_identity = true: without it no identity is verified and the rule can never hold")
			}
		}
		approvalWarnings(cfg, r, warn)
		if len(rc.Jobs) == 0 && len(rc.Projects) == 0 && len(rc.Channels) == 0 && len(rc.ChatUsers) == 0 &&
			!r.needsIdentity() && rc.Input == "" && catchAll == 0 {
			catchAll = r.index
		}
		rules = append(rules, r)
	}
	return rules, ps
}

// compileInput anchors an input pattern so that it must match the whole of CHAT_INPUT.
//
// The pattern is wrapped as ^(?:re)$ without the s or m flags: in Go's RE2, ^ and $ then
// mean the start and end of the whole text (not of a line, and $ does not match before a
// trailing newline), and . does not match a newline. So "production v1.2.3\nrm -rf /"
// does not match '(staging|production) v[0-9.]+', and an admin who really wants
// multi-line input must say so with (?s) or \n in the pattern. The pattern is compiled on
// its own first, so that an unbalanced ")" cannot escape the wrapping group.
func compileInput(pattern string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(pattern); err != nil {
		return nil, unwrapSyntax(err)
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, unwrapSyntax(err)
	}
	return re, nil
}

func unwrapSyntax(err error) error {
	return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
}

// compileGlob turns a shell-style glob into an anchored regexp: * any run of characters,
// ? one character, [abc], [a-z] and [!x] classes, \ escapes the next character.
//
// Job names have no structure, so there * matches anything. Project paths are
// namespace/project, so there * stays within one path segment ("ops/*" is the projects
// directly in ops) and ** crosses segments ("ops/**" is everything under ops); they match
// case-insensitively, as GitLab resolves paths.
func compileGlob(pattern string, project bool) (*regexp.Regexp, error) {
	if pattern == "" {
		return nil, fmt.Errorf("empty pattern")
	}
	star, one := ".*", "."
	var b strings.Builder
	b.WriteString("(?s)")
	if project {
		star, one = "[^/]*", "[^/]"
		b.WriteString("(?i)")
	}
	b.WriteString("^")
	rs := []rune(pattern)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '*':
			if project && i+1 < len(rs) && rs[i+1] == '*' {
				b.WriteString(".*")
				i++
			} else {
				b.WriteString(star)
			}
		case '?':
			b.WriteString(one)
		case '\\':
			if i+1 >= len(rs) {
				return nil, fmt.Errorf("trailing backslash")
			}
			i++
			b.WriteString(regexp.QuoteMeta(string(rs[i])))
		case '[':
			j := i + 1
			neg := false
			if j < len(rs) && (rs[j] == '!' || rs[j] == '^') {
				neg = true
				j++
			}
			start := j
			if j < len(rs) && rs[j] == ']' {
				j++ // a ] right after [ is a literal
			}
			for j < len(rs) && rs[j] != ']' {
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated [")
			}
			b.WriteString("[")
			if neg {
				b.WriteString("^")
			}
			for _, cc := range rs[start:j] {
				switch cc {
				case '\\', '[', ']', '^':
					b.WriteRune('\\')
				}
				b.WriteRune(cc)
			}
			b.WriteString("]")
			i = j
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, unwrapSyntax(err)
	}
	return re, nil
}
