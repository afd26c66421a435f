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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gitlab.com/gitlab-org/gitlab-runner/executors/custom/api"

	"github.com/chatops-executor/chatops-executor/bashscript"
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

func (r *Runner) newBuild(job Job) (*buildState, error) {
	resp := &jobResponse{}
	if err := json.Unmarshal(job.Response, resp); err != nil {
		return nil, fmt.Errorf("emulator: parse job response: %w", err)
	}
	overridden := false
	if job.Script != nil || job.BeforeScript != nil {
		s := append(append([]string{}, job.BeforeScript...), job.Script...)
		resp.Steps = setStep(resp.Steps, step{Name: "script", Script: s, Timeout: resp.RunnerInfo.Timeout, When: "on_success"})
		overridden = true
	}
	if job.AfterScript != nil {
		resp.Steps = setStep(resp.Steps, step{Name: "after_script", Script: job.AfterScript, Timeout: resp.RunnerInfo.Timeout, When: "always", AllowFailure: true})
		overridden = true
	}
	timeout := job.Timeout
	if timeout <= 0 && resp.RunnerInfo.Timeout > 0 {
		timeout = time.Duration(resp.RunnerInfo.Timeout) * time.Second
	}
	if timeout <= 0 {
		timeout = DefaultJobTimeout
	}
	b := &buildState{resp: resp, runner: r, timeoutSec: int64(timeout / time.Second),
		raw: job.Response, stepsOverridden: overridden}
	b.flags = resolveFeatureFlags(r.FeatureFlags, b.flagLookup)
	return b, nil
}

// flagLookup reads a feature flag the way populateFeatureFlags does: from
// the expanded job variables, empty values included.
func (b *buildState) flagLookup(name string) (string, bool) {
	v, ok := lookup(expand(b.resp.Variables), name)
	return v.Value, ok
}

func setStep(steps []step, s step) []step {
	for i := range steps {
		if steps[i].Name == s.Name {
			steps[i].Script = s.Script
			return steps
		}
	}
	return append(steps, s)
}

// emulation is the state of one Run.
type emulation struct {
	r   *Runner
	b   *buildState
	res *Result
	log *jobLog
	now func() time.Time

	main logger // b.logger

	mu       sync.Mutex
	cancelFn context.CancelFunc // what a GitLab cancel calls right now

	ex *executor
}

func (e *emulation) setSecrets() {
	var phrases []string
	for _, v := range expand(e.b.resp.Variables) {
		if v.Masked {
			phrases = append(phrases, v.Value)
		}
	}
	prefixes := append(slices.Clone(e.b.resp.Features.TokenMaskPrefixes), "glpat-")
	if e.b.flags["FF_MASK_ALL_DEFAULT_TOKENS"] {
		prefixes = append(prefixes, "gloas-", "gldt-", "glrt-", "glcbt-", "glrtr-",
			"glptt-", "glft-", "glimt-", "glagent-", "glsoat-", "glffct-", "_gitlab_session=", "gltok-")
	}
	e.log.setSecrets(phrases, prefixes)
}

func (e *emulation) setCancel(f context.CancelFunc) {
	e.mu.Lock()
	e.cancelFn = f
	e.mu.Unlock()
}

func (e *emulation) cancel() {
	e.mu.Lock()
	f := e.cancelFn
	e.mu.Unlock()
	if f != nil {
		f()
	}
}

var (
	errPrepareTimeout    = errors.New("job prepare timeout")
	errGetSourcesTimeout = errors.New("job get sources timeout")
	errScriptTimeout     = errors.New("script timeout")
)

// run is Build.Run minus setTraceStatus.
func (e *emulation) run(parent context.Context, job Job) error {
	e.printHeader()
	e.main = logger{e.log.stream(streamExecutor, 'O')}
	defer func() { _ = e.main.s.Close() }()

	timeout := time.Duration(e.b.timeoutSec) * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	e.setCancel(cancel)

	// A GitLab cancel reaches the build through the trace's cancel func.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-parent.Done():
			e.cancel()
		case <-stop:
		}
	}()

	prepareTimeout := timeout
	if p := e.r.PrepareTimeout; p > 0 && p < timeout {
		prepareTimeout = p
	}
	prepareCtx, prepareCancel := context.WithTimeoutCause(ctx, prepareTimeout,
		fmt.Errorf("%w: exceeded timeout of %s", errPrepareTimeout, prepareTimeout))
	defer prepareCancel()

	ex, err := e.executeBuildSection(prepareCtx)
	if err != nil {
		if errors.Is(context.Cause(prepareCtx), errPrepareTimeout) {
			return &BuildError{Inner: context.Cause(prepareCtx), FailureReason: JobExecutionTimeout}
		}
		return err
	}
	defer ex.cleanup()

	return e.runBuild(ctx, prepareCtx)
}

