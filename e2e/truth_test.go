package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/emulator"
	"github.com/chatops-executor/chatops-executor/gitlab"
	"github.com/chatops-executor/chatops-executor/gitlab/gitlabtest"
)

// What chat says must be what GitLab says, however the job ended: these tests end jobs
// the ways the real runner (PROTOCOL.md, "Observed with the real runner") and the kernel
// can, and compare.

// jobMessages returns the top-level messages of job id (its start message, or its single
// reply), with their threads.
func jobMessages(h *host, id int64) (top []slacktest.Message, thread []slacktest.Message) {
	tag := fmt.Sprintf("job #%d", id)
	for _, m := range h.slack.Channel("C0123ABCD") {
		if (m.ThreadTS == "" || m.ThreadTS == m.TS) && strings.Contains(m.Text, tag) {
			top = append(top, m)
			thread = append(thread, h.slack.Thread("C0123ABCD", m.TS)...)
		}
	}
	return top, thread
}

// finalStatus returns the one status message of job id, failing when there is not
// exactly one.
func finalStatus(t *testing.T, h *host, id int64) string {
	t.Helper()
	top, _ := jobMessages(h, id)
	if len(top) != 1 {
		t.Fatalf("job %d has %d top-level messages, want 1:\n%s", id, len(top), h.slack)
	}
	return top[0].Text
}

// setKillGrace replaces the host's kill_grace.
func setKillGrace(t *testing.T, h *host, grace string) {
	t.Helper()
	cfg, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(`kill_grace = "500ms"`), []byte(`kill_grace = "`+grace+`"`), 1)
	if err := os.WriteFile(h.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
}

// onOutput calls f once, when the job log first contains marker.
func onOutput(h *host, marker string, f func()) {
	var once sync.Once
	h.runner.TraceSink = writerFunc(func(p []byte) (int, error) {
		if bytes.Contains(p, []byte(marker)) {
			once.Do(func() { go f() })
		}
		return len(p), nil
	})
}

// The runner's graceful_kill_timeout is shorter than kill_grace: after a cancel, the
// runner SIGKILLs the executor while it waits for a script that ignores SIGTERM. The
// executor records nothing at its end; GitLab shows the job cancelled, and so must chat.
func TestCancelledExecutorSIGKILLedIsCancelled(t *testing.T) {
	h := newHost(t, allowAll)
	setKillGrace(t, h, "30s")
	h.runner.GracefulKillTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	onOutput(h, "ignoring TERM", cancel)
	res := h.run(ctx, emulator.Job{
		Response:    response(t, 400, nil),
		Script:      []string{"trap '' TERM", "echo ignoring TERM", "sleep 300"},
		AfterScript: []string{`echo "after: $CI_JOB_STATUS"`},
	})
	if res.RunnerFailureReason != emulator.JobCanceled {
		t.Fatalf("state %s reason %s (%v)", res.State, res.RunnerFailureReason, res.Err)
	}
	for _, c := range res.Calls {
		if c.Stage == "run:build_script" && c.Signal != "killed" {
			t.Fatalf("the runner did not SIGKILL the executor (signal %q): the test does not test what it says", c.Signal)
		}
	}
	if st := finalStatus(t, h, 400); !strings.HasPrefix(st, ":no_entry_sign:") || !strings.Contains(st, "cancelled") {
		t.Errorf("chat says %q; GitLab says cancelled", st)
	}
	h.assertClean(400)
}

// The OOM killer (or an admin) SIGKILLs the executor mid-script: the runner fails the job
// as a system failure; chat must not say "succeeded".
func TestExecutorKilledMidScriptIsFailed(t *testing.T) {
	h := newHost(t, allowAll)
	var pid int
	var mu sync.Mutex
	h.runner.OnExec = func(stage string, p int) {
		if stage == "run:build_script" {
			mu.Lock()
			pid = p
			mu.Unlock()
		}
	}
	onOutput(h, "working hard", func() {
		mu.Lock()
		defer mu.Unlock()
		_ = syscall.Kill(pid, syscall.SIGKILL) // the executor only, as the OOM killer would
	})
	res := h.run(context.Background(), emulator.Job{Response: response(t, 401, nil), Script: []string{"echo working hard", "sleep 300"}})
	if res.State != "failed" || res.RunnerFailureReason != emulator.RunnerSystemFailure {
		t.Fatalf("state %s reason %s (%v)", res.State, res.RunnerFailureReason, res.Err)
	}
	st := finalStatus(t, h, 401)
	if !strings.HasPrefix(st, ":x:") || !strings.Contains(st, "the executor was killed while build_script ran") {
		t.Errorf("chat says %q; GitLab says failed", st)
	}
	h.assertClean(401)
}

