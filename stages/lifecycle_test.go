package stages

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/job"
)

// countingDecider decides like AllowAll and counts, and implements RetryDecider.
type countingDecider struct {
	decided, retries int
	recorded         *Decision
}

func (c *countingDecider) Decide(context.Context, *job.Response) (Decision, error) {
	c.decided++
	return Decision{Allow: true, Rule: "test"}, nil
}

func (c *countingDecider) Recorded(int64) (Decision, bool, error) {
	if c.recorded == nil {
		return Decision{}, false, nil
	}
	return *c.recorded, true, nil
}

func (c *countingDecider) NoteRetry(*job.Response, int, Decision) error {
	c.retries++
	return nil
}

// The runner retries a prepare that died; the cleanup after the dead attempt must keep
// the job (no reply, no removal), and the retry must decide nothing again and post no
// second start message.
func TestPrepareRetryAfterADeadAttempt(t *testing.T) {
	f := newFixture(t, nil)
	d := &countingDecider{}
	f.stages.Decider = d
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The attempt "died" just before its end: the record says not prepared.
	st := f.state()
	rec, _ := st.ReadJob()
	rec.Prepared = false
	if err := st.WriteJob(rec); err != nil {
		t.Fatal(err)
	}
	if err := f.stages.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !st.Exists() || !strings.Contains(f.stderr.String(), "kept for the runner's next attempt") {
		t.Fatalf("cleanup after a dead prepare removed the job or did not say why:\n%s", f.stderr)
	}
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d.decided != 1 || d.retries != 1 {
		t.Errorf("decided %d times with %d retries noted, want 1 and 1", d.decided, d.retries)
	}
	if err := f.stages.Run(context.Background(), f.script("echo hi"), "build_script"); err != nil {
		t.Fatal(err)
	}
	if err := f.stages.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	posts, succeeded := 0, 0
	for _, m := range f.slack.Messages() {
		if strings.HasPrefix(m.History[0], ":arrow_forward:") {
			posts++
		}
		for _, h := range m.History {
			if strings.Contains(h, "succeeded") {
				succeeded++
			}
		}
	}
	if posts != 1 || succeeded != 1 {
		t.Errorf("%d start messages and %d 'succeeded', want 1 and 1:\n%s", posts, succeeded, f.slack)
	}
	if st.Exists() {
		t.Error("state left after the job's cleanup")
	}
}

// A prepare killed while deciding: the audit log has the decision, the state does not.
func TestPrepareRetryTakesTheAuditedDecision(t *testing.T) {
	f := newFixture(t, nil)
	d := &countingDecider{recorded: &Decision{Allow: true, Rule: "audited"}}
	f.stages.Decider = d
	st := f.state()
	if err := st.Create(); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteJob(JobRecord{JobID: 4242, Attempts: 1, Deciding: true, BuildDir: f.stages.buildDir(&job.Response{ID: 4242})}); err != nil {
		t.Fatal(err)
	}
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, _ := st.ReadJob()
	if d.decided != 0 || d.retries != 1 || rec.Rule != "audited" || !rec.Decided || rec.Attempts != 2 {
		t.Errorf("decided %d, retries %d, record %+v", d.decided, d.retries, rec)
	}
}

// A job that sets CI_JOB_STATUS itself overrides the runner's value in the executor's
// environment: it is not trusted then.
func TestRunnerJobStatusIgnoresAJobsOwnVariable(t *testing.T) {
	env := map[string]string{"CUSTOM_ENV_CI_JOB_STATUS": "success"}
	getenv := func(k string) string { return env[k] }
	j := &job.Response{}
	if got := RunnerJobStatus(j, getenv); got != RunnerSuccess {
		t.Errorf("status = %q, want success", got)
	}
	j.Variables = append(j.Variables, job.Variable{Key: "CI_JOB_STATUS", Value: "success"})
	if got := RunnerJobStatus(j, getenv); got != "" {
		t.Errorf("status = %q with the job's own CI_JOB_STATUS, want untrusted", got)
	}
	env["CUSTOM_ENV_CI_JOB_STATUS"] = "bogus"
	if got := RunnerJobStatus(&job.Response{}, getenv); got != "" {
		t.Errorf("status = %q for an unknown value", got)
	}
}

// A cleanup killed after its outcome and before its reply leaves the state; the next
// sweeper (another job's cleanup, flush) queues the reply once and removes the raw output.
func TestSweepFinishesADeadCleanup(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.stages.Run(context.Background(), f.script("echo the answer; exit 3"), "build_script"); err == nil {
		t.Fatal("the script's failure was lost")
	}
	st := f.state()
	// What a cleanup killed right after its first step leaves.
	if err := st.writeCleanup(cleanupRecord{StartedAt: f.stages.now(), Runner: RunnerFailed}); err != nil {
		t.Fatal(err)
	}
	unlock, err := st.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := f.stages.Sweep(context.Background(), 0); len(got) != 0 {
		t.Fatalf("swept a job whose lock is held: %+v", got)
	}
	unlock()
	got, err := f.stages.Sweep(context.Background(), 0)
	if err != nil || len(got) != 1 || !strings.Contains(got[0].What, "reply queued") || !strings.Contains(got[0].What, "failed with exit code 3") {
		t.Fatalf("sweep = %+v, %v", got, err)
	}
	if st.Exists() {
		t.Error("the raw output is still there")
	}
	if again, _ := f.stages.Sweep(context.Background(), 0); len(again) != 0 {
		t.Errorf("a second sweep did something: %+v", again)
	}
	ents, _ := os.ReadDir(filepath.Join(f.stages.Cfg.Executor.StateDir, "outbox", "4242"))
	if len(ents) == 0 {
		t.Fatal("nothing queued")
	}
	// The queued reply is delivered by the outbox; the queue says closed.
	if _, err := os.Stat(filepath.Join(f.stages.Cfg.Executor.StateDir, "outbox", "4242", "closed")); err != nil {
		t.Errorf("the swept job's queue is not closed: %v", err)
	}
}

func TestUnfinishedListsDeadCleanups(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.stages.Unfinished(); len(got) != 0 {
		t.Fatalf("a running job is listed: %q", got)
	}
	if err := f.state().writeCleanup(cleanupRecord{StartedAt: f.stages.now()}); err != nil {
		t.Fatal(err)
	}
	if got := f.stages.Unfinished(); len(got) != 1 || got[0] != "4242" {
		t.Fatalf("Unfinished = %q", got)
	}
	if !f.state().Exists() {
		t.Error("Unfinished touched the job")
	}
}

// A job whose prepare never finished: after the runner's last attempt it failed (GitLab: a
// system failure); when the runner gave up earlier, it was stopped during prepare.
func TestOutcomeOfAnUnfinishedPrepare(t *testing.T) {
	f := newFixture(t, nil)
	j := &job.Response{ID: 4242}
	st := f.state()
	if err := st.Create(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		attempts int
		want     Status
		reason   string
	}{{1, Stopped, "while it was being prepared"}, {3, Failed, "could not prepare the job (3 attempts)"}} {
		o := f.stages.finalOutcome(j, st, JobRecord{Attempts: tt.attempts, Decided: true}, RunnerRunning, f.stages.now())
		if o.Status != tt.want || !strings.Contains(o.Reason, tt.reason) {
			t.Errorf("%d attempts: %+v", tt.attempts, o)
		}
	}
}