func (e *emulation) printHeader() {
	h := logger{e.log.stream(streamExecutor, 'O')}
	h.println("Running with gitlab-runner " + RunnerVersion + " (" + RunnerRevision + ")")
	if e.r.ShortToken != "" {
		h.println(fmt.Sprintf("  on %s %s, system ID: %s", e.r.Name, e.r.ShortToken, e.r.SystemID))
	}
	uuid := "not supported with this GitLab version"
	if e.b.resp.RunnerInfo.UUID != "" {
		uuid = e.b.resp.RunnerInfo.UUID
	}
	h.println("  UUID: " + uuid)
	var changed []string
	for _, f := range featureFlags {
		if e.b.flags[f.name] != f.def {
			changed = append(changed, fmt.Sprintf("%s:%t", f.name, e.b.flags[f.name]))
		}
	}
	if len(changed) > 0 {
		h.println("  feature flags:", strings.Join(changed, ", "))
	}
	_ = h.s.Close()
}

// section is helpers.BuildSection.Execute; without features.trace_sections
// the markers are skipped.
func (e *emulation) section(name string, fn func() error) error {
	sections := e.b.resp.Features.TraceSections
	if sections {
		e.main.sectionStart(name, e.now().UTC().Unix())
		defer func() { e.main.sectionEnd(name, e.now().UTC().Unix()) }()
	}
	return fn()
}

func (e *emulation) executeBuildSection(ctx context.Context) (*executor, error) {
	var ex *executor
	err := e.section("prepare_executor", func() error {
		e.main.println(ansiBoldCyan + `Preparing the "custom" executor` + ansiReset)
		var err error
		ex, err = e.retryCreateExecutor(ctx)
		return err
	})
	return ex, err
}

func (e *emulation) retryCreateExecutor(ctx context.Context) (*executor, error) {
	interval := e.r.PreparationRetryInterval
	if interval == 0 {
		interval = DefaultPreparationRetry
	}
	var err error
	for range PreparationRetries {
		ex := &executor{e: e}
		err = ex.prepare(ctx)
		if err == nil {
			return ex, nil
		}
		ex.cleanup()
		var be *BuildError
		if errors.As(err, &be) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, handleError(context.Cause(ctx), e.b.timeoutSec)
		}
		e.main.softErrorln("Preparation failed:", err)
		e.main.infoln("Will be retried in", max(interval, 0), "...")
		if interval > 0 {
			t := time.NewTimer(interval)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, handleError(context.Cause(ctx), e.b.timeoutSec)
			}
		}
	}
	return nil, err
}

// handleError is Build.runtimeStateAndError's error half.
func handleError(err error, timeoutSec int64) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, errJobCanceled):
		return &BuildError{Inner: errJobCanceled, FailureReason: JobCanceled}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errScriptTimeout):
		return &BuildError{
			Inner:         fmt.Errorf("execution took longer than %v seconds", time.Duration(timeoutSec)*time.Second),
			FailureReason: JobExecutionTimeout,
		}
	}
	return err
}

func runtimeState(err error) string {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, errJobCanceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errScriptTimeout):
		return "timedout"
	case err == nil:
		return "success"
	}
	return "failed"
}

// runBuild is Build.run: the stages run in a goroutine while the job
// context decides whether the job ended by cancel or timeout first.
func (e *emulation) runBuild(ctx, prepareCtx context.Context) error {
	runCtx, runCancel := context.WithCancel(ctx)
	defer runCancel()
	finish := make(chan error, 1)
	go func() { finish <- e.executeScript(runCtx, prepareCtx) }()

	select {
	case <-ctx.Done():
		err := handleError(context.Cause(ctx), e.b.timeoutSec)
		runCancel()
		select {
		case <-finish:
		case <-time.After(WaitForBuildFinishTimeout):
			e.main.warningln("Timed out waiting for the build to finish")
		}
		return err
	case err := <-finish:
		if ctx.Err() != nil {
			return handleError(context.Cause(ctx), e.b.timeoutSec)
		}
		return err
	}
}

