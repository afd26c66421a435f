package realrunner

import (
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
	assertChatSaysGitLabStatus(t, r, job)
	r.assertClean(520)
}

// A hard abort (Job-Status: canceled or failed: GitLab has given the job up) skips
// after_script; cleanup still runs and must still kill everything. GitLab no longer
// accepts the job's token by then; with the admin's read_api token cleanup asks the
// project jobs API, and chat says what GitLab shows: cancelled for canceled, failed (with
// GitLab's failure_reason) for failed.
func TestHardAbort(t *testing.T) {
	for i, status := range []string{coordinatortest.Canceled, coordinatortest.Failed} {
		t.Run(status, func(t *testing.T) {
			r := newRig(t, rigOptions{adminToken: true})
			job := runAbortedJob(t, r, int64(530+i), status)
			assertChatSaysGitLabStatus(t, r, job)
			if job.Lookups() == 0 {
				t.Error("cleanup never asked GitLab's project jobs API")
			}
		})
	}
}

// Without gitlab.token_file nothing can tell cleanup how GitLab ended an aborted job (its
// token is rejected): chat says it was stopped, because GitLab ended it — never
// "cancelled" for a job GitLab failed, nor runner_interrupted.
func TestHardAbortWithoutAdminToken(t *testing.T) {
	for i, status := range []string{coordinatortest.Canceled, coordinatortest.Failed} {
		t.Run(status, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			job := runAbortedJob(t, r, int64(535+i), status)
			start := channel(t, r.slack, 1)[0]
			const want = ":octagonal_sign: <@U0123ABCD> *deploy* in ops/infra stopped: GitLab ended the job (cancelled or failed it) after"
			if !strings.HasPrefix(start.Text, want) {
				t.Errorf("chat says %q, want %q…; GitLab shows the job %s", start.Text, want, job.Status())
			}
			if job.Lookups() != 0 {
				t.Error("the project jobs API was asked without a token")
			}
		})
	}
}

// runAbortedJob runs a job that GitLab aborts with status once it is busy, and checks what
// does not depend on the executor's GitLab token: the runner's report, GitLab's status, no
// process left, no after_script, nothing left on disk.
func runAbortedJob(t *testing.T, r *rig, id int64, status string) *coordinatortest.Job {
	t.Helper()
	pids := filepath.Join(r.dir, "pids")
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
	return job
}

// assertChatSaysGitLabStatus checks that the job's final status in the channel is the
// status GitLab shows, with GitLab's failure_reason where chat can know it.
func assertChatSaysGitLabStatus(t *testing.T, r *rig, job *coordinatortest.Job) {
	t.Helper()
	start := channel(t, r.slack, 1)[0]
	const who = "<@U0123ABCD> *deploy* in ops/infra "
	var prefix string
	switch st, why := job.Status(), job.FailureReason(); {
	case st == "success":
		prefix = ":white_check_mark: " + who + "succeeded after"
	case st == "canceled":
		prefix = ":no_entry_sign: " + who + "cancelled after"
	case st == "failed" && why == "runner_interrupted":
		prefix = ":x: " + who + "failed: the runner was stopped while the job ran (runner_interrupted) after"
	case st == "failed" && why == coordinatortest.AbortFailureReason:
		prefix = ":x: " + who + "failed: GitLab failed the job (" + why + ") after"
	case st == "failed":
		prefix = ":x: " + who + "failed"
	default:
		t.Fatalf("GitLab shows the job %q", st)
	}
	if !strings.HasPrefix(start.Text, prefix) {
		t.Errorf("chat says %q, want %q…; GitLab shows the job %s (%s)", start.Text, prefix, job.Status(), job.FailureReason())
	}
}

// SIGTERM to the runner itself: GitLab records runner_interrupted, and chat must say the
// job failed because the runner stopped, not that someone cancelled it — whether cleanup
// asks with the admin's token or, still accepted while GitLab runs the job, the job's own.
func TestRunnerInterrupted(t *testing.T) {
	for i, admin := range []bool{true, false} {
		t.Run(map[bool]string{true: "admin token", false: "job token"}[admin], func(t *testing.T) {
			r := newRig(t, rigOptions{adminToken: admin})
			pids := filepath.Join(r.dir, "pids")
			id := int64(540 + i)
			job := r.gitlab.Enqueue(t, chatJob(t, jobSpec{id: id, script: busyScript(pids, "children-started"),
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
			r.assertClean(id)
			assertChatSaysGitLabStatus(t, r, job)
			if admin != (job.Lookups() > 0) {
				t.Errorf("with the admin token %v, the project jobs API was asked %d times", admin, job.Lookups())
			}
		})
	}
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