// A cancel that arrives once prepare is done but before any stage ran ends the job; the
// runner never sets CI_JOB_STATUS past "running". Nothing ran, so nothing succeeded.
func TestCancelBeforeAnyStageIsNotSuccess(t *testing.T) {
	h := newHost(t, allowAll)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.runner.OnExec = func(stage string, pid int) {
		if stage == "run:prepare_script" {
			cancel()
		}
	}
	marker := filepath.Join(h.dir, "ran")
	res := h.run(ctx, emulator.Job{Response: response(t, 402, nil), Script: []string{"touch " + marker}})
	if res.RunnerFailureReason != emulator.JobCanceled {
		t.Fatalf("state %s reason %s (%v)", res.State, res.RunnerFailureReason, res.Err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the script ran: the cancel came too late for this test")
	}
	st := finalStatus(t, h, 402)
	if strings.Contains(st, "succeeded") || !strings.HasPrefix(st, ":octagonal_sign:") {
		t.Errorf("chat says %q; GitLab says cancelled", st)
	}
	h.assertClean(402)
}

// A hard abort (GitLab answered Job-Status: canceled) and the runner being stopped
// (SIGTERM to the runner: runner_interrupted) both kill the script and skip after_script;
// the runner tells cleanup "failed" for both. Neither is a soft cancel, and neither a
// success: chat says the runner stopped the job.
func TestHardAbortAndRunnerInterruptAreStopped(t *testing.T) {
	for _, tt := range []struct {
		name   string
		id     int64
		job    func(ch chan struct{}) emulator.Job
		reason string
	}{
		{"abort", 403, func(ch chan struct{}) emulator.Job { return emulator.Job{Abort: ch} }, emulator.JobCanceled},
		{"interrupt", 404, func(ch chan struct{}) emulator.Job { return emulator.Job{Interrupt: ch} }, emulator.RunnerInterrupted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, allowAll)
			ch := make(chan struct{})
			onOutput(h, "waiting forever", func() { close(ch) })
			job := tt.job(ch)
			job.Response = response(t, tt.id, nil)
			job.Script = []string{"echo waiting forever", "sleep 300"}
			job.AfterScript = []string{"echo after_script ran"}
			res := h.run(context.Background(), job)
			if res.State != "failed" || res.RunnerFailureReason != tt.reason {
				t.Fatalf("state %s reason %s (%v)", res.State, res.RunnerFailureReason, res.Err)
			}
			if strings.Contains(string(res.RawTrace), "after_script ran") {
				t.Error("after_script ran after a hard stop")
			}
			st := finalStatus(t, h, tt.id)
			if !strings.HasPrefix(st, ":octagonal_sign:") || !strings.Contains(st, "stopped: the runner stopped the job") {
				t.Errorf("chat says %q", st)
			}
			h.assertClean(tt.id)
		})
	}
}

// flushNow runs `chatops-executor flush` as cron would. A kill between "in flight" and
// Slack's answer leaves a post whose fate the outbox cannot know (it never posts twice):
// flush then says "unknown outcome" and exits 1. unknown reports whether it did.
func flushNow(t *testing.T, h *host) (out string, unknown bool) {
	t.Helper()
	cmd := exec.Command(binary, "--config", h.config, "flush")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SLACK_BOT_TOKEN=" + slackToken}
	data, err := cmd.CombinedOutput()
	unknown = strings.Contains(string(data), "unknown outcome")
	if err != nil && !unknown {
		t.Errorf("flush: %v\n%s", err, data)
	}
	return string(data), unknown
}

