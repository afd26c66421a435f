package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// env is a fake process environment; tests never call os.Setenv.
type env map[string]string

func (e env) get(k string) string { return e[k] }

func runCmd(t *testing.T, e env, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb, e.get)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// asRoot is the [executor] line of tests that are not about isolation: as root, jobs run
// as root only when the config says so.
func asRoot() string {
	if os.Geteuid() == 0 {
		return "run_as = \"root\"\n"
	}
	return ""
}

func validConfig(t *testing.T, dir string) string {
	runAs := asRoot()
	return writeFile(t, dir, "config.toml", "[executor]\nbuilds_dir = \""+dir+"/builds\"\ncache_dir = \""+dir+"/cache\"\nstate_dir = \""+dir+"/state\"\n"+runAs+"[policy]\ndefault = \"allow\"\n", 0o600)
}

func TestUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: chatops-executor"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"--nope", "config"}, 2, "flag provided but not defined"},
		{[]string{"run", "only-one-arg"}, 2, "run takes SCRIPT_PATH STAGE_NAME"},
		{[]string{"version", "extra"}, 2, "version takes no arguments"},
	} {
		code, _, stderr := runCmd(t, env{}, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%q: code %d stderr %q, want %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
	code, stdout, _ := runCmd(t, env{}, "help")
	if code != 0 || !strings.Contains(stdout, "cleanup") {
		t.Errorf("help: %d %q", code, stdout)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCmd(t, env{}, "version")
	if code != 0 || !strings.HasPrefix(stdout, "chatops-executor ") {
		t.Errorf("version: %d %q", code, stdout)
	}
}

// The protocol stages must answer with the codes the runner put in the environment, not
// with hard-coded 1 and 2; non-default values prove it.
func TestProtocolExitCodesComeFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	e := env{"BUILD_FAILURE_EXIT_CODE": "41", "SYSTEM_FAILURE_EXIT_CODE": "42"}

	// A broken config is a system failure, with the key and a hint.
	bad := writeFile(t, dir, "bad.toml", "[executor]\nshel = \"bash\"\n", 0o600)
	code, _, stderr := runCmd(t, e, "--config", bad, "config")
	if code != 42 {
		t.Errorf("broken config: exit %d, want SYSTEM_FAILURE_EXIT_CODE 42", code)
	}
	for _, want := range []string{"chatops-executor: config " + bad, "line 2: executor.shel: unknown key", "hint: run 'chatops-executor --config " + bad + " check'"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("broken config stderr %q lacks %q", stderr, want)
		}
	}

	// Missing JOB_RESPONSE_FILE: system failure naming the variable.
	good := validConfig(t, dir)
	code, _, stderr = runCmd(t, e, "--config", good, "prepare")
	if code != 42 || !strings.Contains(stderr, "JOB_RESPONSE_FILE is not set") {
		t.Errorf("no job file: exit %d stderr %q", code, stderr)
	}

	// A failing script: build failure, its code in BUILD_EXIT_CODE_FILE, no extra noise.
	jr, err := os.ReadFile("../examples/job-response.json")
	if err != nil {
		t.Fatal(err)
	}
	e["JOB_RESPONSE_FILE"] = writeFile(t, dir, "job.json", string(jr), 0o600)
	e["BUILD_EXIT_CODE_FILE"] = filepath.Join(dir, "code")
	e["PATH"] = os.Getenv("PATH")
	if code, _, stderr := runCmd(t, e, "--config", good, "prepare"); code != 0 {
		t.Fatalf("prepare: %d %s", code, stderr)
	}
	script := writeFile(t, dir, "s.sh", "exit 5\n", 0o700)
	code, _, stderr = runCmd(t, e, "--config", good, "run", script, "build_script")
	if code != 41 {
		t.Errorf("failing script: exit %d, want BUILD_FAILURE_EXIT_CODE 41", code)
	}
	if data, _ := os.ReadFile(e["BUILD_EXIT_CODE_FILE"]); string(data) != "5" {
		t.Errorf("BUILD_EXIT_CODE_FILE = %q", data)
	}
	if stderr != "" {
		t.Errorf("a script failure is the runner's to report; executor printed %q", stderr)
	}

	// The config path also comes from $CHATOPS_EXECUTOR_CONFIG.
	e["CHATOPS_EXECUTOR_CONFIG"] = good
	if code, stdout, stderr := runCmd(t, e, "config"); code != 0 || !strings.Contains(stdout, `"builds_dir":"`+dir+`/builds/4242"`) {
		t.Errorf("config via env: %d %q %q", code, stdout, stderr)
	}
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := validConfig(t, dir)
	code, stdout, stderr := runCmd(t, env{}, "--config", good, "check")
	if code != 0 || !strings.Contains(stdout, "is valid") || !strings.Contains(stderr, "warning: slack.token_file") {
		t.Errorf("valid config: %d %q %q", code, stdout, stderr)
	}
	token := writeFile(t, dir, "token", "xoxb-1", 0o644)
	withToken := writeFile(t, dir, "t.toml", "[executor]\nbuilds_dir = \""+dir+"/b\"\ncache_dir = \""+dir+"/c\"\nstate_dir = \""+dir+"/s\"\n[slack]\ntoken_file = \""+token+"\"\n", 0o600)
	code, _, stderr = runCmd(t, env{}, "--config", withToken, "check")
	if code != 1 || !strings.Contains(stderr, "slack.token_file: secret file "+token+" is readable by every user") {
		t.Errorf("world-readable token: %d %q", code, stderr)
	}
	bad := writeFile(t, dir, "bad.toml", "[executor]\n[gitlab]\ntimeout = 10\n", 0o600)
	code, _, stderr = runCmd(t, env{}, "--config", bad, "check")
	if code != 1 || !strings.Contains(stderr, "line 3") || !strings.Contains(stderr, "timeout") {
		t.Errorf("bare duration: %d %q", code, stderr)
	}
	code, _, stderr = runCmd(t, env{}, "--config", filepath.Join(dir, "missing.toml"), "check")
	if code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing config: %d %q", code, stderr)
	}
}

// Cleanup asks GitLab how a stopped job ended with gitlab.token_file's token; an
// unreadable one is said in the runner log, and never fails the cleanup.
func TestCleanupWithAnUnreadableGitLabToken(t *testing.T) {
	dir := t.TempDir()
	jr, err := os.ReadFile("../examples/job-response.json")
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-token")
	cfg := writeFile(t, dir, "config.toml", "[executor]\nbuilds_dir = \""+dir+"/builds\"\ncache_dir = \""+dir+"/cache\"\nstate_dir = \""+dir+
		"/state\"\n[gitlab]\nurl = \"http://127.0.0.1:1\"\ntoken_file = \""+missing+"\"\n[policy]\ndefault = \"allow\"\n", 0o600)
	e := env{"JOB_RESPONSE_FILE": writeFile(t, dir, "job.json", string(jr), 0o600), "PATH": os.Getenv("PATH")}
	code, _, stderr := runCmd(t, e, "--config", cfg, "cleanup")
	if code != 0 || !strings.Contains(stderr, "warning: gitlab.token_file: ") || !strings.Contains(stderr, missing) ||
		!strings.Contains(stderr, "asking GitLab with the job's token only") {
		t.Errorf("cleanup: exit %d, stderr %q", code, stderr)
	}
}
