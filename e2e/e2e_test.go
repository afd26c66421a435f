// Package e2e runs the real chatops-executor binary under the runner emulator, the way
// gitlab-runner 19.4.0 would, and checks what the runner, the job log and the host see.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/emulator"
	"github.com/chatops-executor/chatops-executor/jobuser"
)

// binary is the executor built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chatops-executor-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "chatops-executor")
	build := exec.Command("go", "build", "-o", binary, "../executor")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build executor: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// host is one runner host: an executor config and the emulated runner that uses it.
type host struct {
	t   *testing.T
	dir string
	// public is a directory every uid may write (sticky, like /tmp) for the files tests
	// read back from inside jobs, such as pid lists.
	public string
	// uids is the host's executor.job_uids when the tests run as root.
	uids   jobuser.Range
	config string
	runner *emulator.Runner
	// slack is the fake Slack every host's executor talks to: tests never reach the real one.
	slack *slacktest.Server
}

// slackToken is the bot token the runner's environment gives the executor.
const slackToken = "xoxb-runner-env-secret"

// allowAll is the policy of hosts whose tests are not about policy.
const allowAll = "[policy]\ndefault = \"allow\"\n"

func newHost(t *testing.T, extraConfig string) *host {
	t.Helper()
	dir := traversableTempDir(t)
	h := &host{t: t, dir: dir, public: filepath.Join(dir, "public"), config: filepath.Join(dir, "config.toml"), slack: slacktest.New(t, slackToken)}
	if err := os.Mkdir(h.public, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(h.public, 0o1777); err != nil {
		t.Fatal(err)
	}
	executor := ""
	if os.Geteuid() == 0 && !strings.Contains(extraConfig, "run_as") && !strings.Contains(extraConfig, "job_uids") {
		// A range of its own per host: tests (and other test processes on this machine)
		// run side by side, and one host's cleanup stops every process of its uids.
		h.uids = distinctRange()
		executor = fmt.Sprintf("job_uids = %q\n", h.uids)
	}
	toml := fmt.Sprintf("[executor]\nbuilds_dir = %q\ncache_dir = %q\nstate_dir = %q\nkill_grace = \"500ms\"\n%s%s",
		filepath.Join(dir, "builds"), filepath.Join(dir, "cache"), filepath.Join(dir, "state"), executor, extraConfig)
	if !strings.Contains(extraConfig, "[slack]") {
		toml += fmt.Sprintf("[slack]\napi_url = %q\nprogress_interval = \"0s\"\n", h.slack.APIURL())
	}
	if err := os.WriteFile(h.config, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	args := func(stage string) []string { return []string{"--config", h.config, stage} }
	h.runner = &emulator.Runner{
		Executable:  binary,
		ConfigArgs:  args("config"),
		PrepareArgs: args("prepare"),
		RunArgs:     args("run"),
		CleanupArgs: args("cleanup"),
		// The runner's own environment, including a secret the job must never see.
		Env:                      []string{"PATH=" + os.Getenv("PATH"), "SLACK_BOT_TOKEN=" + slackToken},
		WorkDir:                  filepath.Join(dir, "runner"),
		GracefulKillTimeout:      3 * time.Second,
		ForcefulKillTimeout:      3 * time.Second,
		PreparationRetryInterval: -1,
	}
	return h
}

// usedRanges are the job_uids ranges this test process has handed to hosts.
var usedRanges = struct {
	sync.Mutex
	m map[uint32]bool
}{m: map[uint32]bool{}}

// distinctRange is a random range of 100 uids no other host of this process has: random,
// so that test processes running side by side on one machine do not meet, and checked, so
// that hosts of one process cannot either.
func distinctRange() jobuser.Range {
	usedRanges.Lock()
	defer usedRanges.Unlock()
	for {
		r := jobuser.RandomRange(100)
		if !usedRanges.m[r.First] {
			usedRanges.m[r.First] = true
			return r
		}
	}
}

// traversableTempDir is t.TempDir() with it and its parent opened to passing through
// (0711), as a real builds_dir's parents are: a job's uid must reach its build dir.
func traversableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// response returns the example chat job with id, and variables overridden.
func response(t *testing.T, id int64, vars map[string]string) []byte {
	t.Helper()
	data, err := os.ReadFile("../examples/job-response.json")
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	r["id"] = id
	r["job_info"].(map[string]any)["id"] = id
	for _, v := range r["variables"].([]any) {
		m := v.(map[string]any)
		if m["key"] == "CI_JOB_ID" {
			m["value"] = strconv.FormatInt(id, 10)
		}
		if nv, ok := vars[m["key"].(string)]; ok {
			m["value"] = nv
			delete(vars, m["key"].(string))
		}
	}
	for k, v := range vars {
		r["variables"] = append(r["variables"].([]any), map[string]any{"key": k, "value": v, "public": true})
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (h *host) run(ctx context.Context, job emulator.Job) *emulator.Result {
	h.t.Helper()
	res, err := h.runner.Run(ctx, job)
	if err != nil {
		h.t.Fatalf("emulator: %v", err)
	}
	return res
}

// assertClean checks that the job left nothing behind on the host.
func (h *host) assertClean(id int64) {
	h.t.Helper()
	for _, d := range []string{"state", "builds"} {
		p := filepath.Join(h.dir, d, strconv.FormatInt(id, 10))
		if _, err := os.Stat(p); err == nil {
			h.t.Errorf("job %d left %s behind", id, p)
		}
	}
}

func TestPassingJob(t *testing.T) {
	h := newHost(t, allowAll)
	res := h.run(context.Background(), emulator.Job{
		Response:    response(t, 100, nil),
		Script:      []string{`echo "deploying $CHAT_INPUT"`, `env | grep -c SLACK_BOT_TOKEN || true`},
		AfterScript: []string{"echo after"},
	})
	if res.State != "success" {
		t.Fatalf("state %s (%v)\n%s", res.State, res.Err, res.RawTrace)
	}
	trace := string(res.RawTrace)
	for _, want := range []string{"deploying production v1.4.2\n", "\n0\n", "after\n", "Using Custom executor with driver chatops-executor", "Preparing chat job 100 (deploy)"} {
		if !strings.Contains(trace, want) {
			t.Errorf("job log lacks %q:\n%s", want, trace)
		}
	}
	if strings.Contains(trace, "xoxb-runner-env-secret") {
		t.Error("the runner's SLACK_BOT_TOKEN reached the job")
	}
	if !strings.Contains(string(res.RunnerLog), "job 100 (deploy) succeeded") {
		t.Errorf("runner log lacks the outcome:\n%s", res.RunnerLog)
	}
	if res.ConfigOutput == nil || *res.ConfigOutput.BuildsDir != filepath.Join(h.dir, "builds", "100") {
		t.Errorf("config output = %+v", res.ConfigOutput)
	}
	h.assertClean(100)
}

func TestFailingJobExitCodeReachesRunner(t *testing.T) {
	h := newHost(t, allowAll)
	res := h.run(context.Background(), emulator.Job{
		Response:    response(t, 101, nil),
		Script:      []string{"echo about to fail", "exit 42", "echo never"},
		AfterScript: []string{`echo "after: $CI_JOB_STATUS"`},
	})
	if res.State != "failed" || res.FailureReason != emulator.ScriptFailure || res.ExitCode != 42 {
		t.Fatalf("state %s reason %s exit %d (%v)", res.State, res.FailureReason, res.ExitCode, res.Err)
	}
	trace := string(res.RawTrace)
	if !strings.Contains(trace, "after: failed") || strings.Contains(trace, "never\n") {
		t.Errorf("job log:\n%s", trace)
	}
	if strings.Contains(trace, "chatops-executor: script exited") {
		t.Error("the executor repeated the script failure the runner reports itself")
	}
	if !strings.Contains(string(res.RunnerLog), "job 101 (deploy) failed with exit code 42") {
		t.Errorf("runner log:\n%s", res.RunnerLog)
	}
	h.assertClean(101)
}

func TestCancelledJobLeavesNoProcess(t *testing.T) {
	h := newHost(t, allowAll)
	pidFile := filepath.Join(h.public, "pids")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	h.runner.TraceSink = writerFunc(func(p []byte) (int, error) {
		if bytes.Contains(p, []byte("children started")) {
			once.Do(func() { close(started) })
		}
		return len(p), nil
	})
	go func() {
		select {
		case <-started:
			cancel()
		case <-time.After(30 * time.Second):
		}
	}()
	res := h.run(ctx, emulator.Job{
		Response: response(t, 102, nil),
		Script: []string{
			// A child that ignores TERM and a nohup'd grandchild: both must be gone.
			"(trap '' TERM; exec sleep 300) & echo $! >> " + pidFile,
			"nohup sleep 300 >/dev/null 2>&1 & echo $! >> " + pidFile,
			"echo children started",
			"sleep 300",
		},
	})
	if res.State != "failed" || res.RunnerFailureReason != "job_canceled" {
		t.Fatalf("state %s reason %s (%v)", res.State, res.RunnerFailureReason, res.Err)
	}
	assertDead(t, pidFile)
	if !strings.Contains(string(res.RunnerLog), "job 102 (deploy) cancelled") {
		t.Errorf("runner log:\n%s", res.RunnerLog)
	}
	h.assertClean(102)
}

func TestTimedOutJob(t *testing.T) {
	h := newHost(t, allowAll)
	pidFile := filepath.Join(h.public, "pids")
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 103, nil),
		Timeout:  3 * time.Second,
		Script:   []string{"sleep 300 & echo $! >> " + pidFile, "sleep 300"},
	})
	if res.State != "failed" || res.FailureReason != emulator.JobExecutionTimeout {
		t.Fatalf("state %s reason %s (%v)", res.State, res.FailureReason, res.Err)
	}
	assertDead(t, pidFile)
	h.assertClean(103)
}

// The job's own timeout is in the job response; the executor tells a timeout from a cancel
// by it. With runner_info.timeout matching the emulator's, cleanup must say "timed out".
func TestTimeoutIsReportedAsTimeout(t *testing.T) {
	h := newHost(t, allowAll)
	var r map[string]any
	_ = json.Unmarshal(response(t, 104, nil), &r)
	r["runner_info"] = map[string]any{"timeout": 3}
	data, _ := json.Marshal(r)
	res := h.run(context.Background(), emulator.Job{Response: data, Script: []string{"sleep 300"}})
	if res.FailureReason != emulator.JobExecutionTimeout {
		t.Fatalf("reason %s", res.FailureReason)
	}
	if !strings.Contains(string(res.RunnerLog), "job 104 (deploy) timed out") {
		t.Errorf("runner log:\n%s", res.RunnerLog)
	}
}

func TestConcurrentJobsShareNothing(t *testing.T) {
	h := newHost(t, allowAll)
	const n = 20
	var wg sync.WaitGroup
	results := make([]*emulator.Result, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := int64(1000 + i)
			// Every job writes its own id into the same relative path of its project dir
			// and reads it back after a pause: a shared directory would mix them up.
			results[i], errs[i] = h.runner.Run(context.Background(), emulator.Job{
				Response: response(t, id, map[string]string{"CHAT_INPUT": "input-" + strconv.Itoa(i)}),
				Script: []string{
					`echo "$CI_JOB_ID" > mine`,
					"sleep 0.3",
					`echo "job $CI_JOB_ID sees $(cat mine) and $CHAT_INPUT"`,
				},
			})
		}(i)
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		id := 1000 + i
		if errs[i] != nil {
			t.Fatalf("job %d: %v", id, errs[i])
		}
		res := results[i]
		want := fmt.Sprintf("job %d sees %d and input-%d\n", id, id, i)
		if res.State != "success" || !strings.Contains(string(res.RawTrace), want) {
			t.Errorf("job %d: state %s, want %q in:\n%s", id, res.State, want, res.RawTrace)
		}
		h.assertClean(int64(id))
	}
	entries, _ := os.ReadDir(filepath.Join(h.dir, "state"))
	for _, e := range entries {
		if e.IsDir() && e.Name() != "outbox" && e.Name() != "uids" {
			t.Errorf("state dir holds %s after all jobs ended", e.Name())
		}
	}
}

