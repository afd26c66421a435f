// Package realrunner runs chatops-executor under the real gitlab-runner 19.4 (`minirunner
// run-single`, built by shared/realrunner/build.sh from the runner's own source), against
// a fake GitLab (gitlab/coordinatortest) and a fake Slack (delivery/slacktest) on
// 127.0.0.1, and checks what GitLab and Slack received.
//
// The runner is found through $CHATOPS_GITLAB_RUNNER; without it every test skips, so
// `make test` works on a fresh clone. `make test-realrunner` builds the runner and runs
// this suite.
package realrunner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/gitlab/coordinatortest"
)

// RunnerEnv names the variable that holds the path of the minirunner binary.
const RunnerEnv = "CHATOPS_GITLAB_RUNNER"

var (
	runnerBin   string // the real runner, from RunnerEnv
	executorBin string // chatops-executor, built once
)

func TestMain(m *testing.M) {
	runnerBin = os.Getenv(RunnerEnv)
	if runnerBin == "" {
		os.Exit(m.Run()) // every test skips
	}
	if _, err := os.Stat(runnerBin); err != nil {
		fmt.Fprintf(os.Stderr, "realrunner: %s=%s: %v\n", RunnerEnv, runnerBin, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "chatops-realrunner-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	executorBin = filepath.Join(dir, "chatops-executor")
	if out, err := exec.Command("go", "build", "-o", executorBin, "../../executor").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build executor: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needRunner skips a test when the real runner is not available.
func needRunner(t *testing.T) {
	t.Helper()
	if runnerBin == "" {
		t.Skipf("%s is not set: these tests need the real gitlab-runner; `make test-realrunner` builds it with ../shared/realrunner/build.sh and runs them", RunnerEnv)
	}
}

// slackToken is the bot token in the runner's environment; jobs must never see it.
const slackToken = "xoxb-runner-env-secret"

// rig is one runner host: a fake GitLab and Slack, an executor config and a runner
// config.toml with one or more [[runners]] entries pointing at them.
type rig struct {
	t            *testing.T
	dir          string
	gitlab       *coordinatortest.Server
	slack        *slacktest.Server
	execConfig   string
	runnerConfig string
}

type rigOptions struct {
	runners int // [[runners]] entries chatops-1…; default 1
	// graceful and force are [runners.custom] graceful_kill_timeout and
	// force_kill_timeout, seconds; default 10 and 5.
	graceful, force int
	killGrace       string // executor.kill_grace; default "2s"
	// prepareExec replaces prepare_exec (a wrapper that ends in the executor).
	prepareExec string
	// spyDir, when set, puts testdata/spy.sh in front of every executor call, recording
	// what each call received into spyDir.
	spyDir string
	// adminToken gives the executor the admin's read_api token (gitlab.token_file), which
	// the fake GitLab accepts for the project jobs API: cleanup can then ask how GitLab
	// ended a job whose own token it no longer accepts.
	adminToken bool
}

// adminToken is the read_api token of rigOptions.adminToken.
const adminToken = "glpat-admin-read-api-0123456789"

// policy lets alice (as GitLab says, verified with the job token) run anything.
const policy = `
[policy]
default = "deny"
audit_log = %q
[[policy.rule]]
name = "alice-runs-chat-jobs"
action = "allow"
users = ["alice"]
`

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	needRunner(t)
	if o.runners == 0 {
		o.runners = 1
	}
	if o.graceful == 0 {
		o.graceful = 10
	}
	if o.force == 0 {
		o.force = 5
	}
	if o.killGrace == "" {
		o.killGrace = "2s"
	}
	dir := t.TempDir()
	r := &rig{t: t, dir: dir, gitlab: coordinatortest.New(t), slack: slacktest.New(t, slackToken),
		execConfig: filepath.Join(dir, "executor.toml"), runnerConfig: filepath.Join(dir, "runner.toml")}
	var tokenFile string
	if o.adminToken {
		tokenFile = fmt.Sprintf("token_file = %q\n", filepath.Join(dir, "gitlab-token"))
		write(t, filepath.Join(dir, "gitlab-token"), adminToken+"\n")
		r.gitlab.SetPrivateToken(adminToken)
	}
	exe := fmt.Sprintf(`[executor]
builds_dir = %q
cache_dir = %q
state_dir = %q
kill_grace = %q
%s[gitlab]
url = %q
verify_identity = true
%s[slack]
api_url = %q
progress_interval = "0s"
`, filepath.Join(dir, "builds"), filepath.Join(dir, "cache"), filepath.Join(dir, "state"), o.killGrace,
		asRoot(), r.gitlab.URL, tokenFile, r.slack.APIURL()) + fmt.Sprintf(policy, filepath.Join(dir, "audit.jsonl"))
	write(t, r.execConfig, exe)

	exe, prepare := executorBin, executorBin
	if o.prepareExec != "" {
		prepare = o.prepareExec
	}
	args := func(stage string) string { return fmt.Sprintf("[%q, %q, %q]", "--config", r.execConfig, stage) }
	if o.spyDir != "" {
		spy, err := filepath.Abs("testdata/spy.sh")
		if err != nil {
			t.Fatal(err)
		}
		exe, prepare = spy, spy
		args = func(stage string) string {
			return fmt.Sprintf("[%q, %q, %q, %q, %q]", o.spyDir, executorBin, "--config", r.execConfig, stage)
		}
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "concurrent = %d\n", o.runners)
	for i := 1; i <= o.runners; i++ {
		fmt.Fprintf(&cfg, `[[runners]]
  name = "chatops-%d"
  url = %q
  token = "glrt-runner%d-0123456789abcdef"
  executor = "custom"
  [runners.custom]
    config_exec  = %q
    config_args  = %s
    prepare_exec = %q
    prepare_args = %s
    run_exec     = %q
    run_args     = %s
    cleanup_exec = %q
    cleanup_args = %s
    graceful_kill_timeout = %d
    force_kill_timeout = %d
`, i, r.gitlab.URL, i, exe, args("config"), prepare, args("prepare"), exe, args("run"),
			exe, args("cleanup"), o.graceful, o.force)
	}
	write(t, r.runnerConfig, cfg.String())
	return r
}

// asRoot is the rig's [executor] line when the tests run as root: they compare the
// executor with the real runner, not its isolation (../isolation_test.go), and write their
// markers where only root may, so jobs run as root — which must be asked for.
func asRoot() string {
	if os.Geteuid() == 0 {
		return "run_as = \"root\"\n"
	}
	return ""
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runner is one `minirunner run-single` process.
type runner struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runnerEnv is the environment of runner chatops-<n>: clean but for what a runner host
// has, and the Slack token the executor reads from it. Its TMPDIR is <dir>/tmp-<n>.
func (r *rig) runnerEnv(n int) []string {
	r.t.Helper()
	tmp := filepath.Join(r.dir, fmt.Sprintf("tmp-%d", n))
	home := filepath.Join(r.dir, "home")
	for _, d := range []string{tmp, home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			r.t.Fatal(err)
		}
	}
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + tmp, "LANG=C.UTF-8",
		"SLACK_BOT_TOKEN=" + slackToken}
}

// start starts runner chatops-<n> for one job.
func (r *rig) start(n int) *runner {
	r.t.Helper()
	p := &runner{name: fmt.Sprintf("chatops-%d", n), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(runnerBin, "run-single", "-c", r.runnerConfig, "-r", p.name,
		"--max-builds", "1", "--wait-timeout", "30")
	p.cmd.Env = r.runnerEnv(n)
	p.cmd.Dir = r.dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		r.t.Fatalf("start runner: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	r.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if r.t.Failed() {
			r.t.Logf("runner %s log:\n%s", p.name, p.out)
		}
	})
	return p
}