func (e *emulation) executeScript(ctx, prepareCtx context.Context) error {
	err := e.executeStage(prepareCtx, bashscript.StagePrepare, nil)
	if err != nil {
		if errors.Is(context.Cause(prepareCtx), errPrepareTimeout) {
			return &BuildError{Inner: context.Cause(prepareCtx), FailureReason: JobExecutionTimeout}
		}
		return fmt.Errorf("prepare environment: %w. "+
			"Check https://docs.gitlab.com/runner/shells/#shell-profile-loading for more information", err)
	}

	timeout := time.Duration(e.b.timeoutSec) * time.Second
	gsCtx, gsCancel := context.WithTimeoutCause(ctx, timeout,
		fmt.Errorf("%w: exceeded timeout of %s", errGetSourcesTimeout, timeout))
	err = e.executeStage(gsCtx, bashscript.StageGetSources, nil)
	gsCancel()
	if err != nil && errors.Is(context.Cause(gsCtx), errGetSourcesTimeout) {
		return &BuildError{Inner: context.Cause(gsCtx), FailureReason: JobExecutionTimeout}
	}

	if err == nil {
		err = e.executeUserScripts(ctx)
	}

	// archive_cache / upload_artifacts: nothing to do without cache or
	// artifacts, so the runner skips them.
	if cerr := e.executeStage(ctx, bashscript.StageCleanup, nil); cerr != nil {
		e.log.runnerf("WARNING: Error while executing file based variables removal script: %v\n", cerr)
	}
	return err
}

func (e *emulation) stageTimeout(name string, def time.Duration, ctx context.Context) (context.Context, context.CancelFunc) {
	d := def
	raw := value(e.b.vars, name)
	deadline, hasDeadline := ctx.Deadline()
	if strings.TrimSpace(raw) != "" {
		parsed, err := time.ParseDuration(raw)
		switch {
		case err != nil:
			e.main.warningln(fmt.Sprintf("Ignoring malformed %s timeout: %v", name, raw))
		case parsed < 0:
			e.main.warningln(fmt.Sprintf("Ignoring relative %s timeout: %v", name, raw))
		case hasDeadline && parsed > time.Until(deadline):
			e.main.warningln(fmt.Sprintf("%s timeout: %v is longer than job timeout. Setting to job timeout", name, raw))
		case parsed != 0:
			d = parsed
		}
	}
	if d == 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

func (e *emulation) executeUserScripts(ctx context.Context) error {
	scriptCtx, cancel := e.stageTimeout("RUNNER_SCRIPT_TIMEOUT", 0, ctx)
	defer cancel()
	// From here a GitLab cancel stops only the script; after_script and
	// the cleanup stages still run.
	e.setCancel(cancel)

	var err error
	for _, s := range e.b.resp.Steps {
		if s.Name == "after_script" {
			continue
		}
		s := s
		err = e.executeStage(scriptCtx, "step_"+strings.ToLower(s.Name), &s)
		if err != nil {
			break
		}
	}

	switch {
	case ctx.Err() == nil && errors.Is(scriptCtx.Err(), context.Canceled):
		err = &BuildError{Inner: errJobCanceled, FailureReason: JobCanceled}
		e.main.warningln("script canceled externally (UI, API)")
	case !errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(scriptCtx.Err(), context.DeadlineExceeded):
		err = &BuildError{Inner: fmt.Errorf("%w: %w", errScriptTimeout, scriptCtx.Err()), FailureReason: JobExecutionTimeout}
	}

	afterCtx, afterCancel := e.stageTimeout("RUNNER_AFTER_SCRIPT_TIMEOUT", DefaultAfterScriptTimeout, ctx)
	defer afterCancel()
	overwriteKey(e.b.vars, "CI_JOB_STATUS", runtimeState(err))
	if aerr := e.executeStage(afterCtx, bashscript.StageAfterScript, nil); aerr != nil {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			ignore, perr := strconv.ParseBool(value(e.b.vars, "AFTER_SCRIPT_IGNORE_ERRORS"))
			if perr != nil {
				ignore = true
			}
			if ignore {
				e.main.warningln("after_script failed, but job will continue unaffected:", aerr)
			} else if err == nil {
				err = aerr
			}
		}
	}
	return err
}

var stageDescriptions = map[string]string{
	bashscript.StagePrepare:     "Preparing environment",
	bashscript.StageGetSources:  "Getting source from Git repository",
	bashscript.StageAfterScript: "Running after_script",
	bashscript.StageCleanup:     "Cleaning up project directory and file based variables",
}

