// Package emulator drives a custom-executor binary the way gitlab-runner
// 19.4.0 does, so end-to-end tests can run the real executor without a real
// runner (which cannot be built from the module proxy).
//
// What it mirrors, and where the runner does it (paths in the
// gitlab.com/gitlab-org/gitlab-runner module, VERSION 19.4.0):
//
//   - common/build.go Run/run/executeScript/executePrepareScripts/
//     executeUserScripts/executeAfterScript/executeStage: the order of
//     calls (config and prepare inside the prepare_executor section, then
//     run_exec for prepare_script, get_sources, each script step,
//     after_script, cleanup_file_variables; cleanup_exec always), empty
//     stages skipped, after_script after a script failure or cancel with
//     CI_JOB_STATUS set, section markers and stage descriptions, the
//     "script canceled externally" and timeout warnings, cancel and job
//     timeout handling (a cancel before the user script cancels the whole
//     job, during it only the script), setTraceStatus's final line.
//   - common/build.go retryCreateExecutor: a preparation error that is not
//     a BuildError (system failure or unknown exit code) is retried up to 3
//     times, each attempt running config (and prepare) again after a
//     cleanup; a BuildError (exit code BUILD_FAILURE_EXIT_CODE, missing
//     builds_dir) is not retried.
//   - common/build.go StartBuild/ProjectUniqueDir, GetAllVariables and
//     friends: "the builds_dir is not configured" / "the cache_dir is not
//     configured", <builds_dir>/<namespace>/<project> (with the short
//     token and slot when builds_dir_is_shared), the variable list and its
//     expansion; common/build_settings.go for feature flags and
//     GIT_STRATEGY.
//   - executors/custom/custom.go: the temporary directory (TMPDIR, working
//     directory of every call), JOB_RESPONSE_FILE, BUILD_EXIT_CODE_FILE,
//     config_exec's JSON (api.ConfigExecOutput) and where its stdout and
//     stderr go, "Using Custom executor...", the step_script to
//     build_script rename with its WARNING, cleanup output going to the
//     runner log only, job_env then CUSTOM_ENV_* (plus
//     CUSTOM_ENV_CI_JOB_SERVICES).
//   - executors/custom/command/command.go and helpers/process: the
//     environment (runner environment, TMPDIR, BUILD_FAILURE_EXIT_CODE=1,
//     SYSTEM_FAILURE_EXIT_CODE=2, BUILD_EXIT_CODE_FILE, JOB_RESPONSE_FILE,
//     then the above), Setpgid, SIGTERM to the group then SIGKILL after the
//     graceful timeout, exit code interpretation (BUILD_EXIT_CODE_FILE,
//     UnknownFailureError).
//   - common/buildlogger: masking and timestamps of the job log.
//
// Not emulated: caches, artifacts, git checkouts (GIT_STRATEGY clone and
// fetch), secrets, services' variables, get_sources retries, the
// terminal/session server, feature-flag setting errors in the log, and
// the trace's URL-parameter sanitizer. The runner appends the default
// variables and job_env in Go map order; the emulator uses a fixed order.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"gitlab.com/gitlab-org/gitlab-runner/executors/custom/api"
)

// Runner defaults (common/consts.go, helpers/process, executors/custom).
const (
	DefaultJobTimeout          = 7200 * time.Second
	DefaultExecTimeout         = time.Hour
	DefaultGracefulKillTimeout = 10 * time.Minute
	DefaultForcefulKillTimeout = 10 * time.Second
	DefaultAfterScriptTimeout  = 5 * time.Minute
	PreparationRetries         = 3
	DefaultPreparationRetry    = 3 * time.Second
	WaitForBuildFinishTimeout  = 5 * time.Minute
)

// Runner is the [[runners]] entry with executor = "custom".
type Runner struct {
	// Executable is used for config_exec, prepare_exec, run_exec and
	// cleanup_exec alike.
	Executable string
	// ConfigArgs, PrepareArgs, RunArgs and CleanupArgs are the
	// [runners.custom] *_args; run_exec gets "<script> <stage>" appended.
	ConfigArgs, PrepareArgs, RunArgs, CleanupArgs []string
	// Env is the runner process's own environment, passed first to every
	// call (the real runner passes os.Environ()).
	Env []string
	// WorkDir receives the per-attempt temporary directory (TMPDIR,
	// JOB_RESPONSE_FILE, BUILD_EXIT_CODE_FILE, the scripts); it is removed
	// after cleanup, as the runner does.
	WorkDir string

	// Zero values mean the runner's defaults.
	GracefulKillTimeout, ForcefulKillTimeout                  time.Duration
	ConfigExecTimeout, PrepareExecTimeout, CleanupExecTimeout time.Duration
	PrepareTimeout                                            time.Duration // prepare_timeout; default: job timeout
	// PreparationRetryInterval is the pause between preparation attempts
	// (3s in the runner); negative means no pause, for fast tests.
	PreparationRetryInterval time.Duration

	// BuildsDir, CacheDir and Shell are the runner config values that
	// config_exec's output overrides; Shell defaults to bash.
	BuildsDir, CacheDir, Shell string
	// CustomBuildDir enables GIT_CLONE_PATH ([runners.custom_build_dir]).
	CustomBuildDir bool
	// Name, ShortToken and SystemID appear in the log header and
	// CI_RUNNER_SHORT_TOKEN; ShortToken also names shared build dirs.
	Name, ShortToken, SystemID string
	// Environment is the runner config's environment ("KEY=value").
	Environment []string
	// CloneURL is the runner config's clone_url.
	CloneURL string
	// FeatureFlags are [runners.feature_flags]; they beat job variables.
	FeatureFlags map[string]bool
	// PreBuildScript and PostBuildScript are the runner config hooks.
	PreBuildScript, PostBuildScript string

	// OnExec, if set, is called as each call of the executable starts, with
	// the call's stage ("prepare", "run:build_script", "cleanup"…) and its
	// pid (also its process group id): tests use it to kill -9 a call at a
	// chosen moment, as the OOM killer or a runner's SIGKILL would.
	OnExec func(stage string, pid int)

	// TraceSink, if set, receives the job log (as in Result.Trace) as it is
	// written, e.g. to wait for some output before cancelling.
	TraceSink io.Writer
	// Now is the clock for timestamps and section markers; default
	// time.Now.
	Now func() time.Time
}

