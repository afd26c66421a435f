package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

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
	// interrupt is Build.SystemInterrupt (nil: never).
	interrupt <-chan struct{}
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

	// A GitLab cancel reaches the build through the trace's cancel func; an
	// abort through its abort func, which is always the job context's.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-parent.Done():
			e.cancel()
		case <-stop:
		}
	}()
	if job.Abort != nil {
		go func() {
			select {
			case <-job.Abort:
				cancel()
			case <-stop:
			}
		}()
	}
	e.interrupt = job.Interrupt

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

	wait := func() {
		select {
		case <-finish:
		case <-time.After(WaitForBuildFinishTimeout):
			e.main.warningln("Timed out waiting for the build to finish")
		}
	}
	select {
	case <-ctx.Done():
		err := handleError(context.Cause(ctx), e.b.timeoutSec)
		runCancel()
		wait()
		return err
	case <-e.interrupt:
		err := &BuildError{Inner: errors.New("aborted: terminated"), FailureReason: RunnerInterrupted}
		runCancel()
		wait()
		return err
	case err := <-finish:
		if ctx.Err() != nil {
			return handleError(context.Cause(ctx), e.b.timeoutSec)
		}
		return err
	}
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
