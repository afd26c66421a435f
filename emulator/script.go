package emulator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/bashscript"
)

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
