package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/failure"
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

func noArgs(cmd string, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd, args)
	}
	return nil
}

func runConfig(ctx context.Context, a *app, args []string) error {
	if err := noArgs("config", args); err != nil {
		return err
	}
	s, err := a.stages()
	if err != nil {
		return err
	}
	return s.Config(ctx)
}

func runPrepare(ctx context.Context, a *app, args []string) error {
	if err := noArgs("prepare", args); err != nil {
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
	if len(args) != 2 {
		return usagef("run takes SCRIPT_PATH STAGE_NAME, got %d arguments", len(args))
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
	return s.Run(ctx, args[0], args[1])
}

func runCleanup(ctx context.Context, a *app, args []string) error {
	if err := noArgs("cleanup", args); err != nil {
		return err
	}
	s, err := a.stages()
	if err != nil {
		return err
	}
	return s.Cleanup(ctx)
}

// runCheck validates the config file and the machine it describes, printing every problem
// with its key and line. Exit 0 when the executor can run (warnings allowed), 1 otherwise.
func runCheck(_ context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	host := config.ThisHost()
	fs.StringVar(&host.RunnerConfig, "runner-config", config.DefaultRunnerConfig,
		"gitlab-runner's config.toml, whose concurrent job_uids must cover")
	if err := fs.Parse(args); err != nil {
		return usagef("check: %v", err)
	}
	if err := noArgs("check", fs.Args()); err != nil {
		return err
	}
	path := config.Resolve(a.configFlag, a.getenv)
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(a.stderr, "%s: %v\n", name, err)
		return &exitError{code: exitFailure}
	}
	problems := append(cfg.CheckHost(a.getenv, host), cfg.Locate(policy.Validate(cfg))...)
	failed := false
	for _, p := range problems {
		fmt.Fprintf(a.stderr, "%s: config %s: %s\n", name, path, p)
		failed = failed || !p.Warning
	}
	if failed {
		return &exitError{code: exitFailure}
	}
	fmt.Fprintf(a.stdout, "%s: config %s is valid\n", name, path)
	return nil
}

func runVersion(_ context.Context, a *app, args []string) error {
	if err := noArgs("version", args); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s %s (%s %s/%s)\n", name, a.version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