// wait waits for the runner to exit after its job.
func (p *runner) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("runner %s still running after 3 minutes:\n%s", p.name, p.out)
	}
}

// run queues job, runs one runner for it and returns what GitLab recorded.
func (r *rig) run(job []byte) (*coordinatortest.Job, coordinatortest.Update) {
	r.t.Helper()
	j := r.gitlab.Enqueue(r.t, job)
	r.start(1).wait(r.t)
	return j, r.final(j)
}

// final returns the job's final update, failing the test without one.
func (r *rig) final(j *coordinatortest.Job) coordinatortest.Update {
	r.t.Helper()
	u, ok := j.Final()
	if !ok {
		r.t.Fatalf("job %d: no final update reached GitLab; updates %+v\ntrace:\n%s", j.ID, j.Updates(), j.Log())
	}
	if r.t.Failed() {
		r.t.Logf("job %d log:\n%s", j.ID, j.Log())
	}
	return u
}

// jobSpec is what a test changes in the example chat job.
type jobSpec struct {
	id          int64
	script      []string
	afterScript []string          // nil: none
	vars        map[string]string // added or replaced; public, unmasked
	masked      map[string]string // added, masked
	timeout     int               // runner_info.timeout, seconds; default 3600
	// maskPrefixes, when not nil, replaces features.token_mask_prefixes.
	maskPrefixes []string
}

