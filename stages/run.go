package stages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"gitlab.com/gitlab-org/gitlab-runner/executors/custom/api"

	"github.com/chatops-executor/chatops-executor/failure"
)

// passEnv lists the executor's own environment variables a job script may see. The
// runner's script exports every job variable itself, so the script needs nothing of the
// executor's environment but a sane PATH, locale and home; everything else — a Slack token
// in SLACK_BOT_TOKEN, the runner's own settings — stays out of the job.
var passEnv = []string{"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM"}

// defaultPath is the script's PATH when the executor has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Run executes the runner-generated script for one stage. The script runs with the
// configured shell, in its own process group, with a clean environment, as the user prepare
// chose (jobuser.go): the job's leased uid, or run_as. Its output goes to the runner
// unchanged. A script failure is a build failure carrying the script's exit code; a SIGTERM
// from the runner (cancel or timeout) stops the job's processes — every process of a leased
// uid, else the script's process group — gracefully then by force, and is recorded for
// cleanup. When the script ends, whatever it left running is stopped the same way (kill.go).
//
// The output of stages that run the job's own commands is also captured for the reply
// (see capture.go), and while the user script runs, the chat's start message shows
// progress.
func (s *Stages) Run(ctx context.Context, scriptPath, stage string) error {
	if !stageNameRe.MatchString(stage) {
		return failure.Systemf("invalid stage name %q", stage)
	}
	j, err := s.loadJob()
	if err != nil {
		return err
	}
	st := OpenState(s.Cfg.Executor.StateDir, j.ID)
	if st.Exists() {
		unlock := s.lockForCall(st)
		defer unlock()
	}
	rec, err := st.ReadJob()
	if err != nil {
		return failure.Systemf("%w", err)
	}
	if rec.Denied {
		return failure.Buildf("job denied: %s", rec.DenyReason)
	}
	if !rec.Decided {
		return failure.Systemf("job %d was never decided by the policy: prepare did not finish", j.ID)
	}
	if rec.Approval != nil && !rec.Approved {
		// Prepare never lets this happen; should a record say so anyway, nothing runs.
		return failure.Buildf("job denied: rule %q needs an approval in chat, and none was recorded", rec.Rule)
	}
	u, err := s.userOf(rec)
	if err != nil {
		return err
	}
	seq, err := st.NextSeq()
	if err != nil {
		return failure.Systemf("%w", err)
	}
	result := StageRecord{Stage: stage, Seq: seq, StartedAt: s.now()}
	s.startStage(st, result)
	capture := NewReplyCapture(st, s.captureNeeds(j, stage))
	capture.Bound(s.Cfg.Executor.StateDir, int64(s.Cfg.Executor.MaxStateSize))
	var chatCancel <-chan string
	if IsUserScript(stage) {
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.progress(pctx, j, rec, capture) }()
		var watching <-chan struct{}
		chatCancel, watching = s.watchCancel(pctx, j, rec) // chatcancel.go
		defer func() { stop(); <-done; <-watching }()
	}
	runErr := s.runScript(st, u, rec.BuildDir, scriptPath, stage, s.replyEnv(j.ID), capture, chatCancel, &result)
	result.EndedAt = s.now()
	if result.CancelledBy != "" {
		s.auditCancel(j, rec, result.CancelledBy) // chatcancel.go
	}
	if IsUserScript(stage) || stage == "after_script" {
		s.previewReply(j, rec)
	}
	if kind, _, _ := failure.Classify(runErr); runErr != nil && kind == failure.System && result.Error == "" {
		result.Error = runErr.Error()
	}
	if err := s.endStage(st, result); err != nil {
		// The job's result is the script's, whatever became of the record: cleanup reads
		// the start record and the runner's CI_JOB_STATUS instead.
		fmt.Fprintf(s.Stderr, "%s: warning: the stage's end could not be recorded: %v\n", DriverName, err)
	}
	return runErr
}

// outputLinger bounds how long the executor waits, after the script's process group is
// gone, for the output pipe to close: a process that left the group (setsid) may hold it.
const outputLinger = 5 * time.Second

