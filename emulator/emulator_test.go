package emulator

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const exampleResponse = "../examples/job-response.json"

func loadResponse(t *testing.T) []byte {
	t.Helper()
	for _, p := range []string{exampleResponse} {
		if b, err := os.ReadFile(p); err == nil {
			return b
		}
	}
	return []byte(minimalResponse)
}

// minimalResponse stands in for the shared example when it is not around.
const minimalResponse = `{"id":4242,"token":"glcbt-jobtoken-4242-73e062cc48",
"job_info":{"id":4242,"name":"deploy","project_id":7},
"git_info":{"repo_url":"https://gitlab-ci-token:glcbt-jobtoken-4242-73e062cc48@gitlab.example.com/ops/infra.git"},
"runner_info":{"timeout":3600},
"variables":[{"key":"CI_JOB_TOKEN","value":"glcbt-jobtoken-4242-73e062cc48","masked":true},
{"key":"GIT_STRATEGY","value":"none","public":true},{"key":"CHAT_INPUT","value":"production v1.4.2","public":true},
{"key":"DEPLOY_TOKEN","value":"dt-0123456789abcdef","masked":true}],
"steps":[{"name":"script","script":["./bin/deploy \"$CHAT_INPUT\""]},{"name":"after_script","script":["echo done"]}],
"features":{"trace_sections":true,"token_mask_prefixes":["glpat-","glcbt-","glrt-"],
"failure_reasons":["script_failure","runner_system_failure","job_execution_timeout"]}}`

type fixture struct {
	dir    string
	runner *Runner
}

func newFixture(t *testing.T, env ...string) *fixture {
	t.Helper()
	dir := t.TempDir()
	exe, err := filepath.Abs("testdata/fake-executor.sh")
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{
		Executable:               exe,
		ConfigArgs:               []string{"config"},
		PrepareArgs:              []string{"prepare"},
		RunArgs:                  []string{"run"},
		CleanupArgs:              []string{"cleanup"},
		Env:                      append([]string{"PATH=" + os.Getenv("PATH"), "FAKE_DIR=" + dir, "RUNNER_OWN=yes"}, env...),
		WorkDir:                  filepath.Join(dir, "work"),
		PreparationRetryInterval: -1,
		GracefulKillTimeout:      300 * time.Millisecond,
		ForcefulKillTimeout:      2 * time.Second,
	}
	return &fixture{dir: dir, runner: r}
}

func stages(calls []Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Stage)
	}
	return out
}

var fullSuccess = []string{"config", "prepare", "run:prepare_script", "run:get_sources", "run:build_script", "run:after_script", "run:cleanup_file_variables", "cleanup"}

