package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitlab.com/gitlab-org/gitlab-runner/executors/custom/api"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/failure"
	"github.com/chatops-executor/chatops-executor/job"
)

// fixture is one job's worth of runner-provided files and an executor configured for it.
type fixture struct {
	t        *testing.T
	dir      string
	env      map[string]string
	stages   *Stages
	stdout   *syncBuffer
	stderr   *syncBuffer
	signals  chan os.Signal
	codeFile string
	slack    *slacktest.Server
}

func newFixture(t *testing.T, mutate func(*job.Response)) *fixture {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile("../examples/job-response.json")
	if err != nil {
		t.Fatal(err)
	}
	var resp job.Response
	if err := json.Unmarshal(data, &resp); err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&resp)
	}
	data, _ = json.Marshal(resp)
	jrf := filepath.Join(dir, "job-response.json")
	if err := os.WriteFile(jrf, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Executor.BuildsDir = filepath.Join(dir, "builds")
	cfg.Executor.CacheDir = filepath.Join(dir, "cache")
	cfg.Executor.StateDir = filepath.Join(dir, "state")
	cfg.Executor.KillGrace = config.Duration(300 * time.Millisecond)
	if os.Geteuid() == 0 {
		// These tests are about the stages, not isolation (see isolation_test.go and e2e):
		// their scripts write into the test's private directory, so they run as root, which
		// must be asked for.
		cfg.Executor.RunAs = "root"
	}
	// Chat goes to a fake Slack on loopback; tests never reach the real one.
	slack := slacktest.New(t, "xoxb-executor-secret")
	cfg.Slack.APIURL = slack.APIURL()
	f := &fixture{
		t: t, dir: dir, stdout: &syncBuffer{}, stderr: &syncBuffer{},
		signals: make(chan os.Signal, 1), codeFile: filepath.Join(dir, "exit-code"), slack: slack,
	}
	f.env = map[string]string{
		api.JobResponseFileVariable: jrf,
		api.BuildCodeFileVariable:   f.codeFile,
		"PATH":                      os.Getenv("PATH"),
		"SLACK_BOT_TOKEN":           "xoxb-executor-secret",
		"RUNNER_SECRET":             "runner-only",
	}
	f.stages = &Stages{
		Cfg: &cfg, Getenv: func(k string) string { return f.env[k] },
		Stdout: f.stdout, Stderr: f.stderr, Version: "test", Signals: f.signals,
	}
	return f
}

func (f *fixture) script(body string) string {
	f.t.Helper()
	p := filepath.Join(f.dir, "script-"+strconv.Itoa(int(time.Now().UnixNano())))
	if err := os.WriteFile(p, []byte("#!/usr/bin/env bash\n"+body+"\n"), 0o700); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) state() State { return OpenState(f.stages.Cfg.Executor.StateDir, 4242) }

