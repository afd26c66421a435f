package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/policy"
	"github.com/chatops-executor/chatops-executor/preflight"
)

// runCheck validates the config file and the machine it describes, printing every problem
// with its key and line; with --online it also asks Slack, Mattermost and GitLab (package
// preflight).
// Exit 0 when the executor can run (warnings allowed), 1 otherwise.
func runCheck(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("check")
	host := config.ThisHost()
	fs.StringVar(&host.RunnerConfig, "runner-config", config.DefaultRunnerConfig,
		"gitlab-runner's config.toml, whose concurrent job_uids must cover")
	online := fs.Bool("online", false, "also ask Slack, Mattermost and GitLab: tokens valid (with the needed scopes), the policy's channels joined, GitLab reachable, its version and what the token may do")
	if err := a.parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("check takes no arguments, got %q", fs.Args())
	}
	path := config.Resolve(a.configFlag, a.getenv)
	// Every problem in one run: a file with problems is still checked against the host
	// and the policy, with the keys that have problems left out.
	cfg, err := config.LoadPartial(path)
	var ce *config.Error
	if err != nil && (cfg == nil || !errors.As(err, &ce)) {
		fmt.Fprintf(a.stderr, "%s: %v\n", name, err)
		return &exitError{code: exitFailure}
	}
	var problems []config.Problem
	reported := map[string]bool{}
	if ce != nil {
		problems = ce.Problems
		for _, p := range ce.Problems {
			reported[p.Key] = true
		}
	}
	for _, p := range cfg.Locate(append(cfg.CheckHost(a.getenv, host), policy.Validate(cfg)...)) {
		if !reported[p.Key] { // the file's own problem with a key says it best
			problems = append(problems, p)
		}
	}
	failed := false
	for _, p := range problems {
		fmt.Fprintf(a.stderr, "%s: config %s: %s\n", name, path, p)
		failed = failed || !p.Warning
	}
	if *online {
		findings := preflight.Run(ctx, cfg, a.getenv, preflight.Options{})
		for _, f := range findings {
			switch {
			case f.OK:
				fmt.Fprintf(a.stdout, "%s: online: %s: %s\n", name, f.Service, f.Msg)
			case f.Warning:
				fmt.Fprintf(a.stderr, "%s: online: warning: %s: %s\n", name, f.Key, f.Msg)
			default:
				fmt.Fprintf(a.stderr, "%s: online: %s: %s\n", name, f.Key, f.Msg)
			}
			if !f.OK && f.Fix != "" {
				fmt.Fprintf(a.stderr, "%s:   fix: %s\n", name, f.Fix)
			}
		}
		failed = failed || preflight.Failed(findings)
	}
	if failed {
		return &exitError{code: exitFailure}
	}
	if *online {
		services := "Slack and GitLab"
		switch {
		case cfg.MattermostEnabled() && cfg.SlackEnabled(a.getenv):
			services = "Slack, Mattermost and GitLab"
		case cfg.MattermostEnabled():
			services = "Mattermost and GitLab"
		}
		fmt.Fprintf(a.stdout, "%s: config %s is valid, and %s agree with it\n", name, path, services)
	} else {
		fmt.Fprintf(a.stdout, "%s: config %s is valid\n", name, path)
	}
	return nil
}