// extraEnv is added to the script's environment (CHATOPS_REPLY_DIR); cancel delivers the
// Slack user whose :octagonal_sign: cancels the job (nil: none).
func (s *Stages) runScript(st State, u jobUser, dir, scriptPath, stage string, extraEnv []string, capture Capturer, cancel <-chan string, result *StageRecord) error {
	shell, err := exec.LookPath(s.Cfg.Executor.Shell)
	if err != nil {
		return failure.Systemf("find shell %q: %w", s.Cfg.Executor.Shell, err)
	}
	script, err := scriptFile(scriptPath)
	if err != nil {
		return failure.Systemf("%w", err)
	}
	defer script.Close()

	cmd := exec.Command(shell)
	cmd.Dir = dir
	if _, err := os.Stat(cmd.Dir); err != nil {
		cmd.Dir = "/"
	}
	cmd.WaitDelay = outputLinger
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The script is handed over as an open memfd rather than the runner's path, which only
	// the runner's user can read (see scriptFile).
	cmd.ExtraFiles = []*os.File{script}
	cmd.Args = []string{shell, "/dev/fd/3"}
	cmd.SysProcAttr.Credential = u.credential()
	cmd.Env = append(s.scriptEnv(u), extraEnv...)

	var sink Sink
	if capture != nil {
		if sink, err = capture.Capture(stage); err != nil {
			// No capture costs the reply, never the job.
			s.captureLost(st, stage, fmt.Errorf("start output capture: %w", err))
			sink = nil
		}
	}
	var copying *outputCopy
	var pipeW *os.File
	if sink == nil {
		cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			sink.Close()
			return failure.Systemf("create output pipe: %w", err)
		}
		// Best effort: a smaller pipe is only slower.
		_, _ = unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, pipeSize)
		// One pipe for both streams keeps the job's interleaving of stdout and stderr, which
		// the runner merges into one log anyway.
		cmd.Stdout, cmd.Stderr, pipeW = w, w, w
		defer w.Close()
		copying = startCopy(s.Stdout, r, sink)
	}

	if err := startScript(cmd, u.Isolation == OwnUID); err != nil {
		if copying != nil {
			pipeW.Close()
			<-copying.done
			sink.Close()
		}
		return failure.Systemf("start %s as uid %d in %s: %w", shell, u.UID, cmd.Dir, err)
	}
	pgid := cmd.Process.Pid
	if err := st.RecordGroup(pgid, u.UID); err != nil {
		fmt.Fprintf(s.Stderr, "%s: warning: %v\n", DriverName, err)
	}
	if pipeW != nil {
		// The child holds its own copy; ours must go so the copy sees EOF.
		pipeW.Close()
	}

	exited := make(chan struct{})
	go func() { waitExit(pgid); close(exited) }()

	var killTimer <-chan time.Time
	terminated := false
	// stop ends the script's group once, for the runner's SIGTERM or a cancel from chat
	// (by, a Slack user; "" for the runner): SIGTERM now, SIGKILL after kill_grace.
	stop := func(why, by string) {
		terminated = true
		result.Terminated, result.TerminatedAt, result.CancelledBy = true, s.now(), by
		fmt.Fprintf(s.Stderr, "\n%s: %s: stopping the job's processes (grace period %s)\n",
			DriverName, why, s.Cfg.Executor.KillGrace)
		terminate(u, pgid, syscall.SIGTERM)
		s.noteTerminated(st, *result)
		killTimer = time.After(s.Cfg.Executor.KillGrace.D())
	}