func TestRunCallOrderAndOutcome(t *testing.T) {
	configAttempt := []string{"config", "cleanup"}
	prepareAttempt := []string{"config", "prepare", "cleanup"}
	tests := []struct {
		name        string
		env         []string
		script      []string
		after       []string
		wantCalls   []string
		wantState   string
		wantReason  string // sent to GitLab
		wantRunner  string // runner-internal reason
		wantExit    int
		wantErr     string
		wantInTrace []string
	}{
		{
			name: "success", script: []string{"echo hello"}, after: []string{"echo after"},
			wantCalls: fullSuccess, wantState: "success",
			wantInTrace: []string{"Job succeeded", "hello\n", "after\n"},
		},
		{
			name: "no after_script", script: []string{"true"}, after: []string{},
			wantCalls: []string{"config", "prepare", "run:prepare_script", "run:get_sources", "run:build_script", "run:cleanup_file_variables", "cleanup"},
			wantState: "success",
		},
		{
			name: "script failure keeps the real exit code", script: []string{"echo one", "exit 3", "echo never"}, after: []string{"echo after $CI_JOB_STATUS"},
			wantCalls: fullSuccess, wantState: "failed", wantReason: ScriptFailure, wantRunner: ScriptFailure, wantExit: 3,
			wantErr: "exit status 3", wantInTrace: []string{"one\n", "after failed\n", "ERROR: Job failed: exit status 3"},
		},
		{
			name: "build failure without exit code file", env: []string{"FAKE_EXIT_run_build_script=1"}, script: []string{"true"}, after: []string{"true"},
			wantCalls: fullSuccess, wantState: "failed", wantReason: ScriptFailure, wantRunner: ScriptFailure, wantExit: 1, wantErr: "exit status 1",
		},
		{
			name: "system failure in run", env: []string{"FAKE_EXIT_run_build_script=2"}, script: []string{"true"}, after: []string{"true"},
			wantCalls: fullSuccess, wantState: "failed", wantReason: RunnerSystemFailure, wantRunner: RunnerSystemFailure,
			wantErr: "exit status 2", wantInTrace: []string{"ERROR: Job failed (system failure): exit status 2"},
		},
		{
			name: "unknown exit code", env: []string{"FAKE_EXIT_run_build_script=7"}, script: []string{"true"}, after: []string{"true"},
			wantCalls: fullSuccess, wantState: "failed", wantReason: RunnerSystemFailure, wantRunner: RunnerSystemFailure,
			wantErr: "unknown Custom executor executable exit code 7; executable execution terminated with: exit status 7",
		},
		{
			name: "death by signal", env: []string{"FAKE_RUN_MODE=suicide"}, script: []string{"true"}, after: []string{"true"},
			wantCalls: fullSuccess, wantState: "failed", wantReason: RunnerSystemFailure, wantRunner: RunnerSystemFailure,
			wantErr: "unknown Custom executor executable exit code -1; executable execution terminated with: signal: killed",
		},
		{
			name: "prepare_script stage fails", env: []string{"FAKE_EXIT_run_prepare_script=1"}, script: []string{"true"}, after: []string{"true"},
			wantCalls: []string{"config", "prepare", "run:prepare_script", "cleanup"}, wantState: "failed",
			wantReason: ScriptFailure, wantRunner: ScriptFailure, wantExit: 1,
			wantErr: "prepare environment: exit status 1. Check https://docs.gitlab.com/runner/shells/#shell-profile-loading for more information",
		},
		{
			name: "prepare build failure is not retried", env: []string{"FAKE_EXIT_prepare=1"},
			wantCalls: prepareAttempt, wantState: "failed", wantReason: ScriptFailure, wantRunner: ScriptFailure, wantExit: 1,
		},
		{
			name: "prepare system failure is retried", env: []string{"FAKE_EXIT_prepare=2"},
			wantCalls: slices.Concat(prepareAttempt, prepareAttempt, prepareAttempt), wantState: "failed",
			wantReason: RunnerSystemFailure, wantRunner: RunnerSystemFailure, wantErr: "exit status 2",
			wantInTrace: []string{"ERROR: Preparation failed: exit status 2", "Will be retried in 0s ..."},
		},
		{
			name: "config system failure is retried", env: []string{"FAKE_EXIT_config=2"},
			wantCalls: slices.Concat(configAttempt, configAttempt, configAttempt), wantState: "failed",
			wantReason: RunnerSystemFailure, wantRunner: RunnerSystemFailure,
		},
		{
			name: "config unknown exit code", env: []string{"FAKE_EXIT_config=42"},
			wantCalls: slices.Concat(configAttempt, configAttempt, configAttempt), wantState: "failed",
			wantReason: RunnerSystemFailure, wantRunner: RunnerSystemFailure,
			wantErr: "unknown Custom executor executable exit code 42",
		},
		{
			name: "builds_dir missing", env: []string{`FAKE_CONFIG={"cache_dir":"/tmp"}`},
			wantCalls: configAttempt, wantState: "failed", wantReason: ScriptFailure, wantRunner: ConfigurationError,
			wantErr: "the builds_dir is not configured",
		},
		{
			name: "cache_dir missing", env: []string{`FAKE_CONFIG={"builds_dir":"/tmp/b"}`},
			wantCalls: configAttempt, wantState: "failed", wantReason: ScriptFailure, wantRunner: ConfigurationError,
			wantErr: "the cache_dir is not configured",
		},
		{
			name: "invalid config JSON", env: []string{`FAKE_CONFIG={`},
			wantCalls: slices.Concat(configAttempt, configAttempt, configAttempt), wantState: "failed",
			wantReason: RunnerSystemFailure, wantErr: "error while parsing JSON output",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.env...)
			res, err := f.runner.Run(context.Background(), Job{Response: loadResponse(t), Script: tc.script, AfterScript: tc.after})
			if err != nil {
				t.Fatal(err)
			}
			if got := stages(res.Calls); !slices.Equal(got, tc.wantCalls) {
				t.Errorf("calls = %q, want %q", got, tc.wantCalls)
			}
			if res.State != tc.wantState || res.FailureReason != tc.wantReason || res.ExitCode != tc.wantExit {
				t.Errorf("state/reason/exit = %q/%q/%d, want %q/%q/%d (err %v)", res.State, res.FailureReason, res.ExitCode, tc.wantState, tc.wantReason, tc.wantExit, res.Err)
			}
			if tc.wantRunner != "" && res.RunnerFailureReason != tc.wantRunner {
				t.Errorf("runner reason = %q, want %q", res.RunnerFailureReason, tc.wantRunner)
			}
			if tc.wantErr != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want it to contain %q", res.Err, tc.wantErr)
			}
			for _, s := range tc.wantInTrace {
				if !bytes.Contains(res.RawTrace, []byte(s)) {
					t.Errorf("trace lacks %q:\n%s", s, res.RawTrace)
				}
			}
			if _, err := os.Stat(f.runner.WorkDir); err == nil {
				entries, _ := os.ReadDir(f.runner.WorkDir)
				if len(entries) != 0 {
					t.Errorf("temporary directories left behind: %v", entries)
				}
			}
		})
	}
}

