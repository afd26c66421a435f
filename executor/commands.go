package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/failure"
	"github.com/chatops-executor/chatops-executor/gitlab"
	"github.com/chatops-executor/chatops-executor/policy"
	"github.com/chatops-executor/chatops-executor/stages"
)

// loadConfig loads the config file for a protocol stage. An unusable config is a system
// failure: the runner retries config and prepare, and the admin, not the job, must act.
func (a *app) loadConfig() (*config.Config, error) {
	path := config.Resolve(a.configFlag, a.getenv)
	hint := fmt.Sprintf("run '%s --config %s check' on the runner host", name, path)
	cfg, err := config.Load(path)
	if err != nil {
		return nil, failure.WithHint(failure.Systemf("%w", err), hint)
	}
	// A policy the engine cannot compile must stop the job at config, before it is
	// prepared, not at prepare with a half-made state.
	var errs []config.Problem
	for _, p := range cfg.Locate(policy.Validate(cfg)) {
		if !p.Warning {
			errs = append(errs, p)
		}
	}
	if len(errs) > 0 {
		return nil, failure.WithHint(failure.Systemf("%w", &config.Error{Path: path, Problems: errs}), hint)
	}
	return cfg, nil
}

// The policy engine is what prepare consults; policy itself knows nothing of the stages.
var _ stages.Decider = (*policy.Engine)(nil)

func (a *app) stages() (*stages.Stages, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	return &stages.Stages{
		Cfg:     cfg,
		Getenv:  a.getenv,
		Stdout:  a.stdout,
		Stderr:  a.stderr,
		Version: a.version,
	}, nil
}

// noArgs parses the flags of a command that takes no arguments (only --config and --help).
func (a *app) noArgs(cmd string, args []string) error {
	fs := a.newFlags(cmd)
	if err := a.parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("%s takes no arguments, got %q", cmd, fs.Args())
	}
	return nil
}

func runConfig(ctx context.Context, a *app, args []string) error {
	if err := a.noArgs("config", args); err != nil {
		return err
	}
	s, err := a.stages()
	if err != nil {
		return err
	}
	return s.Config(ctx)
}

func runPrepare(ctx context.Context, a *app, args []string) error {
	if err := a.noArgs("prepare", args); err != nil {
		return err
	}
	s, err := a.stages()
	if err != nil {
		return err
	}
	// The engine is built here only: an unreadable GitLab token must fail the decision,
	// not run or cleanup.
	engine, err := policy.New(s.Cfg)
	if err != nil {
		return failure.WithHint(failure.Systemf("%w", err),
			fmt.Sprintf("run '%s --config %s check' on the runner host", name, s.Cfg.Path))
	}
	s.Decider = engine
	return s.Prepare(ctx)
}

func runRun(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("run")
	if err := a.parseFlags(fs, args); err != nil {
		return err
	}
	if args = fs.Args(); len(args) != 2 {
		return usagef("run takes SCRIPT_PATH STAGE_NAME, got %d arguments", len(args))
	}
	// One P for the whole stage: the job's output crosses this process, and one P makes
	// that copy far cheaper (see stages.RunProcs). A GOMAXPROCS the admin set in the
	// runner's environment is left as it is. Restored at the end for the tests, which run
	// stages in-process.
	if a.getenv("GOMAXPROCS") == "" {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(stages.RunProcs))
	}
	// Catch the runner's SIGTERM before anything else, so that no window exists in which it
	// would kill the executor and orphan the script.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	s, err := a.stages()
	if err != nil {
		return err
	}
	s.Signals = sigs
	s.Control = policy.NewRecorder(s.Cfg) // the audit record of a cancel from chat
	return s.Run(ctx, args[0], args[1])
}

func runCleanup(ctx context.Context, a *app, args []string) error {
	if err := a.noArgs("cleanup", args); err != nil {
		return err
	}
	s, err := a.stages()
	if err != nil {
		return err
	}
	if g := s.Cfg.GitLab; g.URL != "" && (g.VerifyIdentity || g.TokenFile != "") {
		// To ask how GitLab sees a job the runner stopped: with the admin's read_api token
		// when there is one (it sees a job however it ended), else with the job's own.
		// Cleanup never fails for this: without an answer the reply says "stopped".
		var token string
		if g.TokenFile != "" {
			t, err := config.ReadSecret(g.TokenFile)
			if err != nil {
				fmt.Fprintf(a.stderr, "%s: warning: gitlab.token_file: %v; asking GitLab with the job's token only\n", name, err)
			}
			token = t
		}
		if client, err := gitlab.New(g.URL, token, g.Timeout.D()); err == nil {
			s.GitLab = client
		}
	}
	return s.Cleanup(ctx)
}

func runVersion(_ context.Context, a *app, args []string) error {
	if err := a.noArgs("version", args); err != nil {
		return err
	}
	c, d := buildCommit()
	fmt.Fprintf(a.stdout, "%s %s (commit %s, built %s, %s %s/%s)\n", name, a.version, c, d, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// The engine also keeps prepare idempotent across the runner's retries.
var _ stages.RetryDecider = (*policy.Engine)(nil)