loop:
	for {
		select {
		case <-exited:
			break loop
		case sig := <-s.Signals:
			if !terminated {
				stop(fmt.Sprintf("received %v", sig), "")
			}
		case by := <-cancel:
			if !terminated {
				stop("cancelled from chat by Slack user "+by, by)
			}
		case <-killTimer:
			fmt.Fprintf(s.Stderr, "%s: processes still running after %s: killing them\n", DriverName, s.Cfg.Executor.KillGrace)
			terminate(u, pgid, syscall.SIGKILL)
			killTimer = nil
		}
	}
	// Whatever the script left (a backgrounded command; with a leased uid, anything at
	// all) ends with the stage, before the script's exit status is collected.
	endErr := endStage(u, pgid)
	waitErr := cmd.Wait()
	if endErr != nil {
		fmt.Fprintf(s.Stderr, "%s: warning: %v\n", DriverName, endErr)
	}

	var copyErr error
	if copying != nil {
		select {
		case copyErr = <-copying.done:
		case <-time.After(outputLinger):
			copying.abandon() // stops the copy's read; its error is expected
			<-copying.done
			fmt.Fprintf(s.Stderr, "%s: warning: a process outside the job's process group kept its output open; stopped reading\n", DriverName)
		}
		if err := sink.Close(); err != nil && copyErr == nil {
			copyErr = err
		}
		if n := copying.lost.Load(); n > 0 {
			fmt.Fprintf(s.Stderr, "%s: warning: the reply capture fell behind the job: %d bytes of output are missing from the chat reply (the job log has them all)\n", DriverName, n)
		}
	}

	code, sigName := exitStatus(cmd.ProcessState)
	result.ExitCode, result.Signal = code, sigName
	if terminated && result.CancelledBy != "" {
		return failure.Buildf("job cancelled from chat by Slack user %s", result.CancelledBy)
	}
	if terminated {
		return failure.Buildf("job stopped by the runner (cancelled or timed out)")
	}
	if waitErr != nil && cmd.ProcessState == nil {
		return failure.Systemf("wait for script: %w", waitErr)
	}
	if errors.Is(copyErr, errCapture) {
		s.captureLost(st, stage, copyErr)
		copyErr = nil
	}
	if copyErr != nil {
		return failure.Systemf("copy job output: %w", copyErr)
	}
	if code != 0 {
		if err := s.writeBuildExitCode(code); err != nil {
			return err
		}
		if sigName != "" {
			return failure.Script(code, fmt.Errorf("script killed by %s", sigName))
		}
		return failure.Script(code, fmt.Errorf("script exited with code %d", code))
	}
	return nil
}

// exitStatus returns the script's exit code, and the signal's name when a signal ended
// it (the code is then 128+signal, as a shell reports it).
func exitStatus(ps *os.ProcessState) (int, string) {
	if ps == nil {
		return -1, ""
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), unix.SignalName(ws.Signal())
	}
	return ps.ExitCode(), ""
}

func (s *Stages) scriptEnv(u jobUser) []string {
	env := make([]string, 0, len(passEnv)+2)
	hasPath := false
	for _, k := range passEnv {
		if v := s.Getenv(k); v != "" {
			env = append(env, k+"="+v)
			hasPath = hasPath || k == "PATH"
		}
	}
	if !hasPath {
		env = append(env, "PATH="+defaultPath)
	}
	home := u.Home
	if home == "" {
		home = "/"
	}
	env = append(env, "HOME="+home)
	if u.Name != "" {
		env = append(env, "USER="+u.Name, "LOGNAME="+u.Name)
	}
	return env
}

// writeBuildExitCode tells the runner the script's real exit code, so that
// `allow_failure: exit_codes` can match it.
func (s *Stages) writeBuildExitCode(code int) error {
	path := s.Getenv(api.BuildCodeFileVariable)
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(code)), 0o600); err != nil {
		return failure.Systemf("write %s: %w", api.BuildCodeFileVariable, err)
	}
	return nil
}

func lookupCredential(name string) (*syscall.Credential, string, error) {
	if os.Geteuid() != 0 {
		return nil, "", failure.WithHint(failure.Systemf("executor.run_as = %q needs the executor to run as root", name),
			"run gitlab-runner as root, or leave run_as empty")
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, "", failure.Systemf("executor.run_as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, "", failure.Systemf("executor.run_as: user %q has a non-numeric uid or gid", name)
	}
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, u.HomeDir, nil
}