func TestConfigOutput(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.stages.Config(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out api.ConfigExecOutput
	if err := json.Unmarshal(f.stdout.Bytes(), &out); err != nil {
		t.Fatalf("config output %q is not ConfigExecOutput JSON: %v", f.stdout, err)
	}
	want := filepath.Join(f.dir, "builds", "4242")
	if out.BuildsDir == nil || *out.BuildsDir != want {
		t.Errorf("builds_dir = %v, want per-job %s", out.BuildsDir, want)
	}
	if out.BuildsDirIsShared == nil || *out.BuildsDirIsShared {
		t.Error("builds_dir_is_shared must be false: the per-job dir is not shared")
	}
	if out.Driver == nil || *out.Driver.Name != DriverName || *out.Driver.Version != "test" {
		t.Errorf("driver = %+v", out.Driver)
	}
	if out.CacheDir == nil || out.Hostname == nil || *out.Hostname == "" || out.Shell == nil || *out.Shell != "bash" {
		t.Errorf("output = %s", f.stdout)
	}
}

func TestPrepareCreatesState(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, err := f.state().ReadJob()
	if err != nil {
		t.Fatal(err)
	}
	if rec.JobID != 4242 || rec.Name != "deploy" || rec.Project != "ops/infra" || rec.TimeoutSeconds != 3600 || rec.Denied {
		t.Errorf("record = %+v", rec)
	}
	fi, err := os.Stat(f.state().Dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode = %v %v, want 0700", fi.Mode(), err)
	}
	if _, err := os.Stat(rec.BuildDir); err != nil {
		t.Errorf("build dir: %v", err)
	}
	if !strings.Contains(f.stdout.String(), "chat user U0123ABCD in channel C0123ABCD") {
		t.Errorf("job log = %q", f.stdout)
	}
	if strings.Contains(f.stdout.String(), "glcbt-") {
		t.Error("prepare printed the job token")
	}
}

type denyAll struct{}

func (denyAll) Decide(context.Context, *job.Response) (Decision, error) {
	return Decision{Allow: false, Rule: "deployers", Reason: "alice may not deploy"}, nil
}

func TestPrepareDeniedByPolicy(t *testing.T) {
	f := newFixture(t, nil)
	f.stages.Decider = denyAll{}
	err := f.stages.Prepare(context.Background())
	if kind, _, _ := failure.Classify(err); err == nil || kind != failure.Build || !strings.Contains(err.Error(), "job denied: alice may not deploy") {
		t.Fatalf("err = %v", err)
	}
	// run refuses a denied job even if the runner calls it.
	err = f.stages.Run(context.Background(), f.script("touch "+filepath.Join(f.dir, "ran")), "build_script")
	if err == nil {
		t.Fatal("run of a denied job succeeded")
	}
	rec, rerr := f.state().ReadJob()
	if rerr != nil || !rec.Denied {
		t.Fatalf("denial not recorded for cleanup: %+v %v", rec, rerr)
	}
	if o := Derive(rec, nil, "", time.Now()); o.Status != Denied || o.Reason != "alice may not deploy" {
		t.Errorf("outcome = %v", o)
	}
	if _, serr := os.Stat(filepath.Join(f.dir, "ran")); serr == nil {
		t.Fatal("the denied job's script ran")
	}
}

func TestRunWithoutPrepareIsSystemFailure(t *testing.T) {
	f := newFixture(t, nil)
	err := f.stages.Run(context.Background(), f.script("true"), "build_script")
	if kind, _, _ := failure.Classify(err); err == nil || kind != failure.System || !errors.Is(err, ErrNoState) {
		t.Fatalf("err = %v", err)
	}
}

func TestRunPassesOutputAndExitCode(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.stdout.Reset()
	err := f.stages.Run(context.Background(), f.script(`echo out; echo err >&2; printf 'no newline'; exit 7`), "build_script")
	kind, code, _ := failure.Classify(err)
	if kind != failure.Build || code != 7 {
		t.Fatalf("err = %v (kind %v code %d), want build failure with code 7", err, kind, code)
	}
	// The user script's output is captured for the reply through one pipe, which keeps
	// the job's interleaving of stdout and stderr; the runner merges them into one log.
	if got := f.stdout.String(); got != "out\nerr\nno newline" {
		t.Errorf("stdout = %q", got)
	}
	if got := f.stderr.String(); got != "" {
		t.Errorf("stderr = %q", got)
	}
	// A stage nothing captures writes straight to the runner's descriptors.
	f.stdout.Reset()
	if err := f.stages.Run(context.Background(), f.script(`echo out; echo err >&2`), "prepare_script"); err != nil {
		t.Fatal(err)
	}
	if f.stdout.String() != "out\n" || f.stderr.String() != "err\n" {
		t.Errorf("uncaptured stage: stdout %q stderr %q", f.stdout, f.stderr)
	}
	if data, _ := os.ReadFile(f.codeFile); string(data) != "7" {
		t.Errorf("BUILD_EXIT_CODE_FILE = %q, want 7", data)
	}
	recs, _ := f.state().Stages()
	if len(recs) != 2 || recs[0].ExitCode != 7 || recs[0].Stage != "build_script" {
		t.Errorf("records = %+v", recs)
	}
}

func TestRunCleanEnvironment(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.stdout.Reset()
	if err := f.stages.Run(context.Background(), f.script("env; pwd"), "build_script"); err != nil {
		t.Fatal(err)
	}
	out := f.stdout.String()
	for _, leak := range []string{"xoxb-executor-secret", "SLACK_BOT_TOKEN", "RUNNER_SECRET", "JOB_RESPONSE_FILE", "BUILD_EXIT_CODE_FILE"} {
		if strings.Contains(out, leak) {
			t.Errorf("job environment contains %q:\n%s", leak, out)
		}
	}
	if !strings.Contains(out, "PATH=") || !strings.Contains(out, "HOME=") {
		t.Errorf("job environment lacks PATH or HOME:\n%s", out)
	}
	if !strings.Contains(out, filepath.Join(f.dir, "builds", "4242")) {
		t.Errorf("script did not start in the job's build dir:\n%s", out)
	}
}

func TestRunSignalStopsProcessGroup(t *testing.T) {
	for _, tt := range []struct {
		name   string
		script string
	}{
		// The runner's own scripts trap TERM and exit: the graceful path.
		{"graceful", `trap 'exit 1' TERM; sleep 300 & echo $! > CHILD; echo started; wait`},
		// A script that ignores TERM must be killed after the grace period.
		{"ignores TERM", `trap '' TERM; (trap '' TERM; exec sleep 300) & echo $! > CHILD; echo started; while true; do sleep 0.05; done`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			if err := f.stages.Prepare(context.Background()); err != nil {
				t.Fatal(err)
			}
			rec, _ := f.state().ReadJob()
			done := make(chan error, 1)
			go func() {
				done <- f.stages.Run(context.Background(), f.script("cd "+rec.BuildDir+"; "+tt.script), "build_script")
			}()
			child := waitForFile(t, filepath.Join(rec.BuildDir, "CHILD"))
			f.signals <- syscall.SIGTERM
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("run did not return after SIGTERM")
			}
			if kind, _, _ := failure.Classify(err); kind != failure.Build {
				t.Errorf("err = %v, want build failure", err)
			}
			if alive(child) {
				t.Errorf("child %d survived the stage", child)
			}
			recs, _ := f.state().Stages()
			if len(recs) != 1 || !recs[0].Terminated {
				t.Fatalf("records = %+v, want one terminated", recs)
			}
			if o := Derive(rec, recs, "", time.Now()); o.Status != Cancelled {
				t.Errorf("outcome = %v, want cancelled", o)
			}
		})
	}
}

