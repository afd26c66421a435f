package emulator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// Exit codes the runner announces in BUILD_FAILURE_EXIT_CODE and
// SYSTEM_FAILURE_EXIT_CODE (executors/custom/command/command.go).
const (
	BuildFailureExitCode  = 1
	SystemFailureExitCode = 2
)

// Failure reasons (common/network.go). JobCanceled and ConfigurationError
// are runner-internal; see Result.FailureReason for what GitLab receives.
const (
	ScriptFailure       = "script_failure"
	RunnerSystemFailure = "runner_system_failure"
	RunnerInterrupted   = "runner_interrupted"
	JobExecutionTimeout = "job_execution_timeout"
	UnknownFailure      = "unknown_failure"
	ConfigurationError  = "runner_configuration_error"
	JobCanceled         = "job_canceled"
)

// BuildError is common.BuildError: an error the runner attributes to the
// job, with a failure reason and the script's exit code. Errors of any
// other type end the job as a runner system failure.
type BuildError struct {
	Inner         error
	FailureReason string
	ExitCode      int
}

func (e *BuildError) Error() string {
	if e.Inner == nil {
		return "error"
	}
	return e.Inner.Error()
}

func (e *BuildError) Unwrap() error { return e.Inner }

// UnknownFailureError is command.UnknownFailureError: the executable exited
// with a code other than 0, BUILD_FAILURE_EXIT_CODE and
// SYSTEM_FAILURE_EXIT_CODE, or died by a signal (code -1). It is not a
// BuildError, so the job fails as runner_system_failure.
type UnknownFailureError struct {
	Inner    error
	ExitCode int
}

func (e *UnknownFailureError) Error() string {
	return fmt.Sprintf("unknown Custom executor executable exit code %d; executable execution terminated with: %v", e.ExitCode, e.Inner)
}

func (e *UnknownFailureError) Unwrap() error { return e.Inner }

// KillProcessError is process.KillProcessError: the group survived SIGKILL
// for ForcefulKillTimeout.
type KillProcessError struct{ PID int }

func (e *KillProcessError) Error() string {
	return fmt.Sprintf("failed to kill process PID=%d, likely process is dormant", e.PID)
}

var (
	errJobCanceled = errors.New("canceled")
)

// execSpec is one call of the executor binary.
type execSpec struct {
	call           *Call
	executable     string
	dir            string
	env            []string
	stdout, stderr io.Writer
	buildCodeFile  string
	graceful       time.Duration
	force          time.Duration
	started        func(pid int)
}

// runCommand is command.Run: start the process in its own process group,
// wait for it, and when ctx ends first send SIGTERM to the group, wait the
// graceful timeout, then SIGKILL the group and wait the force timeout.
func runCommand(ctx context.Context, s execSpec) error {
	cmd := exec.Command(s.executable, s.call.Args...)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdout = s.stdout
	cmd.Stderr = s.stderr
	// process/job_unix.go: every exec gets its own group so the runner can
	// signal the executor and everything it started at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	s.call.Start = time.Now()
	if err := cmd.Start(); err != nil {
		s.call.End = time.Now()
		s.call.ExitCode = -1
		err = fmt.Errorf("failed to start command: %w", err)
		s.call.Err = err.Error()
		return err
	}
	s.call.PID = cmd.Process.Pid
	if s.started != nil {
		s.started(cmd.Process.Pid)
	}

	// Buffered, unlike the runner's, so the waiter does not leak when the
	// kill path gives up on a dormant process.
	waitCh := make(chan waitResult, 1)
	go func() {
		err := cmd.Wait()
		r := waitResult{end: time.Now(), exitCode: cmd.ProcessState.ExitCode()}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.signal = ws.Signal().String()
		}
		r.err = interpretExit(err, s.buildCodeFile)
		waitCh <- r
	}()

	var r waitResult
	select {
	case r = <-waitCh:
	case <-ctx.Done():
		r = killAndWait(s, cmd.Process.Pid, waitCh)
	}
	s.call.End, s.call.ExitCode, s.call.Signal = r.end, r.exitCode, r.signal
	if r.err != nil {
		s.call.Err = r.err.Error()
	}
	return r.err
}

// waitResult carries what the waiting goroutine learnt, so that only the
// caller's goroutine writes the Call.
type waitResult struct {
	err      error
	exitCode int
	signal   string
	end      time.Time
}

func killAndWait(s execSpec, pid int, waitCh chan waitResult) waitResult {
	signal := func(sig syscall.Signal) error {
		s.call.Signals = append(s.call.Signals, sig.String())
		return syscall.Kill(-pid, sig)
	}
	if err := signal(syscall.SIGTERM); err != nil {
		// process/killer_unix.go: a failed SIGTERM is followed by SIGKILL.
		_ = signal(syscall.SIGKILL)
	}
	select {
	case r := <-waitCh:
		return r
	case <-time.After(s.graceful):
	}
	_ = signal(syscall.SIGKILL)
	select {
	case r := <-waitCh:
		return r
	case <-time.After(s.force):
		return waitResult{err: &KillProcessError{PID: pid}, exitCode: -1, end: time.Now()}
	}
}

// interpretExit is command.waitForCommand + parseBuildFailure.
func interpretExit(err error, buildCodeFile string) error {
	var eerr *exec.ExitError
	if !errors.As(err, &eerr) {
		return err
	}
	switch code := eerr.ExitCode(); {
	case code == BuildFailureExitCode:
		return parseBuildFailure(eerr, buildCodeFile)
	case code != SystemFailureExitCode:
		return &UnknownFailureError{Inner: eerr, ExitCode: code}
	}
	// SYSTEM_FAILURE_EXIT_CODE: the bare *exec.ExitError, which the runner
	// reports as a system failure.
	return eerr
}

func parseBuildFailure(eerr *exec.ExitError, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return &BuildError{Inner: eerr, ExitCode: BuildFailureExitCode, FailureReason: ScriptFailure}
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	var first string
	if sc.Scan() {
		first = sc.Text()
	}
	code, err := strconv.Atoi(first)
	if err != nil {
		return &UnknownFailureError{Inner: eerr, ExitCode: SystemFailureExitCode}
	}
	return &BuildError{Inner: fmt.Errorf("exit status %s", first), ExitCode: code, FailureReason: ScriptFailure}
}
