package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gitlab.com/gitlab-org/gitlab-runner/executors/custom/api"

	"github.com/chatops-executor/chatops-executor/bashscript"
)

// executor is one custom executor instance (executors/custom/custom.go):
// one per preparation attempt.
type executor struct {
	e             *emulation
	tempDir       string
	responseFile  string
	buildCodeFile string
	jobEnv        map[string]string
	shell         string
	prepared      bool
}

func (x *executor) prepare(ctx context.Context) error {
	e, b := x.e, x.e.b
	var err error
	x.tempDir, err = os.MkdirTemp(e.r.WorkDir, "custom-executor")
	if err != nil {
		return fmt.Errorf("emulator: create temp dir: %w", err)
	}
	x.prepared = true
	x.responseFile = filepath.Join(x.tempDir, "response.json")
	if err := writeResponse(x.responseFile, b); err != nil {
		return err
	}
	x.buildCodeFile = filepath.Join(x.tempDir, "build_exit_code")

	cfg, err := x.config(ctx)
	if err != nil {
		return err
	}
	buildsDir, cacheDir, shell := e.r.BuildsDir, e.r.CacheDir, e.r.Shell
	shared := false
	if cfg != nil {
		e.res.ConfigOutput = cfg
		if cfg.Hostname != nil {
			b.hostname = *cfg.Hostname
		}
		if cfg.BuildsDir != nil {
			buildsDir = *cfg.BuildsDir
		}
		if cfg.CacheDir != nil {
			cacheDir = *cfg.CacheDir
		}
		if cfg.BuildsDirIsShared != nil {
			shared = *cfg.BuildsDirIsShared
		}
		if cfg.JobEnv != nil {
			x.jobEnv = *cfg.JobEnv
		}
		if cfg.Shell != nil {
			shell = *cfg.Shell
		}
	}
	x.logStartup(cfg)

	if err := x.startBuild(buildsDir, cacheDir, shared); err != nil {
		return err
	}
	if shell == "" {
		shell = "bash"
	}
	if shell != "bash" && shell != "sh" {
		return fmt.Errorf("emulator: shell %q is not supported (bash and sh only)", shell)
	}
	x.shell = shell
	e.ex = x

	pctx, cancel := context.WithTimeout(ctx, orDefault(e.r.PrepareExecTimeout, DefaultExecTimeout))
	defer cancel()
	out := e.log.stream(streamExecutor, 'O')
	errOut := e.log.stream(streamExecutor, 'E')
	defer func() { _ = out.Close(); _ = errOut.Close() }()
	return x.exec(pctx, "prepare", e.r.PrepareArgs, "", out, errOut)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// writeResponse writes JOB_RESPONSE_FILE. The runner re-encodes its
// spec.Job with json.Encoder (compact, trailing newline); the emulator
// compacts the given JSON, with the steps replaced when the Job overrode
// them.
func writeResponse(file string, b *buildState) error {
	data := b.raw
	if b.stepsOverridden {
		fields := map[string]json.RawMessage{}
		if err := json.Unmarshal(b.raw, &fields); err != nil {
			return fmt.Errorf("emulator: decode job response: %w", err)
		}
		steps, err := json.Marshal(b.resp.Steps)
		if err != nil {
			return fmt.Errorf("emulator: encode steps: %w", err)
		}
		fields["steps"] = steps
		if data, err = json.Marshal(fields); err != nil {
			return fmt.Errorf("emulator: encode job response: %w", err)
		}
	}
	// The runner writes the job as it decoded it (its own types: unknown keys dropped,
	// missing ones as zero values), not GitLab's bytes.
	out, err := RunnerJobResponse(data)
	if err != nil {
		return fmt.Errorf("emulator: re-encode job response as the runner does: %w", err)
	}
	if err := os.WriteFile(file, append(out, '\n'), 0o600); err != nil {
		return fmt.Errorf("emulator: write job response: %w", err)
	}
	return nil
}

func (x *executor) config(ctx context.Context) (*api.ConfigExecOutput, error) {
	e := x.e
	cctx, cancel := context.WithTimeout(ctx, orDefault(e.r.ConfigExecTimeout, DefaultExecTimeout))
	defer cancel()
	var stdout bytes.Buffer
	errOut := e.log.stream(streamExecutor, 'E')
	defer func() { _ = errOut.Close() }()
	// dynamicConfig refreshes the variables right before config_exec.
	e.b.refresh()
	if err := x.exec(cctx, "config", e.r.ConfigArgs, "", &stdout, errOut); err != nil {
		return nil, err
	}
	if stdout.Len() > 0 {
		e.log.runnerf("config_exec stdout: %s\n", strings.TrimRight(stdout.String(), "\n"))
	}
	if stdout.Len() < 1 {
		return nil, nil
	}
	cfg := &api.ConfigExecOutput{}
	if err := json.Unmarshal(stdout.Bytes(), cfg); err != nil {
		return nil, fmt.Errorf("error while parsing JSON output: %w", err)
	}
	return cfg, nil
}

func (x *executor) logStartup(cfg *api.ConfigExecOutput) {
	const usage = "Using Custom executor"
	m := x.e.main
	switch {
	case cfg == nil || cfg.Driver == nil || cfg.Driver.Name == nil:
		m.println(usage + "...")
	case cfg.Driver.Version == nil:
		m.println(fmt.Sprintf("%s with driver %s...", usage, *cfg.Driver.Name))
	default:
		m.println(fmt.Sprintf("%s with driver %s %s...", usage, *cfg.Driver.Name, *cfg.Driver.Version))
	}
}

// startBuild is Build.StartBuild via AbstractExecutor.startBuild.
func (x *executor) startBuild(rootDir, cacheDir string, shared bool) error {
	b := x.e.b
	if rootDir == "" {
		return &BuildError{Inner: errors.New("the builds_dir is not configured"), FailureReason: ConfigurationError}
	}
	if cacheDir == "" {
		return &BuildError{Inner: errors.New("the cache_dir is not configured"), FailureReason: ConfigurationError}
	}
	b.rootDir = rootDir
	b.refresh()
	dir := path.Join(rootDir, b.projectUniqueDir(shared))
	if clonePath := value(b.vars, "GIT_CLONE_PATH"); clonePath != "" {
		if !x.e.r.CustomBuildDir {
			return &BuildError{Inner: errors.New("setting GIT_CLONE_PATH is not allowed, enable `custom_build_dir` feature"), FailureReason: ConfigurationError}
		}
		rel, err := filepath.Rel(rootDir, clonePath)
		if err != nil {
			return &BuildError{Inner: err, FailureReason: ConfigurationError}
		}
		if strings.HasPrefix(rel, "..") {
			return &BuildError{Inner: fmt.Errorf("the GIT_CLONE_PATH=%q has to be within %q", clonePath, rootDir), FailureReason: ConfigurationError}
		}
		dir = path.Clean(clonePath)
	}
	b.buildDir = dir
	b.refresh()
	return nil
}

// run is executor.Run: the script goes to a fresh directory under the temp
// dir and run_exec gets "<script> <stage>".
func (x *executor) run(ctx context.Context, stage, script string) error {
	e := x.e
	dir, err := os.MkdirTemp(x.tempDir, "script")
	if err != nil {
		return fmt.Errorf("emulator: create script dir: %w", err)
	}
	file := filepath.Join(dir, "script")
	if err := os.WriteFile(file, []byte(script), 0o700); err != nil {
		return fmt.Errorf("emulator: write script: %w", err)
	}
	execStage := bashscript.ExecStageName(stage)
	if stage == bashscript.StageUserScript {
		e.main.warningln("Starting with version 17.0 the 'build_script' stage " +
			"will be replaced with 'step_script': https://gitlab.com/groups/gitlab-org/-/epics/6112")
	}
	args := append(slices.Clone(e.r.RunArgs), file, execStage)
	out := e.log.stream(streamWork, 'O')
	errOut := e.log.stream(streamWork, 'E')
	defer func() { _ = out.Close(); _ = errOut.Close() }()
	return x.execArgs(ctx, "run:"+execStage, args, script, out, errOut)
}

// cleanup is executor.Cleanup: always cleanup_exec, output to the runner
// log only, then the temp dir goes.
func (x *executor) cleanup() {
	e := x.e
	if !x.prepared {
		return
	}
	defer func() { _ = os.RemoveAll(x.tempDir) }()
	ctx, cancel := context.WithTimeout(context.Background(), orDefault(e.r.CleanupExecTimeout, DefaultExecTimeout))
	defer cancel()
	err := x.exec(ctx, "cleanup", e.r.CleanupArgs, "", e.log.runnerWriter("cleanup stdout: "), e.log.runnerWriter("cleanup stderr: "))
	if err != nil {
		e.main.warningln("Cleanup script failed:", err)
	}
}

func (x *executor) exec(ctx context.Context, stage string, args []string, script string, stdout, stderr io.Writer) error {
	return x.execArgs(ctx, stage, slices.Clone(args), script, stdout, stderr)
}

func (x *executor) execArgs(ctx context.Context, stage string, args []string, script string, stdout, stderr io.Writer) error {
	e := x.e
	call := &Call{Stage: stage, Args: args, Dir: x.tempDir, Script: script, Env: x.env()}
	err := runCommand(ctx, execSpec{
		call:          call,
		executable:    e.r.Executable,
		dir:           x.tempDir,
		env:           call.Env,
		stdout:        stdout,
		stderr:        stderr,
		buildCodeFile: x.buildCodeFile,
		graceful:      orDefault(e.r.GracefulKillTimeout, DefaultGracefulKillTimeout),
		force:         orDefault(e.r.ForcefulKillTimeout, DefaultForcefulKillTimeout),
		started: func(pid int) {
			if e.r.OnExec != nil {
				e.r.OnExec(stage, pid)
			}
		},
	})
	e.mu.Lock()
	e.res.Calls = append(e.res.Calls, *call)
	e.mu.Unlock()
	return err
}

// env is command.New + custom.go prepareCommand.
func (x *executor) env() []string {
	e := x.e
	env := slices.Clone(e.r.Env)
	// The runner adds these five from a Go map, so they come in a rotation of one cycle
	// that changes from call to call; the executor must not depend on their order.
	five := []string{
		"TMPDIR=" + x.tempDir,
		api.BuildFailureExitCodeVariable + "=" + strconv.Itoa(BuildFailureExitCode),
		api.SystemFailureExitCodeVariable + "=" + strconv.Itoa(SystemFailureExitCode),
		api.BuildCodeFileVariable + "=" + x.buildCodeFile,
		api.JobResponseFileVariable + "=" + x.responseFile,
	}
	k := rand.IntN(len(five))
	env = append(env, five[k:]...)
	env = append(env, five[:k]...)
	keys := make([]string, 0, len(x.jobEnv))
	for k := range x.jobEnv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+x.jobEnv[k])
	}
	for _, v := range e.b.vars {
		env = append(env, "CUSTOM_ENV_"+v.Key+"="+v.Value)
	}
	return append(env, "CUSTOM_ENV_CI_JOB_SERVICES="+e.b.servicesEnv())
}