func TestRunKillsLeftoverBackgroundProcesses(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, _ := f.state().ReadJob()
	// nohup and a closed stdout: the classic way a job leaves a daemon behind.
	script := "cd " + rec.BuildDir + "; nohup sleep 300 >/dev/null 2>&1 & echo $! > CHILD"
	if err := f.stages.Run(context.Background(), f.script(script), "build_script"); err != nil {
		t.Fatal(err)
	}
	child := waitForFile(t, filepath.Join(rec.BuildDir, "CHILD"))
	deadline := time.Now().Add(5 * time.Second)
	for alive(child) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(child) {
		t.Errorf("background process %d outlived its stage", child)
	}
}

func TestCleanupKillsGroupsOfAKilledExecutor(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Simulate a run whose executor was SIGKILLed by the runner: the script's group is still
	// there and recorded in the state, and nobody waited for it.
	cmd := startGroup(t, "sleep 300")
	if err := f.state().RecordGroup(cmd, uint32(os.Geteuid())); err != nil {
		t.Fatal(err)
	}
	if err := f.stages.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(cmd) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(cmd) {
		t.Error("cleanup left the job's process group running")
	}
	if f.state().Exists() {
		t.Error("cleanup left the state dir")
	}
	if _, err := os.Stat(filepath.Join(f.dir, "builds", "4242")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cleanup left the build dir: %v", err)
	}
}