func TestNonChatJobRejected(t *testing.T) {
	h := newHost(t, allowAll)
	marker := filepath.Join(h.public, "ran")
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 105, map[string]string{"CI_PIPELINE_SOURCE": "push"}),
		Script:   []string{"touch " + marker},
	})
	if res.State != "failed" || res.FailureReason != emulator.ScriptFailure {
		t.Fatalf("state %s reason %s", res.State, res.FailureReason)
	}
	if !strings.Contains(string(res.RawTrace), `this runner only runs jobs started from chat, and this one's pipeline source is "push"`) {
		t.Errorf("job log lacks the reason:\n%s", res.RawTrace)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the rejected job's script ran")
	}
	if !strings.Contains(string(res.RunnerLog), "job 105 (deploy) denied") {
		t.Errorf("runner log:\n%s", res.RunnerLog)
	}
	// A build failure is not retried: prepare ran once.
	prepares := 0
	for _, c := range res.Calls {
		if c.Stage == "prepare" {
			prepares++
		}
	}
	if prepares != 1 {
		t.Errorf("prepare ran %d times, want 1 (a rejection must not be retried as a system failure)", prepares)
	}
	h.assertClean(105)
}

func TestBrokenConfigIsSystemFailure(t *testing.T) {
	h := newHost(t, "[slack]\napi_url = \"http://127.0.0.1:9/api/\"\nreply = \"sometimes\"\n")
	res := h.run(context.Background(), emulator.Job{Response: response(t, 106, nil), Script: []string{"true"}})
	if res.State != "failed" || res.FailureReason != emulator.RunnerSystemFailure {
		t.Fatalf("state %s reason %s (%v)", res.State, res.FailureReason, res.Err)
	}
	trace := string(res.RawTrace)
	text, _ := os.ReadFile(h.config)
	line := 1 + strings.Count(string(text[:bytes.Index(text, []byte("reply = "))]), "\n")
	for _, want := range []string{fmt.Sprintf("chatops-executor: config %s: line %d: slack.reply: must be", h.config, line), "hint: run 'chatops-executor --config " + h.config + " check'"} {
		if !strings.Contains(trace, want) {
			t.Errorf("job log lacks %q:\n%s", want, trace)
		}
	}
}

