package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/gitlab"
	"github.com/chatops-executor/chatops-executor/policy"
)

// runPolicy implements `policy explain`, the admin's dry run of a policy before deploying
// it. It evaluates with the same code as prepare (policy.Engine.Explain), so the answer
// cannot drift from what a real job gets; only the identity check is skipped, because
// the admin is asking "what if this user ran it".
func runPolicy(ctx context.Context, a *app, args []string) error {
	if len(args) == 0 {
		return usagef("policy needs a subcommand: policy explain --job NAME …")
	}
	switch args[0] {
	case "explain":
	case "-h", "-help", "--help", "help":
		args = []string{"explain", "--help"}
	default:
		return usagef("unknown policy subcommand %q (the one there is: explain)", args[0])
	}
	fs := a.newFlags("policy explain")
	var in policy.Input
	var user string
	fs.StringVar(&in.Job, "job", "", "the job's `NAME` (required)")
	fs.StringVar(&in.Project, "project", "", "the project's full `PATH`, e.g. ops/infra")
	fs.StringVar(&user, "user", "", "the GitLab user: a `NAME` or numeric id (counts as verified)")
	fs.StringVar(&in.Channel, "channel", "", "CHAT_CHANNEL: the Slack channel `ID`")
	fs.StringVar(&in.ChatUser, "chat-user", "", "CHAT_USER_ID: the requester's Slack `ID`")
	fs.StringVar(&in.ChatInput, "input", "", "CHAT_INPUT: the `TEXT` after the job name")
	if err := a.parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("policy explain takes only flags, got %q (quote a multi-word --input)", fs.Args())
	}
	if in.Job == "" {
		return usagef("policy explain: --job NAME is required")
	}

	path := config.Resolve(a.configFlag, a.getenv)
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(a.stderr, "%s: %v\n", name, err)
		return &exitError{code: exitUsage}
	}
	var notes []string
	e, err := policy.New(cfg)
	if tokenOnly(err) {
		// The admin may be trying a policy away from the runner host, where the token
		// file is not readable: explain what can be explained.
		notes = append(notes, fmt.Sprintf("%v; explaining offline", err))
		e, err = policy.NewOffline(cfg)
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "%s: %v\n", name, err)
		return &exitError{code: exitUsage}
	}
	e.Audit = nil // a dry run is not a decision

	if user != "" {
		u, err := e.ResolveUser(ctx, user)
		if err != nil {
			// Keep what was given: user conditions can still be judged on it.
			u = policy.ParseUser(user)
			if errors.Is(err, gitlab.ErrNotFound) {
				notes = append(notes, fmt.Sprintf("GitLab has no user %q, so group and access-level conditions cannot hold", user))
			} else {
				notes = append(notes, fmt.Sprintf("could not look the user up (%v), so group and access-level conditions cannot be evaluated", err))
			}
		}
		in.User, in.Verified = u, true
	} else {
		in.Unverified = "no --user given"
	}
	if e.Members == nil && usesMembership(cfg) {
		notes = append(notes, "group and access-level conditions cannot be evaluated offline (no readable gitlab.token_file); they are treated as not holding")
	}

	res := e.Explain(ctx, in)
	printExplain(a.stdout, path, cfg, in, user, notes, res)
	if !res.Allow {
		return &exitError{code: exitFailure}
	}
	return nil
}

// tokenOnly reports whether err is a config error about gitlab.token_file alone.
func tokenOnly(err error) bool {
	var ce *config.Error
	if !errors.As(err, &ce) || len(ce.Problems) == 0 {
		return false
	}
	for _, p := range ce.Problems {
		if p.Key != "gitlab.token_file" {
			return false
		}
	}
	return true
}

func usesMembership(cfg *config.Config) bool {
	for _, r := range cfg.Policy.Rules {
		if len(r.Groups) > 0 || r.MinAccessLevel > 0 {
			return true
		}
	}
	return false
}

func printExplain(w io.Writer, path string, cfg *config.Config, in policy.Input, user string, notes []string, res policy.Result) {
	fmt.Fprintf(w, "policy %s: %d rule(s), default %q\n", path, len(cfg.Policy.Rules), cfg.Policy.Default)
	req := []string{fmt.Sprintf("job %q", in.Job)}
	opt := func(label, v string) {
		if v == "" {
			req = append(req, label+" (none)")
		} else {
			req = append(req, fmt.Sprintf("%s %q", label, v))
		}
	}
	opt("project", in.Project)
	switch {
	case user == "":
		req = append(req, "user (none)")
	case in.User.ID > 0 && in.User.Username != "":
		req = append(req, fmt.Sprintf("user %q (id %d, verified)", in.User.Username, in.User.ID))
	default:
		req = append(req, fmt.Sprintf("user %q (verified)", user))
	}
	opt("channel", in.Channel)
	opt("chat user", in.ChatUser)
	req = append(req, fmt.Sprintf("input %q", in.ChatInput))
	fmt.Fprintf(w, "request: %s\n", strings.Join(req, ", "))
	for _, n := range notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintln(w)
	for i, st := range res.Steps {
		label := fmt.Sprintf("rule %d", i+1)
		if !strings.HasPrefix(st.Rule, "policy.rule[") {
			label += fmt.Sprintf(" %q", st.Rule)
		}
		switch {
		case !st.Reached:
			fmt.Fprintf(w, "%s (%s): not reached\n", label, st.Action)
		case st.Held:
			fmt.Fprintf(w, "%s (%s): holds, decides: %s\n", label, st.Action, st.Detail)
		case st.Rule == res.Rule:
			fmt.Fprintf(w, "%s (%s): %s\n", label, st.Action, st.Detail)
		default:
			fmt.Fprintf(w, "%s (%s): does not hold: %s\n", label, st.Action, st.Detail)
		}
	}
	if len(res.Steps) == 0 {
		fmt.Fprintln(w, "no rules")
	}
	fmt.Fprintln(w)
	decision := "deny"
	if res.Allow {
		decision = "allow"
	}
	if res.Allow && res.Approval != nil {
		decision = "allow once approved in chat"
	}
	fmt.Fprintf(w, "decision: %s (rule %s)\n", decision, quoteRule(res.Rule))
	if a := res.Approval; res.Allow && a != nil {
		fmt.Fprintf(w, "approval: %s (react :white_check_mark: on the start message; the requester's own reaction does not count)\n", a.Plain())
	}
	fmt.Fprintf(w, "reason: %s\n", res.Reason)
}

func quoteRule(r string) string {
	if r == policy.DefaultRule || strings.HasPrefix(r, "policy.rule[") {
		return r
	}
	return fmt.Sprintf("%q", r)
}
