package realrunner

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
)

// graceful_kill_timeout (1 s) shorter than kill_grace (30 s): on a cancel the runner
// SIGKILLs the executor while it still waits for a script that ignores SIGTERM. The
// script's processes, in their own process group, outlive the executor; cleanup must end
// them, and must not take the executor's silence for success.
func TestRunnerKillsExecutorMidStage(t *testing.T) {
	r := newRig(t, rigOptions{graceful: 1, force: 5, killGrace: "30s"})
	pids := filepath.Join(r.dir, "pids")
	job := r.gitlab.Enqueue(t, chatJob(t, jobSpec{id: 590, script: []string{
		"trap '' TERM",
		"echo $BASHPID >> " + pids,
		"(exec sleep 300) & echo $! >> " + pids,
		"echo stubborn-and-ready",
		"for i in $(seq 1 600); do echo tick $i; sleep 0.5; done",
	}}))
	job.CancelWhen("stubborn-and-ready")
	r.start(1).wait(t)
	final := r.final(job)
	assertFinal(t, final, "failed", "job_canceled", 0)
	assertDead(t, pids)
	r.assertClean(590)
	assertChatSaysGitLabStatus(t, r, job)
}

// A cancel in the answer to the runner's first PUT ends the job before any executor call:
// nothing may run, and chat hears nothing (no executor ran to tell it).
func TestCancelBeforeStart(t *testing.T) {
	r := newRig(t, rigOptions{})
	marker := filepath.Join(r.dir, "ran")
	job := r.gitlab.Enqueue(t, chatJob(t, jobSpec{id: 591, script: []string{"touch " + marker}}))
	job.Cancel()
	p := r.start(1)
	// A job that never started does not count towards --max-builds: the runner would
	// wait for another one until --wait-timeout. Stop it once GitLab has the outcome.
	if _, ok := job.Wait(time.Minute); !ok {
		t.Fatal("no final update within a minute")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	assertFinal(t, r.final(job), "failed", "job_canceled", 0)
	if n := len(job.Trace()); n != 0 {
		t.Errorf("GitLab received %d bytes of trace, want none:\n%s", n, job.Log())
	}
	if got := r.slack.Calls(slacktest.AnyMethod); len(got) != 0 {
		t.Errorf("Slack was called %d times", len(got))
	}
	if len(job.Verifications()) != 0 {
		t.Error("an executor ran")
	}
}