// assertNoRawOutput checks that nothing but the outbox and the audit log is left in the
// state directory: no job's state, no trash of one; and the outbox is empty unless
// keepOutbox (a message of unknown outcome stays there for the admin).
func assertNoRawOutput(t *testing.T, h *host, keepOutbox bool) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(h.dir, "state"))
	for _, e := range ents {
		// Host-wide files hold no job output: the outbox (checked below), the audit log and
		// its chain head, the state budget's lock, the Slack rate budget, the metrics, and
		// the uid leases of executor.job_uids (checked below: none may be left).
		switch e.Name() {
		case "outbox", "audit.jsonl", ".audit.jsonl.chain", ".budget.lock", "slack-rate.json", "metrics.json", "uids":
			continue
		}
		t.Errorf("state dir holds %s after every job ended and flush ran", e.Name())
	}
	leases, _ := os.ReadDir(filepath.Join(h.dir, "state", "uids"))
	for _, e := range leases {
		if _, err := strconv.ParseUint(e.Name(), 10, 32); err == nil {
			t.Errorf("uid %s is still leased after every job ended and flush ran", e.Name())
		}
	}
	outbox, _ := os.ReadDir(filepath.Join(h.dir, "state", "outbox"))
	for _, e := range outbox {
		if keepOutbox {
			break
		}
		t.Errorf("outbox still holds %s after flush", e.Name())
	}
}

// killAfter arranges for the first call of stage to be SIGKILLed, with its whole process
// group, d after it started.
func killAfter(h *host, stage string, d time.Duration) {
	var once sync.Once
	h.runner.OnExec = func(s string, pid int) {
		if s == stage {
			once.Do(func() { time.AfterFunc(d, func() { _ = syscall.Kill(-pid, syscall.SIGKILL) }) })
		}
	}
}

// kill -9 of cleanup at every millisecond of its first 60: whatever the moment, the reply
// arrives exactly once (from cleanup itself, the next job's cleanup, or flush), it never
// says "succeeded" for a failed job, and no raw output stays on disk.
func TestCleanupKilledAtEveryMillisecond(t *testing.T) {
	const points = 60
	hosts := make([]*host, points)
	var killed atomic.Int32
	var wg sync.WaitGroup
	sem := make(chan struct{}, 3)
	for ms := 0; ms < points; ms++ {
		h := newHost(t, allowAll)
		hosts[ms] = h
		killAfter(h, "cleanup", time.Duration(ms)*time.Millisecond)
		wg.Add(1)
		go func(ms int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			id := int64(5000 + ms)
			res, err := h.runner.Run(context.Background(), emulator.Job{
				Response: response(t, id, nil),
				Script:   []string{chatReply("deploy broke at step 3"), "exit 42"},
			})
			if err != nil {
				t.Errorf("emulator: %v", err)
				return
			}
			if res.ExitCode != 42 {
				t.Errorf("kill at %dms: exit code %d, want 42", ms, res.ExitCode)
			}
			for _, c := range res.Calls {
				if c.Stage == "cleanup" && c.Signal == "killed" {
					killed.Add(1)
				}
			}
		}(ms)
	}
	wg.Wait()
	t.Logf("%d of %d kill points killed cleanup before it ended", killed.Load(), points)
	unknowns := 0
	defer func() {
		t.Logf("%d of %d kill points left a post of unknown outcome (reported by flush)", unknowns, points)
	}()
	for ms, h := range hosts {
		id := int64(5000 + ms)
		_, unknown := flushNow(t, h)
		top, thread := jobMessages(h, id)
		if len(top) != 1 {
			t.Errorf("kill at %dms: %d status messages, want 1:\n%s", ms, len(top), h.slack)
			continue
		}
		if st := top[0].Text; !strings.HasPrefix(st, ":x:") || !strings.Contains(st, "failed with exit code 42") {
			t.Errorf("kill at %dms: status %q", ms, st)
		}
		for _, m := range append(top, thread...) {
			for _, text := range m.History {
				if strings.Contains(text, "succeeded") {
					t.Errorf("kill at %dms: chat said %q", ms, text)
				}
			}
		}
		// Delivered exactly once; with an unknown outcome, flush said so, and the fake
		// Slack shows whether it had in fact arrived: never silently lost.
		if len(thread) != 1 || !strings.Contains(thread[0].Text, "deploy broke at step 3") {
			t.Errorf("kill at %dms: reply thread %+v (flush reported an unknown outcome: %t)", ms, thread, unknown)
		}
		if unknown {
			unknowns++
		}
		assertNoRawOutput(t, h, unknown)
	}
}

