package realrunner

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/gitlab/coordinatortest"
)

func TestFailureExitCode(t *testing.T) {
	r := newRig(t, rigOptions{})
	j, final := r.run(chatJob(t, jobSpec{id: 510,
		script:      []string{"echo about to fail", "exit 42", "echo never"},
		afterScript: []string{`echo "after: $CI_JOB_STATUS"`},
	}))
	assertFinal(t, final, "failed", "script_failure", 42)
	log := j.Log()
	if !strings.Contains(log, "after: failed\n") || strings.Contains(log, "never\n") ||
		!strings.Contains(log, "ERROR: Job failed: exit status 42") {
		t.Errorf("GitLab's job log:\n%s", log)
	}
	start := channel(t, r.slack, 1)[0]
	if !strings.HasPrefix(start.Text, ":x: <@U0123ABCD> *deploy* in ops/infra failed with exit code 42 after") {
		t.Errorf("final status = %q", start.Text)
	}
	if got := reply(t, r.slack, start).Text; !strings.Contains(got, "about to fail") {
		t.Errorf("reply = %q", got)
	}
	r.assertClean(510)
}

// busyScript prints a marker, then keeps printing (the runner learns of a cancel only from
// the answer to a trace PATCH, and sends none while a job is silent) while a child that
// ignores TERM and a nohup'd grandchild run; their pids go to pids.
func busyScript(pids, marker string) []string {
	return []string{
		"(trap '' TERM; exec sleep 300) & echo $! >> " + pids,
		"nohup sleep 300 >/dev/null 2>&1 & echo $! >> " + pids,
		"echo " + marker,
		"for i in $(seq 1 600); do echo tick $i; sleep 0.5; done",
	}
}

func TestCancelLeavesNoProcess(t *testing.T) {
	r := newRig(t, rigOptions{})
	pids := filepath.Join(r.dir, "pids")
	job := r.gitlab.Enqueue(t, chatJob(t, jobSpec{id: 520, script: busyScript(pids, "children-started"),
		afterScript: []string{`echo "after: $CI_JOB_STATUS"`}}))
	job.CancelWhen("children-started")
	r.start(1).wait(t)
	final := r.final(job)
	assertFinal(t, final, "failed", "job_canceled", 0)
	assertDead(t, pids)
	if log := job.Log(); !strings.Contains(log, "after: canceled\n") {
		t.Errorf("after_script did not run with CI_JOB_STATUS=canceled:\n%s", log)
	}
	assertChatSaysGitLabStatus(t, r, job, 0, "")
	r.assertClean(520)
}

// A hard abort (Job-Status: canceled or failed: GitLab has given the job up) skips
// after_script; cleanup still runs and must still kill everything. Chat must then say what
// GitLab shows: cancelled for canceled, failed for failed.
func TestHardAbort(t *testing.T) {
	for i, status := range []string{coordinatortest.Canceled, coordinatortest.Failed} {
		t.Run(status, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			pids := filepath.Join(r.dir, "pids")
			id := int64(530 + i)
			job := r.gitlab.Enqueue(t, chatJob(t, jobSpec{id: id, script: busyScript(pids, "children-started"),
				afterScript: []string{`echo "after: $CI_JOB_STATUS"`}}))
			job.AbortWhen("children-started", status)
			r.start(1).wait(t)
			final := r.final(job)
			// The runner reports its side of it; GitLab keeps its own status.
			assertFinal(t, final, "failed", "job_canceled", 0)
			if job.Status() != status {
				t.Errorf("GitLab shows %q", job.Status())
			}
			assertDead(t, pids)
			if log := job.Log(); strings.Contains(log, "after: ") {
				t.Errorf("after_script ran after an abort:\n%s", log)
			}
			r.assertClean(id)
			assertChatSaysGitLabStatus(t, r, job, 9, "a hard abort is reported as cancelled whatever GitLab says")
		})
	}
}

// assertChatSaysGitLabStatus checks that the job's final status in the channel is the
// status GitLab shows. When chat says "cancelled" for a job GitLab shows failed, the known
// bug of issue is the reason, and the test skips.
func assertChatSaysGitLabStatus(t *testing.T, r *rig, job *coordinatortest.Job, issue int, bug string) {
	t.Helper()
	start := channel(t, r.slack, 1)[0]
	prefix := map[string]string{
		"success":  ":white_check_mark: <@U0123ABCD> *deploy* in ops/infra succeeded",
		"failed":   ":x: <@U0123ABCD> *deploy* in ops/infra failed",
		"canceled": ":no_entry_sign: <@U0123ABCD> *deploy* in ops/infra cancelled",
	}[job.Status()]
	if prefix == "" {
		t.Fatalf("GitLab shows the job %q", job.Status())
	}
	if strings.HasPrefix(start.Text, prefix) {
		return
	}
	if issue != 0 && (strings.HasPrefix(start.Text, ":no_entry_sign:") || strings.HasPrefix(start.Text, ":white_check_mark:")) {
		knownBug(t, issue, fmt.Sprintf("%s: GitLab shows %s, chat says %q", bug, job.Status(), start.Text))
	}
	t.Errorf("chat says %q; GitLab shows the job %s", start.Text, job.Status())
}

// SIGTERM to the runner itself: GitLab records runner_interrupted, and chat must say the
// job failed because the runner stopped, not that someone cancelled it.
func TestRunnerInterrupted(t *testing.T) {
	r := newRig(t, rigOptions{})
	pids := filepath.Join(r.dir, "pids")
	job := r.gitlab.Enqueue(t, chatJob(t, jobSpec{id: 540, script: busyScript(pids, "children-started"),
		afterScript: []string{`echo "after: $CI_JOB_STATUS"`}}))
	p := r.start(1)
	waitFor(t, time.Minute, "the job's marker in GitLab's trace", func() bool {
		return strings.Contains(job.Log(), "\nchildren-started\n")
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	final := r.final(job)
	assertFinal(t, final, "failed", "runner_interrupted", 0)
	assertDead(t, pids)
	r.assertClean(540)
	assertChatSaysGitLabStatus(t, r, job, 9, "runner_interrupted is reported as cancelled")
}

func TestTimeout(t *testing.T) {
	r := newRig(t, rigOptions{})
	pids := filepath.Join(r.dir, "pids")
	j, final := r.run(chatJob(t, jobSpec{id: 550, timeout: 6,
		script: []string{"sleep 300 & echo $! >> " + pids, "echo waiting", "sleep 300"}}))
	assertFinal(t, final, "failed", "job_execution_timeout", 0)
	assertDead(t, pids)
	// "6s seconds" is the runner's own wording (a Duration printed before "seconds").
	if !strings.Contains(j.Log(), "ERROR: Job failed: execution took longer than 6s seconds") {
		t.Errorf("GitLab's job log:\n%s", j.Log())
	}
	start := channel(t, r.slack, 1)[0]
	if !strings.HasPrefix(start.Text, ":alarm_clock: <@U0123ABCD> *deploy* in ops/infra timed out after") {
		t.Errorf("final status = %q", start.Text)
	}
	r.assertClean(550)
}