// exampleToken is the job token of examples/job-response.json; each job gets its own.
const exampleToken = "glcbt-jobtoken-4242-73e062cc48"

func jobToken(id int64) string { return fmt.Sprintf("glcbt-jobtoken-%d-73e062cc48", id) }

// chatJob is examples/job-response.json as GitLab would send it for job s.id.
func chatJob(t *testing.T, s jobSpec) []byte {
	t.Helper()
	data, err := os.ReadFile("../../examples/job-response.json")
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.ReplaceAll(data, []byte(exampleToken), []byte(jobToken(s.id)))
	var r map[string]any
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(s.id, 10)
	r["id"] = s.id
	r["job_info"].(map[string]any)["id"] = s.id
	timeout := s.timeout
	if timeout == 0 {
		timeout = 3600
	}
	r["runner_info"] = map[string]any{"timeout": timeout}
	r["features"].(map[string]any)["failure_reasons"] = coordinatortest.FailureReasons
	if s.maskPrefixes != nil {
		r["features"].(map[string]any)["token_mask_prefixes"] = s.maskPrefixes
	}
	vars := map[string]string{"CI_JOB_ID": id, "CI_JOB_URL": "https://gitlab.example.com/ops/infra/-/jobs/" + id}
	for k, v := range s.vars {
		vars[k] = v
	}
	list := r["variables"].([]any)
	for _, v := range list {
		m := v.(map[string]any)
		if nv, ok := vars[m["key"].(string)]; ok {
			m["value"] = nv
			delete(vars, m["key"].(string))
		}
	}
	for _, k := range sortedKeys(vars) {
		list = append(list, map[string]any{"key": k, "value": vars[k], "public": true})
	}
	for _, k := range sortedKeys(s.masked) {
		list = append(list, map[string]any{"key": k, "value": s.masked[k], "public": false, "masked": true})
	}
	r["variables"] = list
	steps := []any{map[string]any{"name": "script", "script": s.script, "timeout": timeout, "when": "on_success"}}
	if s.afterScript != nil {
		steps = append(steps, map[string]any{"name": "after_script", "script": s.afterScript, "timeout": timeout, "when": "always", "allow_failure": true})
	}
	r["steps"] = steps
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// chatReply prints body as the job's chat_reply section.
func chatReply(body string) string {
	return `echo -e "section_start:$(date +%s):chat_reply\r\033[0K\n` + body + `\nsection_end:$(date +%s):chat_reply\r\033[0K"`
}

// channel returns the top-level messages of the job's channel, failing unless there are n.
func channel(t *testing.T, s *slacktest.Server, n int) []slacktest.Message {
	t.Helper()
	var top []slacktest.Message
	for _, m := range s.Channel("C0123ABCD") {
		if m.ThreadTS == "" || m.ThreadTS == m.TS {
			top = append(top, m)
		}
	}
	if len(top) != n {
		t.Fatalf("channel has %d top-level messages, want %d:\n%s", len(top), n, s)
	}
	return top
}

// reply returns the one message of the thread under start.
func reply(t *testing.T, s *slacktest.Server, start slacktest.Message) slacktest.Message {
	t.Helper()
	thread := s.Thread("C0123ABCD", start.TS)
	if len(thread) != 1 {
		t.Fatalf("thread has %d replies, want 1:\n%s", len(thread), s)
	}
	return thread[0]
}

// assertFinal checks the final update GitLab received.
func assertFinal(t *testing.T, u coordinatortest.Update, state, reason string, exit int) {
	t.Helper()
	if u.State != state || u.FailureReason != reason || u.ExitCode != exit {
		t.Errorf("GitLab recorded state %q failure_reason %q exit_code %d, want %q %q %d",
			u.State, u.FailureReason, u.ExitCode, state, reason, exit)
	}
}

// assertDead checks that every pid listed in file is gone (or a zombie).
func assertDead(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pids := strings.Fields(string(data))
	if len(pids) == 0 {
		t.Fatal("the job wrote no pids")
	}
	for _, f := range pids {
		pid, _ := strconv.Atoi(f)
		deadline := time.Now().Add(10 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("process %d of the job survived", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
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

// assertClean checks that the job left no state or build directory behind.
func (r *rig) assertClean(id int64) {
	r.t.Helper()
	for _, d := range []string{"state", "builds"} {
		p := filepath.Join(r.dir, d, strconv.FormatInt(id, 10))
		if _, err := os.Stat(p); err == nil {
			r.t.Errorf("job %d left %s behind", id, p)
		}
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