func stageDescription(stage string) string {
	if d, ok := stageDescriptions[stage]; ok {
		return d
	}
	return fmt.Sprintf("Executing %q stage of the job script", stage)
}

// executeStage is Build.executeStage; userStep is set for script steps.
func (e *emulation) executeStage(ctx context.Context, stage string, userStep *step) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	defer func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			e.main.warningln(stage + " could not run to completion because the timeout was exceeded. " +
				"For more control over job and script timeouts see: " +
				"https://docs.gitlab.com/ci/runners/configure_runners/#set-script-and-after_script-timeouts")
		}
	}()

	script, err := e.generate(stage, userStep)
	if errors.Is(err, bashscript.ErrSkipStage) {
		return nil
	}
	if err != nil {
		return err
	}
	return e.section(stage, func() error {
		e.main.println(ansiBoldCyan + stageDescription(stage) + ansiReset)
		return e.ex.run(ctx, stage, script)
	})
}

func (e *emulation) generate(stage string, userStep *step) (string, error) {
	j := bashscript.Job{
		Variables:       e.b.vars,
		BuildsDir:       e.b.rootDir,
		ProjectDir:      e.b.buildDir,
		TmpDir:          e.b.tmpDir(),
		RemoteURL:       e.b.remoteURL(),
		Hostname:        e.b.hostname,
		Shell:           e.ex.shell,
		AllowGitFetch:   e.b.resp.AllowGitFetch,
		TraceSections:   e.b.resp.Features.TraceSections,
		PreBuildScript:  e.r.PreBuildScript,
		PostBuildScript: e.r.PostBuildScript,
	}
	name := stage
	if userStep != nil {
		// Every script step (not only "script") is a user script stage
		// named step_<name>; the step exists, so even an empty one runs.
		name = bashscript.StageUserScript
		j.Script = append([]string{}, userStep.Script...)
	}
	for _, s := range e.b.resp.Steps {
		if s.Name == "after_script" {
			j.AfterScript = s.Script
		}
	}
	return bashscript.Generate(j, name)
}

// setTraceStatus is Build.setTraceStatus.
func (e *emulation) setTraceStatus(err error) {
	l := logger{e.log.stream(streamExecutor, 'O')}
	defer func() { _ = l.s.Close() }()
	res := e.res
	if err == nil {
		res.State = "success"
		l.infoln("Job succeeded")
		return
	}
	res.State = "failed"
	var be *BuildError
	if errors.As(err, &be) {
		res.RunnerFailureReason = be.FailureReason
		res.ExitCode = be.ExitCode
		msg := fmt.Sprint("Job failed: ", err)
		if be.FailureReason == RunnerSystemFailure {
			msg = fmt.Sprint("Job failed (system failure): ", err)
		}
		l.softErrorln(msg)
	} else {
		res.RunnerFailureReason = RunnerSystemFailure
		l.errorln("Job failed (system failure):", err)
	}
	res.FailureReason = mapFailureReason(res.RunnerFailureReason, e.b.resp.Features.FailureReasons)
}

// mapFailureReason is common/failure_reason_mapper.go.
func mapFailureReason(reason string, supported []string) string {
	supported = append(slices.Clone(supported), ScriptFailure, RunnerSystemFailure, JobExecutionTimeout)
	compat := map[string]string{
		"image_pull_failure":                 RunnerSystemFailure,
		ConfigurationError:                   ScriptFailure,
		"runner_external_dependency_failure": RunnerSystemFailure,
	}
	if reason == "" {
		return ScriptFailure
	}
	for range 5 {
		if slices.Contains(supported, reason) {
			return reason
		}
		next, ok := compat[reason]
		if !ok {
			break
		}
		reason = next
	}
	return UnknownFailure
}

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
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return fmt.Errorf("emulator: compact job response: %w", err)
	}
	buf.WriteByte('\n')
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
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
	env = append(env,
		"TMPDIR="+x.tempDir,
		api.BuildFailureExitCodeVariable+"="+strconv.Itoa(BuildFailureExitCode),
		api.SystemFailureExitCodeVariable+"="+strconv.Itoa(SystemFailureExitCode),
		api.BuildCodeFileVariable+"="+x.buildCodeFile,
		api.JobResponseFileVariable+"="+x.responseFile,
	)
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