// kill -9 of prepare at any point: the runner retries it, and the channel sees one start
// message and one "succeeded" — for the attempt that ran — and the audit log one decision.
func TestPrepareKilledAnywhereIsRetriedOnce(t *testing.T) {
	const points = 40
	// Calibrate: how long prepare takes here and now, so the points cover all of it (and
	// a little past its end) however loaded the machine is.
	cal := newHost(t, allowAll)
	var took []time.Duration
	for i := int64(0); i < 3; i++ {
		res := cal.run(context.Background(), emulator.Job{Response: response(t, 5990+i, nil), Script: []string{"true"}})
		for _, c := range res.Calls {
			if c.Stage == "prepare" {
				took = append(took, c.End.Sub(c.Start))
			}
		}
	}
	slices.Sort(took)
	span := took[len(took)/2] * 6 / 5
	step := max(span/points, 500*time.Microsecond)
	t.Logf("prepare took %s: one kill point every %s", span*5/6, step)
	hosts := make([]*host, points)
	var retried atomic.Int32
	var wg sync.WaitGroup
	sem := make(chan struct{}, 3)
	for i := 0; i < points; i++ {
		h := newHost(t, allowAll)
		hosts[i] = h
		killAfter(h, "prepare", time.Duration(i)*step)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res, err := h.runner.Run(context.Background(), emulator.Job{Response: response(t, int64(6000+i), nil), Script: []string{"echo deployed"}})
			if err != nil {
				t.Errorf("emulator: %v", err)
				return
			}
			if res.State != "success" {
				t.Errorf("kill point %d: state %s (%v)", i, res.State, res.Err)
			}
			n := 0
			for _, c := range res.Calls {
				if c.Stage == "prepare" {
					n++
				}
			}
			if n > 1 {
				retried.Add(1)
			}
		}(i)
	}
	wg.Wait()
	unknowns := 0
	defer func() {
		t.Logf("%d of %d kill points left a post of unknown outcome (reported by flush)", unknowns, points)
	}()
	// The last points come after prepare's end: those jobs are not retried.
	t.Logf("%d of %d kill points killed prepare before it ended, and the runner retried it", retried.Load(), points)
	if retried.Load() < points/8 {
		t.Errorf("only %d kill points hit prepare: the sweep does not cover it", retried.Load())
	}
	for i, h := range hosts {
		id := int64(6000 + i)
		_, unknown := flushNow(t, h)
		top, thread := jobMessages(h, id)
		// One start message, one "succeeded" — for the attempt that ran. A start message
		// whose post the kill cut has an unknown outcome (flush says so): the reply then
		// degrades to new posts rather than risk a duplicate.
		starts, succeeded := 0, 0
		for _, m := range top {
			if strings.HasPrefix(m.History[0], ":arrow_forward:") {
				starts++
			}
			for _, text := range m.History {
				if strings.Contains(text, "succeeded") {
					succeeded++
				}
			}
		}
		outputs := 0
		for _, m := range h.slack.Messages() {
			if strings.Contains(m.Text, "deployed") {
				outputs++
			}
		}
		if starts > 1 || (starts == 0 && !unknown) || succeeded != 1 || outputs != 1 || (len(top) != 1 || len(thread) != 1) && !unknown {
			t.Errorf("kill point %d: %d start messages, %d 'succeeded', %d outputs, %d replies in the thread (unknown outcome reported: %t):\n%s",
				i, starts, succeeded, outputs, len(thread), unknown, h.slack)
		}
		if unknown {
			unknowns++
		}
		decisions := 0
		for _, rec := range readAudit(t, filepath.Join(h.dir, "state", "audit.jsonl")) {
			if d := rec["decision"]; d == "allow" || d == "deny" {
				decisions++
			}
		}
		if decisions != 1 {
			t.Errorf("kill point %d: %d decisions in the audit log, want 1", i, decisions)
		}
		assertNoRawOutput(t, h, unknown)
	}
}