func envIndex(env []string, prefix string) int {
	return slices.IndexFunc(env, func(e string) bool { return strings.HasPrefix(e, prefix) })
}

func envValue(env []string, key string) (string, bool) {
	// The last one wins, as for exec.
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(env[i], "="); k == key {
			return v, true
		}
	}
	return "", false
}

func TestRunEnvironment(t *testing.T) {
	f := newFixture(t)
	res, err := f.runner.Run(context.Background(), Job{Response: loadResponse(t), Script: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	byStage := map[string]Call{}
	for _, c := range res.Calls {
		byStage[c.Stage] = c
	}
	projectDir := filepath.Join(f.dir, "builds", "ops", "infra")
	if res.ProjectDir != projectDir {
		t.Errorf("project dir = %q, want %q", res.ProjectDir, projectDir)
	}

	for _, stage := range []string{"config", "prepare", "run:build_script", "cleanup"} {
		c, ok := byStage[stage]
		if !ok {
			t.Fatalf("no %s call", stage)
		}
		env := c.Env
		// The runner's own environment, then its five variables — in a rotation of one
		// cycle that changes from call to call, as the real runner's map gives them — then
		// the job's CUSTOM_ENV_ variables.
		own, custom := envIndex(env, "RUNNER_OWN="), envIndex(env, "CUSTOM_ENV_")
		cycle := []int{envIndex(env, "TMPDIR="), envIndex(env, "BUILD_FAILURE_EXIT_CODE=1"),
			envIndex(env, "SYSTEM_FAILURE_EXIT_CODE=2"), envIndex(env, "BUILD_EXIT_CODE_FILE="),
			envIndex(env, "JOB_RESPONSE_FILE=")}
		first := slices.Index(cycle, slices.Min(cycle))
		rotated := append(slices.Clone(cycle[first:]), cycle[:first]...)
		if own < 0 || custom < 0 || slices.Contains(cycle, -1) || !slices.IsSorted(rotated) ||
			rotated[0] != own+1 || rotated[4] != rotated[0]+4 || rotated[4] >= custom {
			t.Errorf("%s: env order own %d, runner's five %v, CUSTOM_ENV_ %d wrong:\n%s", stage, own, cycle, custom, strings.Join(env, "\n"))
		}
		if tmp, _ := envValue(env, "TMPDIR"); tmp != c.Dir || !strings.HasPrefix(tmp, f.runner.WorkDir) {
			t.Errorf("%s: TMPDIR %q, dir %q", stage, tmp, c.Dir)
		}
		if v, _ := envValue(env, "CUSTOM_ENV_DEPLOY_TOKEN"); v != "dt-0123456789abcdef" {
			t.Errorf("%s: masked variable not passed in clear: %q", stage, v)
		}
		if v, _ := envValue(env, "CUSTOM_ENV_CHAT_INPUT"); v != "production v1.4.2" {
			t.Errorf("%s: CUSTOM_ENV_CHAT_INPUT = %q", stage, v)
		}
		if _, ok := envValue(env, "CUSTOM_ENV_CI_JOB_SERVICES"); !ok {
			t.Errorf("%s: no CUSTOM_ENV_CI_JOB_SERVICES", stage)
		}
		jobEnv, hasJobEnv := envValue(env, "FAKE_JOB_ENV")
		if stage == "config" {
			if hasJobEnv {
				t.Errorf("config got job_env")
			}
			// StartBuild has not run yet when config_exec runs.
			if v, _ := envValue(env, "CUSTOM_ENV_CI_BUILDS_DIR"); v != "" {
				t.Errorf("config: CUSTOM_ENV_CI_BUILDS_DIR = %q, want empty", v)
			}
		} else {
			if jobEnv != "from-config" || envIndex(env, "FAKE_JOB_ENV=") > envIndex(env, "CUSTOM_ENV_") {
				t.Errorf("%s: job_env missing or after CUSTOM_ENV_*", stage)
			}
			if v, _ := envValue(env, "CUSTOM_ENV_CI_PROJECT_DIR"); v != projectDir {
				t.Errorf("%s: CUSTOM_ENV_CI_PROJECT_DIR = %q", stage, v)
			}
		}
	}
	if got := byStage["run:build_script"].Args; len(got) != 3 || got[0] != "run" || got[2] != "build_script" || filepath.Base(got[1]) != "script" {
		t.Errorf("run args = %q", got)
	}
	// Inside eval $'...' the echo line's own quoting is escaped once more.
	if !strings.Contains(byStage["run:build_script"].Script, `\necho $\'\\x1b[32;1m$ true\\x1b[0;m\'\ntrue\n`) {
		t.Errorf("user script lacks the echo line:\n%s", byStage["run:build_script"].Script)
	}
	// The response file is the job as GitLab sent it.
	resp, err := os.ReadFile(filepath.Join(f.dir, "env.config"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(resp, []byte("JOB_RESPONSE_FILE=")) {
		t.Errorf("fake did not see JOB_RESPONSE_FILE")
	}
}

func TestRunAfterScriptStatus(t *testing.T) {
	f := newFixture(t)
	res, err := f.runner.Run(context.Background(), Job{Response: loadResponse(t), Script: []string{"false"}, AfterScript: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Calls {
		want := "running"
		switch c.Stage {
		case "run:after_script", "run:cleanup_file_variables", "cleanup":
			want = "failed" // the overwrite sticks for the rest of the job
		}
		if v, _ := envValue(c.Env, "CUSTOM_ENV_CI_JOB_STATUS"); v != want {
			t.Errorf("%s: CI_JOB_STATUS = %q, want %q", c.Stage, v, want)
		}
	}
}

// cancelWhen cancels when the job log shows marker.
type cancelWhen struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	cancel context.CancelFunc
	done   bool
}

func (c *cancelWhen) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if !c.done && bytes.Contains(c.buf.Bytes(), []byte(c.marker)) {
		c.done = true
		c.cancel()
	}
	return len(p), nil
}

func TestRunCancel(t *testing.T) {
	tests := []struct {
		name        string
		env         []string
		wantSignals []string
		wantExec    string
		// grace replaces the fixture's graceful kill timeout: an executor that stops on
		// SIGTERM must be given long enough to do so on a loaded machine, or it is killed
		// too (seen under load with 300 ms).
		grace time.Duration
	}{
		{name: "executor stops on SIGTERM", env: []string{"FAKE_TRAP=1"}, wantSignals: []string{"terminated"}, grace: 20 * time.Second},
		{name: "executor ignores SIGTERM", env: []string{"FAKE_RUN_MODE=ignore-term"}, wantSignals: []string{"terminated", "killed"},
			wantExec: "unknown Custom executor executable exit code -1; executable execution terminated with: signal: killed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.env...)
			if tc.grace > 0 {
				f.runner.GracefulKillTimeout = tc.grace
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f.runner.TraceSink = &cancelWhen{marker: "READY", cancel: cancel}
			start := time.Now()
			res, err := f.runner.Run(ctx, Job{
				Response:    loadResponse(t),
				Script:      []string{"echo READY", "sleep 30", "echo not reached"},
				AfterScript: []string{"echo after $CI_JOB_STATUS"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if time.Since(start) > 15*time.Second {
				t.Errorf("cancel took %v", time.Since(start))
			}
			if got := stages(res.Calls); !slices.Equal(got, fullSuccess) {
				t.Errorf("calls = %q, want %q", got, fullSuccess)
			}
			var run Call
			for _, c := range res.Calls {
				if c.Stage == "run:build_script" {
					run = c
				}
			}
			if !slices.Equal(run.Signals, tc.wantSignals) {
				t.Errorf("signals sent = %q, want %q", run.Signals, tc.wantSignals)
			}
			if tc.wantExec != "" && run.Err != tc.wantExec {
				t.Errorf("run error = %q, want %q", run.Err, tc.wantExec)
			}
			if res.State != "failed" || res.RunnerFailureReason != JobCanceled || res.FailureReason != UnknownFailure {
				t.Errorf("state/runner reason/reason = %q/%q/%q", res.State, res.RunnerFailureReason, res.FailureReason)
			}
			for _, s := range []string{"script canceled externally (UI, API)", "after canceled\n", "ERROR: Job failed: canceled"} {
				if !bytes.Contains(res.RawTrace, []byte(s)) {
					t.Errorf("trace lacks %q:\n%s", s, res.RawTrace)
				}
			}
			if bytes.Contains(res.RawTrace, []byte("not reached")) {
				t.Errorf("script went on after cancel")
			}
			if pidText, err := os.ReadFile(filepath.Join(f.dir, "grandchild")); err == nil {
				assertGone(t, strings.TrimSpace(string(pidText)))
			}
		})
	}
}

// assertGone checks that a process of the executor's group did not survive
// (a zombie waiting for a non-reaping init counts as gone).
func assertGone(t *testing.T, pid string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return
		}
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("process %s of the executor's group survived SIGKILL", pid)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunCancelBeforeUserScript(t *testing.T) {
	f := newFixture(t, "FAKE_TRAP=1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := f.runner.Run(ctx, Job{Response: loadResponse(t), Script: []string{"true"}, AfterScript: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	// The whole build context is cancelled: nothing but cleanup runs
	// after the (killed) first call.
	if got := stages(res.Calls); len(got) == 0 || got[len(got)-1] != "cleanup" || slices.Contains(got, "run:after_script") {
		t.Errorf("calls = %q", got)
	}
	if res.RunnerFailureReason != JobCanceled {
		t.Errorf("runner reason = %q (err %v)", res.RunnerFailureReason, res.Err)
	}
}

func TestRunJobTimeout(t *testing.T) {
	f := newFixture(t, "FAKE_TRAP=1")
	// The timeout must fall in the user script: on a loaded machine config, prepare and
	// the first stages can take more than a second, and a 1 s timeout then hit
	// prepare_script instead (seen in one of six full runs).
	res, err := f.runner.Run(context.Background(), Job{
		Response: loadResponse(t), Timeout: 5 * time.Second,
		Script: []string{"sleep 30"}, AfterScript: []string{"echo after"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"config", "prepare", "run:prepare_script", "run:get_sources", "run:build_script", "cleanup"}
	if got := stages(res.Calls); !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	if res.FailureReason != JobExecutionTimeout || res.Err == nil || res.Err.Error() != "execution took longer than 5s seconds" {
		t.Errorf("reason %q err %v", res.FailureReason, res.Err)
	}
	if !bytes.Contains(res.RawTrace, []byte("step_script could not run to completion because the timeout was exceeded")) {
		t.Errorf("no timeout warning:\n%s", res.RawTrace)
	}
}

func TestRunScriptTimeoutRunsAfterScript(t *testing.T) {
	f := newFixture(t, "FAKE_TRAP=1")
	resp := bytes.Replace(loadResponse(t), []byte(`"variables": [`), []byte(`"variables": [{"key":"RUNNER_SCRIPT_TIMEOUT","value":"1s"},`), 1)
	if bytes.Equal(resp, loadResponse(t)) {
		resp = bytes.Replace(resp, []byte(`"variables":[`), []byte(`"variables":[{"key":"RUNNER_SCRIPT_TIMEOUT","value":"1s"},`), 1)
	}
	res, err := f.runner.Run(context.Background(), Job{Response: resp, Script: []string{"sleep 30"}, AfterScript: []string{"echo after $CI_JOB_STATUS"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := stages(res.Calls); !slices.Equal(got, fullSuccess) {
		t.Errorf("calls = %q", got)
	}
	if res.FailureReason != JobExecutionTimeout || !bytes.Contains(res.RawTrace, []byte("after timedout\n")) {
		t.Errorf("reason %q, trace:\n%s", res.FailureReason, res.RawTrace)
	}
}

func TestRunTraceMaskingAndTimestamps(t *testing.T) {
	f := newFixture(t)
	clock := time.Date(2026, 11, 24, 14, 0, 5, 123456000, time.UTC)
	f.runner.Now = func() time.Time { return clock }
	res, err := f.runner.Run(context.Background(), Job{
		Response: loadResponse(t),
		Script:   []string{`echo "secret=$DEPLOY_TOKEN token=$CI_JOB_TOKEN pat=glpat-abcDEF123"`, `printf 'no newline'`},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Masked variables are replaced whole before token prefixes are
	// looked at (the runner's masker wraps its token sanitizer).
	trace := string(res.Trace)
	for _, leak := range []string{"dt-0123456789abcdef", "jobtoken-4242", "abcDEF123"} {
		if strings.Contains(trace, leak) {
			t.Errorf("trace leaks %q", leak)
		}
	}
	if !strings.Contains(trace, "2026-11-24T14:00:05.123456Z 01O secret=[MASKED] token=[MASKED] pat=glpat-[MASKED]\n") {
		t.Errorf("masked, stamped line missing:\n%s", trace)
	}
	if !strings.Contains(trace, "2026-11-24T14:00:05.123456Z 01O no newline\n") {
		t.Errorf("partial line not flushed at close:\n%s", trace)
	}
	marker := fmt.Sprintf("2026-11-24T14:00:05.123456Z 00O+section_start:%d:step_script\r\x1b[0K\n", clock.Unix())
	if !strings.Contains(trace, marker) {
		t.Errorf("section marker line wrong:\n%q", trace)
	}
	if !strings.Contains(string(res.RawTrace), "dt-0123456789abcdef") {
		t.Errorf("raw trace should hold the unmasked output")
	}
}

func TestRunFeatureFlagDisablesTimestamps(t *testing.T) {
	f := newFixture(t)
	f.runner.FeatureFlags = map[string]bool{"FF_TIMESTAMPS": false}
	res, err := f.runner.Run(context.Background(), Job{Response: loadResponse(t), Script: []string{"echo hi"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(res.Trace, []byte("  feature flags: FF_TIMESTAMPS:false")) || !bytes.Contains(res.Trace, []byte("\nhi\n")) {
		t.Errorf("trace:\n%s", res.Trace)
	}
}

func TestRunCleanupFailureIsOnlyAWarning(t *testing.T) {
	f := newFixture(t, "FAKE_EXIT_cleanup=2")
	res, err := f.runner.Run(context.Background(), Job{Response: loadResponse(t), Script: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != "success" || !bytes.Contains(res.RawTrace, []byte("WARNING: Cleanup script failed: exit status 2")) {
		t.Errorf("state %q, trace:\n%s", res.State, res.RawTrace)
	}
	if !bytes.Contains(res.RunnerLog, []byte("fake: cleanup exits 2")) || bytes.Contains(res.RawTrace, []byte("fake: cleanup exits 2")) {
		t.Errorf("cleanup output must go to the runner log only:\n%s", res.RunnerLog)
	}
}

func TestRunCommandOwnProcessGroup(t *testing.T) {
	// Setpgid: the executor leads its own group (pgid == pid), which is what
	// lets the runner signal -pid; once it exits the group is gone.
	call := &Call{Args: []string{"-c", "exit 0"}}
	err := runCommand(context.Background(), execSpec{call: call, executable: "/bin/sh", graceful: time.Second, force: time.Second})
	if err != nil || call.ExitCode != 0 {
		t.Fatalf("err %v exit %d", err, call.ExitCode)
	}
	if err := syscall.Kill(-call.PID, 0); err == nil {
		t.Errorf("group %d still exists", call.PID)
	}
}

// A hard abort (Job-Status: canceled) and SIGTERM to the runner both kill the running
// stage, skip after_script and still run cleanup; the runner leaves CI_JOB_STATUS at the
// stage error's state ("failed"), not "canceled" (common/build.go executeScript).
func TestRunAbortAndInterrupt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		job    func(ch chan struct{}) Job
		reason string
	}{
		{"abort", func(ch chan struct{}) Job { return Job{Abort: ch} }, JobCanceled},
		{"interrupt", func(ch chan struct{}) Job { return Job{Interrupt: ch} }, RunnerInterrupted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, "FAKE_TRAP=1")
			ch := make(chan struct{})
			var once sync.Once
			f.runner.TraceSink = &cancelWhen{marker: "READY", cancel: func() { once.Do(func() { close(ch) }) }}
			var started []string
			var mu sync.Mutex
			f.runner.OnExec = func(stage string, pid int) {
				mu.Lock()
				started = append(started, stage)
				mu.Unlock()
				if pid <= 0 {
					t.Errorf("OnExec(%s) got pid %d", stage, pid)
				}
			}
			job := tc.job(ch)
			job.Response = loadResponse(t)
			job.Script = []string{"echo READY", "sleep 30"}
			job.AfterScript = []string{"echo after"}
			res, err := f.runner.Run(context.Background(), job)
			if err != nil {
				t.Fatal(err)
			}
			// The job's context is gone: after_script and cleanup_file_variables are skipped.
			want := []string{"config", "prepare", "run:prepare_script", "run:get_sources", "run:build_script", "cleanup"}
			if got := stages(res.Calls); !slices.Equal(got, want) {
				t.Errorf("calls = %q, want %q", got, want)
			}
			if !slices.Equal(started, want) {
				t.Errorf("OnExec saw %q", started)
			}
			if res.State != "failed" || res.RunnerFailureReason != tc.reason {
				t.Errorf("state/reason = %q/%q, want failed/%q", res.State, res.RunnerFailureReason, tc.reason)
			}
			for _, c := range res.Calls {
				if c.Stage == "cleanup" {
					if v, _ := envValue(c.Env, "CUSTOM_ENV_CI_JOB_STATUS"); v != "failed" {
						t.Errorf("cleanup's CI_JOB_STATUS = %q, want failed", v)
					}
				}
			}
		})
	}
}