// The runner always writes JOB_RESPONSE_FILE; when it is missing, empty or garbled the
// runner's install is broken, and the executor must say so as a system failure.
func TestBadJobResponseFile(t *testing.T) {
	h := newHost(t, allowAll)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name, file, want string
	}{
		{"unset", "", "JOB_RESPONSE_FILE is not set"},
		{"missing", filepath.Join(dir, "gone.json"), "gone.json: no such file or directory"},
		{"empty", write("empty.json", ""), "empty.json: the file is empty"},
		{"garbled", write("garbled.json", `{"id": 7, "tok`), "garbled.json: not valid JSON"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, stage := range []string{"config", "prepare", "cleanup"} {
				cmd := exec.Command(binary, "--config", h.config, stage)
				cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BUILD_FAILURE_EXIT_CODE=1", "SYSTEM_FAILURE_EXIT_CODE=2"}
				if tt.file != "" {
					cmd.Env = append(cmd.Env, "JOB_RESPONSE_FILE="+tt.file)
				}
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				code := cmd.ProcessState.ExitCode()
				if err == nil || code != 2 {
					t.Errorf("%s: exit %d, want system failure 2", stage, code)
				}
				if !strings.Contains(stderr.String(), tt.want) || !strings.HasPrefix(stderr.String(), "chatops-executor: ") {
					t.Errorf("%s: stderr %q lacks %q", stage, stderr.String(), tt.want)
				}
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// assertDead checks that every pid listed in file is gone (or a zombie awaiting its parent).
func assertDead(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	for _, f := range strings.Fields(string(data)) {
		pid, _ := strconv.Atoi(f)
		deadline := time.Now().Add(5 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("process %d of the job survived", pid)
		}
	}
}

func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(data, ')'); i >= 0 && i+2 < len(data) {
		return data[i+2] != 'Z'
	}
	return true
}