// With Slack down, prepare spends slack.prepare_budget on the start message and no more:
// the job must not wait long on chat to start. (The old fixed budget was 10s.)
func TestSlackDownPrepareKeepsToItsBudget(t *testing.T) {
	h := newHost(t, allowAll)
	slackConfig(t, h, "prepare_budget = \"1s\"\ncleanup_budget = \"1s\"\nflush_budget = \"1s\"\n")
	h.slack.Down()
	res := h.run(context.Background(), emulator.Job{Response: response(t, 410, nil), Script: []string{"echo hi"}})
	if res.State != "success" {
		t.Fatalf("state %s (%v)", res.State, res.Err)
	}
	for _, c := range res.Calls {
		// Generous: the budget is 1s, the old behaviour 10s and more.
		if (c.Stage == "prepare" || c.Stage == "cleanup") && c.End.Sub(c.Start) > 7*time.Second {
			t.Errorf("%s took %s with a 1s budget", c.Stage, c.End.Sub(c.Start).Round(time.Millisecond))
		}
	}
}

// With gitlab.url set, cleanup asks GitLab how it sees a job the runner stopped. Still
// running is the runner shutting down (GitLab will show runner_interrupted, a failure).
// A job GitLab aborted no longer accepts its own token: with the admin's read_api token
// (gitlab.token_file) cleanup asks the project jobs API and reports the job cancelled or
// failed as GitLab shows it; without it, stopped, because GitLab ended it.
func TestStoppedJobSettledByGitLab(t *testing.T) {
	const token = "glcbt-jobtoken-4242-73e062cc48"
	for _, tt := range []struct {
		name      string
		adminKey  bool
		id        int64
		abort     bool   // the emulator aborts the job (else the runner is interrupted)
		gitlabNow string // the job's status at GitLab once the runner stops it
		reason    string // its failure_reason
		want      string
	}{
		{"interrupt", false, 420, false, "running", "",
			":x: <@U0123ABCD> *deploy* in ops/infra failed: the runner was stopped while the job ran (runner_interrupted)"},
		{"interrupt, admin token", true, 422, false, "running", "",
			":x: <@U0123ABCD> *deploy* in ops/infra failed: the runner was stopped while the job ran (runner_interrupted)"},
		{"abort", false, 421, true, "canceled", "",
			":octagonal_sign: <@U0123ABCD> *deploy* in ops/infra stopped: GitLab ended the job (cancelled or failed it)"},
		{"abort, admin token", true, 423, true, "canceled", "",
			":no_entry_sign: <@U0123ABCD> *deploy* in ops/infra cancelled"},
		{"abort as failed, admin token", true, 424, true, "failed", "stuck_or_timeout_failure",
			":x: <@U0123ABCD> *deploy* in ops/infra failed: GitLab failed the job (stuck_or_timeout_failure)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			trusted := gitlabtest.New(t)
			running := gitlab.Job{
				ID: tt.id, Name: "deploy", Status: "running",
				User:     gitlab.User{ID: 101, Username: "alice"},
				Pipeline: gitlab.Pipeline{ID: 5242, Source: "chat", ProjectID: 7},
			}
			trusted.Jobs[token] = running
			cfg := "[gitlab]\nurl = \"" + trusted.URL + "\"\n"
			if tt.adminKey {
				trusted.PrivateToken = "glpat-admin-read-api"
				keyFile := filepath.Join(t.TempDir(), "gitlab-token")
				if err := os.WriteFile(keyFile, []byte(trusted.PrivateToken+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg += fmt.Sprintf("token_file = %q\n", keyFile)
			}
			h := newHost(t, cfg+allowAll)
			ch := make(chan struct{})
			onOutput(h, "waiting forever", func() {
				// GitLab's side first: the runner learns of an abort from GitLab.
				stopped := running
				stopped.Status, stopped.FailureReason = tt.gitlabNow, tt.reason
				trusted.SetJob(token, stopped)
				close(ch)
			})
			job := emulator.Job{Interrupt: ch}
			if tt.abort {
				job = emulator.Job{Abort: ch}
			}
			job.Response = response(t, tt.id, nil)
			job.Script = []string{"echo waiting forever", "sleep 300"}
			h.run(context.Background(), job)
			if st := finalStatus(t, h, tt.id); !strings.HasPrefix(st, tt.want) {
				t.Errorf("chat says %q, want %q…", st, tt.want)
			}
			var asked []string
			for _, r := range trusted.Requests() {
				if r.PrivateToken != "" {
					asked = append(asked, r.Path)
				}
			}
			if want := fmt.Sprintf("/api/v4/projects/7/jobs/%d", tt.id); tt.adminKey != slices.Contains(asked, want) {
				t.Errorf("with the admin token %v, the admin asked %q", tt.adminKey, asked)
			}
		})
	}
}