// Job is one job GitLab hands to the runner.
type Job struct {
	// Response is the JOB_RESPONSE_FILE JSON.
	Response []byte
	// Timeout is the job timeout; default runner_info.timeout, then 2h.
	Timeout time.Duration
	// BeforeScript and Script, when either is non-nil, replace the
	// "script" step (GitLab merges before_script into it); AfterScript,
	// when non-nil, replaces the "after_script" step.
	Script, BeforeScript, AfterScript []string
	// Abort, when closed, is GitLab answering a trace PATCH or job PUT with
	// Job-Status: canceled (network/trace.go Abort): the whole job context is
	// cancelled — the running stage is killed, after_script is skipped,
	// cleanup still runs — unlike a cancel (ctx of Run), which during the user
	// script stops only the script.
	Abort <-chan struct{}
	// Interrupt, when closed, is SIGTERM (or SIGINT) to the runner itself:
	// Build.run's SystemInterrupt, ending the job as runner_interrupted. It
	// takes effect once the build's stages run, as in the runner.
	Interrupt <-chan struct{}
}

// Call records one execution of the executor binary.
type Call struct {
	Stage      string   // "config", "prepare", "run:<stage>", "cleanup"
	Args       []string // arguments after the executable
	Env        []string // as passed, duplicates included (the last wins)
	Dir        string
	Script     string // run calls: the script file's content
	PID        int
	ExitCode   int      // -1 when killed by a signal or not started
	Signal     string   // signal that ended the process, if any
	Signals    []string // signals the runner sent to the process group
	Err        string   // the runner's reading of the outcome, "" for success
	Start, End time.Time
}

// Result is what the job looks like from GitLab and from the runner host.
type Result struct {
	// Trace is the job log as GitLab receives it: masked, timestamped
	// when FF_TIMESTAMPS is on (the 19.4.0 default).
	Trace []byte
	// RawTrace is the same log before masking and timestamps.
	RawTrace []byte
	// RunnerLog holds what only the runner's own log gets: cleanup_exec's
	// output, and config_exec's stdout.
	RunnerLog []byte
	Calls     []Call
	// State is "success" or "failed".
	State string
	// FailureReason is what the runner sends GitLab: internal reasons
	// GitLab does not support (per features.failure_reasons) are mapped,
	// so a cancelled job reports unknown_failure unless GitLab lists
	// job_canceled.
	FailureReason string
	// RunnerFailureReason is the runner's own reason before mapping
	// (e.g. "job_canceled", "runner_configuration_error").
	RunnerFailureReason string
	// ExitCode is the BuildError exit code the runner reports.
	ExitCode int
	// Err is the job's error, as in "Job failed: <Err>".
	Err error
	// ConfigOutput is config_exec's parsed output (last attempt).
	ConfigOutput *api.ConfigExecOutput
	// BuildsDir and ProjectDir are the directories the runner settled on.
	BuildsDir, ProjectDir string
}

// Run runs one job. Cancelling ctx is GitLab cancelling the job. The error
// is for problems of the emulator itself; job failures are in the Result.
func (r *Runner) Run(ctx context.Context, job Job) (*Result, error) {
	b, err := r.newBuild(job)
	if err != nil {
		return nil, err
	}
	if r.Executable == "" {
		return nil, errors.New("emulator: Runner.Executable is empty")
	}
	if r.WorkDir == "" {
		return nil, errors.New("emulator: Runner.WorkDir is empty")
	}
	if err := os.MkdirAll(r.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("emulator: create work dir: %w", err)
	}

	e := &emulation{r: r, b: b, res: &Result{}, now: r.Now}
	if e.now == nil {
		e.now = time.Now
	}
	e.log = &jobLog{sink: r.TraceSink, timestamps: b.flags["FF_TIMESTAMPS"], now: e.now}
	e.setSecrets()

	jobErr := e.run(ctx, job)

	e.setTraceStatus(jobErr)
	res := e.res
	res.Err = jobErr
	res.Trace = slices.Clone(e.log.trace.Bytes())
	res.RawTrace = slices.Clone(e.log.raw.Bytes())
	res.RunnerLog = slices.Clone(e.log.runnerLog.Bytes())
	res.BuildsDir, res.ProjectDir = b.rootDir, b.buildDir
	return res, nil
}