func TestCleanupReportsOutcome(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = f.stages.Run(context.Background(), f.script("exit 3"), "build_script")
	_ = f.stages.Run(context.Background(), f.script("exit 0"), "after_script")
	if err := f.stages.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.stderr.String(), "job 4242 (deploy) failed with exit code 3") {
		t.Errorf("runner log = %q", f.stderr)
	}
}

func TestCleanupWithoutPrepare(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.stages.Cleanup(context.Background()); err != nil {
		t.Fatalf("cleanup after a failed config must not fail: %v", err)
	}
}

func TestDerive(t *testing.T) {
	start := time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC)
	job := JobRecord{PreparedAt: start, TimeoutSeconds: 600}
	rec := func(stage string, code int) StageRecord { return StageRecord{Stage: stage, ExitCode: code} }
	term := func(stage string, after time.Duration) StageRecord {
		return StageRecord{Stage: stage, Terminated: true, TerminatedAt: start.Add(after), ExitCode: 1}
	}
	running := func(stage string) StageRecord { return StageRecord{Stage: stage, Running: true} }
	termRunning := func(stage string, after time.Duration) StageRecord {
		r := term(stage, after)
		r.Running = true
		return r
	}
	tests := []struct {
		name   string
		job    JobRecord
		recs   []StageRecord
		runner RunnerStatus
		want   Outcome
	}{
		{"success", job, []StageRecord{rec("prepare_script", 0), rec("build_script", 0), rec("after_script", 0)}, "", Outcome{Status: Succeeded}},
		{"script fails", job, []StageRecord{rec("build_script", 4), rec("after_script", 0)}, "", Outcome{Status: Failed, ExitCode: 4, Stage: "build_script"}},
		{"after_script failure ignored", job, []StageRecord{rec("build_script", 0), rec("after_script", 1)}, "", Outcome{Status: Succeeded}},
		{"get_sources fails first", job, []StageRecord{rec("get_sources", 1)}, "", Outcome{Status: Failed, ExitCode: 1, Stage: "get_sources"}},
		{"step_release fails", job, []StageRecord{rec("build_script", 0), rec("step_release", 2)}, "", Outcome{Status: Failed, ExitCode: 2, Stage: "step_release"}},
		{"cancelled", job, []StageRecord{term("build_script", time.Minute), rec("after_script", 0)}, "", Outcome{Status: Cancelled, Stage: "build_script"}},
		{"timed out", job, []StageRecord{term("build_script", 595*time.Second)}, "", Outcome{Status: TimedOut, Stage: "build_script"}},
		{"denied", JobRecord{PreparedAt: start, Denied: true, DenyReason: "no"}, nil, "", Outcome{Status: Denied, Reason: "no"}},
		{"executor error", job, []StageRecord{{Stage: "build_script", ExitCode: -1, Error: "start bash: not found"}}, "", Outcome{Status: Failed, ExitCode: -1, Stage: "build_script", Reason: "start bash: not found"}},
		// The runner's word settles what the records cannot.
		{"killed mid-script, runner says cancelled", job, []StageRecord{rec("prepare_script", 0), termRunning("build_script", time.Minute)}, RunnerCanceled, Outcome{Status: Cancelled, Stage: "build_script"}},
		{"killed mid-script by SIGKILL alone", job, []StageRecord{running("build_script")}, RunnerFailed, Outcome{Status: Failed, Stage: "build_script", Reason: "the executor was killed while build_script ran"}},
		{"killed mid-script, no word", job, []StageRecord{running("build_script")}, "", Outcome{Status: Failed, Stage: "build_script", Reason: "the executor was killed while build_script ran"}},
		{"killed mid-script at the timeout", JobRecord{PreparedAt: start, TimeoutSeconds: 60}, []StageRecord{running("build_script")}, RunnerFailed, Outcome{Status: TimedOut, Stage: "build_script"}},
		{"cancel before any stage", job, nil, RunnerCanceled, Outcome{Status: Cancelled}},
		{"cancel after prepare_script", job, []StageRecord{rec("prepare_script", 0)}, RunnerCanceled, Outcome{Status: Cancelled}},
		{"nothing ran, no word", job, nil, "", Outcome{Status: Stopped, Reason: "the job ended before its script ran: cancelled, or stopped by the runner"}},
		{"cancel before the user script", job, []StageRecord{rec("prepare_script", 0)}, RunnerRunning, Outcome{Status: Stopped, Reason: "the job ended before its script ran: cancelled, or stopped by the runner"}},
		{"stopped during get_sources", job, []StageRecord{rec("prepare_script", 0), term("get_sources", time.Minute)}, RunnerRunning, Outcome{Status: Stopped, Stage: "get_sources", Reason: "the runner stopped the job (aborted by GitLab, or the runner shut down)"}},
		{"hard abort or runner shutdown", job, []StageRecord{term("build_script", time.Minute)}, RunnerFailed, Outcome{Status: Stopped, Stage: "build_script", Reason: "the runner stopped the job (aborted by GitLab, or the runner shut down)"}},
		{"soft cancel", job, []StageRecord{term("build_script", time.Minute), rec("after_script", 0)}, RunnerCanceled, Outcome{Status: Cancelled, Stage: "build_script"}},
		{"job timeout (runner says failed)", job, []StageRecord{term("build_script", 595*time.Second)}, RunnerFailed, Outcome{Status: TimedOut, Stage: "build_script"}},
		{"script timeout", job, []StageRecord{term("build_script", time.Minute)}, RunnerTimedOut, Outcome{Status: TimedOut, Stage: "build_script"}},
		{"after_script fails the job", job, []StageRecord{rec("build_script", 0), rec("after_script", 3)}, RunnerFailed, Outcome{Status: Failed, ExitCode: 3, Stage: "after_script"}},
		{"cancelled after the script ended", job, []StageRecord{rec("build_script", 0)}, RunnerCanceled, Outcome{Status: Cancelled}},
		{"after_script killed", job, []StageRecord{rec("build_script", 0), running("after_script")}, RunnerSuccess, Outcome{Status: Succeeded}},
		{"after_script timed out on its own", job, []StageRecord{rec("build_script", 0), term("after_script", time.Minute)}, RunnerSuccess, Outcome{Status: Succeeded}},
		{"job timeout in after_script", job, []StageRecord{rec("build_script", 0), term("after_script", 595*time.Second)}, RunnerSuccess, Outcome{Status: TimedOut, Stage: "after_script"}},
		{"success confirmed", job, []StageRecord{rec("build_script", 0)}, RunnerSuccess, Outcome{Status: Succeeded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Derive(tt.job, tt.recs, tt.runner, start.Add(time.Minute))
			tt.want.Elapsed = time.Minute
			if got != tt.want {
				t.Errorf("Derive = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStateRejectsBadStageNames(t *testing.T) {
	st := OpenState(t.TempDir(), 1)
	if err := st.Create(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../escape", "", "Build Script", strings.Repeat("a", 65)} {
		if err := st.WriteStage(StageRecord{Stage: name}); err == nil {
			t.Errorf("stage name %q accepted", name)
		}
	}
}

func waitForFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(data)) > 0 {
			n, err := strconv.Atoi(string(bytes.TrimSpace(data)))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
	return 0
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S …".
	if i := bytes.LastIndexByte(data, ')'); i >= 0 && i+2 < len(data) {
		return data[i+2] != 'Z'
	}
	return true
}
