package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var (
	tryBinOnce sync.Once
	tryBin     string
	tryBinErr  error
)

// useBuiltExecutor points try at a freshly built executor: the test binary cannot serve
// the runner's config/prepare/run/cleanup calls.
func useBuiltExecutor(t *testing.T) {
	t.Helper()
	tryBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chatops-executor-try-test-")
		if err != nil {
			tryBinErr = err
			return
		}
		tryBin = filepath.Join(dir, "chatops-executor")
		out, err := exec.Command("go", "build", "-ldflags", "-X main.version=test", "-o", tryBin, ".").CombinedOutput()
		if err != nil {
			tryBinErr, tryBin = err, string(out)
		}
	})
	if tryBinErr != nil {
		t.Fatalf("build the executor: %v\n%s", tryBinErr, tryBin)
	}
	old := tryExecutable
	tryExecutable = func() (string, error) { return tryBin, nil }
	t.Cleanup(func() { tryExecutable = old })
}

// runTryCmd runs try as main would, and returns its exit code and output.
func runTryCmd(t *testing.T, e env, configFlag string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: e.get, configFlag: configFlag, version: "test"}
	code := a.fail(&command{name: "try", run: runTry}, runTry(context.Background(), a, args))
	return code, out.String(), errb.String()
}

func tryEnv() env { return env{"PATH": os.Getenv("PATH"), "USER": "alice"} }

const tryCI = "testdata/try/.gitlab-ci.yml"

// durations are the parts of a transcript that change from run to run.
var durations = regexp.MustCompile(`\b(after|in) (<1s|[0-9.]+(ms|s|m[0-9.]+s))`)

// jobUIDs is the job log's line about who the job runs as: a random leased uid as root,
// the executor's own uid otherwise.
var jobUIDs = regexp.MustCompile(`(?m)^(Running as uid \d+|chatops-executor: warning: the executor runs as uid \d+, not root).*$`)

func TestTryTranscripts(t *testing.T) {
	useBuiltExecutor(t)
	for _, tt := range []struct {
		golden string
		args   []string
		code   int
	}{
		{"chat_reply", []string{"status", "staging", "eu"}, 0},
		{"failing", []string{"broken"}, 1},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errs := runTryCmd(t, tryEnv(), "", append([]string{"--ci", tryCI, "--channel", "C0123ABCD", "--chat-user", "U0123ABCD", "--project", "ops/infra"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, errs)
			}
			got := jobUIDs.ReplaceAllString(durations.ReplaceAllString(out, "$1 N"), "(who the job runs as)")
			golden := filepath.Join("testdata", "try", tt.golden+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("transcript differs from %s (go test ./executor -run TestTryTranscripts -update):\n%s", golden, got)
			}
		})
	}
}

func TestTryOutcomes(t *testing.T) {
	useBuiltExecutor(t)
	dir := t.TempDir()
	badYAML := writeFile(t, dir, "bad.yml", "x:\n  script: [echo\n", 0o644)
	image := writeFile(t, dir, "image.yml", "x:\n  image: alpine\n  script: echo\n", 0o644)
	for _, tt := range []struct {
		name    string
		args    []string
		code    int
		stdout  []string
		stderr  []string
		without []string
	}{
		{"manual without play", []string{"manual"}, 1, nil,
			[]string{`job "manual" is manual (when: manual)`, "pass --play"}, nil},
		{"manual with play", []string{"--play", "manual"}, 0, []string{"played", "succeeded"}, nil, nil},
		{"not found", []string{"nope"}, 1, nil,
			[]string{`The command could not be scheduled. Make sure that your project has a .gitlab-ci.yml that defines a job with the name "nope"`, "hint: the jobs in"}, nil},
		{"long output is a file", []string{"big"}, 0, []string{"📎 ", "line 400 of a long report"}, nil, nil},
		{"job token masked", []string{"secret"}, 0, []string{"token is [MASKED]"}, nil, []string{"glcbt-try-"}},
		{"no job", nil, 2, nil, []string{"try needs a JOB name"}, nil},
		{"bad flag", []string{"--nope", "x"}, 2, nil, []string{"flag provided but not defined"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runTryCmd(t, tryEnv(), "", append([]string{"--ci", tryCI}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q", w)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			for _, w := range tt.without {
				if strings.Contains(out+errs, w) {
					t.Errorf("output has %q", w)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out, errs)
			}
		})
	}
	// Issue 10: image does not change what runs on this executor: one warning, and the job runs.
	if code, _, errs := runTryCmd(t, tryEnv(), "", "--ci", image, "x"); code != 0 || !strings.Contains(errs, "ignoring image: this executor runs jobs on the host") {
		t.Errorf("image: code %d stderr %q", code, errs)
	}
	for _, tt := range []struct{ file, want string }{
		{badYAML, "bad.yml: line"},
		{filepath.Join(dir, "missing.yml"), "no such file"},
	} {
		code, _, errs := runTryCmd(t, tryEnv(), "", "--ci", tt.file, "x")
		if code != 2 || !strings.Contains(errs, tt.want) || strings.Contains(errs, "help") {
			t.Errorf("%s: code %d stderr %q, want 2 and %q", tt.file, code, errs, tt.want)
		}
	}
}

// With --config, the admin's policy decides, and a denial shows as Slack shows it.
func TestTryWithAdminConfig(t *testing.T) {
	useBuiltExecutor(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "config.toml", tryDenyTOML+`
[[policy.rule]]
name = "status-from-ops"
action = "allow"
jobs = ["status"]
channels = ["C0123ABCD"]
`, 0o600)
	code, out, errs := runTryCmd(t, tryEnv(), cfg, "--ci", tryCI, "--channel", "C0123ABCD", "status")
	if code != 0 || !strings.Contains(out, "all green") || !strings.Contains(errs, "using "+cfg+"'s policy") {
		t.Errorf("allowed: code %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runTryCmd(t, tryEnv(), cfg, "--ci", tryCI, "--channel", "C0OTHER", "status")
	if code != 1 || !strings.Contains(out, "👁 only visible to @alice") || !strings.Contains(errs, "job status was refused by the policy: no rule decided") {
		t.Errorf("denied: code %d\n%s\n%s", code, out, errs)
	}
}

// The examples are what `make demo` runs: they must keep working, and keep showing what
// they are there to show.
func TestTryExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("deploy takes a few seconds")
	}
	useBuiltExecutor(t)
	for _, tt := range []struct {
		args  []string
		code  int
		reply string
	}{
		{[]string{"hello-world", "hi"}, 0, "you said: hi"},
		{[]string{"ls"}, 0, "┆ total "},
		{[]string{"deploy", "staging", "v1.4.2"}, 0, "┆ Deployed v1.4.2 to staging (3 hosts)"},
		{[]string{"deploy", "everywhere"}, 1, "┆ usage: deploy staging|production vX.Y.Z"},
		{[]string{"broken"}, 1, "failed with exit code 3"},
		{[]string{"not-from-chat"}, 1, ""},
	} {
		code, out, errs := runTryCmd(t, tryEnv(), "", append([]string{"--ci", "../examples/.gitlab-ci.yml"}, tt.args...)...)
		if code != tt.code || !strings.Contains(out, tt.reply) {
			t.Errorf("%v: exit code %d (want %d), reply should have %q:\n%s\n%s", tt.args, code, tt.code, tt.reply, out, errs)
		}
		if tt.args[0] == "ls" && strings.Contains(out[strings.Index(out, "── what the channel"):], "not in the reply") {
			t.Errorf("ls: the reply is not only the chat_reply section:\n%s", out)
		}
	}
}

// The rich-reply example: a Block Kit table and a chart PNG the job draws with bash, gzip
// and od, shared with the demo's config (binary files allowed) and refused without it.
func TestTryRichReplyExample(t *testing.T) {
	useBuiltExecutor(t)
	args := []string{"--ci", "../examples/.gitlab-ci.yml", "deploys-chart"}
	code, out, errs := runTryCmd(t, tryEnv(), "../examples/demo-config.toml", args...)
	for _, want := range []string{"┆ *Deploys per host this week*", "┆ *host* │ *deploys*", "┆ db-1 │ 7", "┆ 17 in total · asked by @alice", "┆ 📎 deploys.png ("} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit code %d, reply lacks %q:\n%s\n%s", code, want, out, errs)
		}
	}
	if !strings.Contains(out, "reply directory: deploys.png (") {
		t.Errorf("the job log does not preview the reply directory:\n%s", out)
	}
	code, out, errs = runTryCmd(t, tryEnv(), "", args...)
	if code != 0 || !strings.Contains(out, `deploys.png was not shared: it is not UTF-8 text, and binary files are shared only with slack.reply_files = "all"`) ||
		strings.Contains(out, "📎 deploys.png") {
		t.Errorf("with the default reply_files: exit code %d\n%s\n%s", code, out, errs)
	}
}

func TestTraceWriter(t *testing.T) {
	for _, tt := range []struct {
		name   string
		colour bool
		writes []string
		want   string
	}{
		{"markers split across writes", false,
			[]string{"section_sta", "rt:1:step_script\r\x1b[0K\x1b[36;1mExecuting\x1b[0;m\nout", "put\nsection_end:1:step_script\r\x1b[0K\n"},
			"Executing\noutput\n"},
		{"redraws keep the final text", false, []string{"10%\r50%\r100%\n"}, "100%\n"},
		{"colour kept on a terminal", true, []string{"\x1b[32;1m$ echo\x1b[0;m\n"}, "\x1b[32;1m$ echo\x1b[0;m\n"},
		{"unfinished last line flushed", false, []string{"no newline"}, "no newline\n"},
		{"empty lines stay", false, []string{"a\n\nb\n"}, "a\n\nb\n"},
	} {
		var b bytes.Buffer
		w := newTraceWriter(&b, tt.colour)
		for _, s := range tt.writes {
			w.Write([]byte(s))
		}
		w.Flush()
		if b.String() != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, b.String(), tt.want)
		}
	}
}

// try with an admin's config shows a rule's allow_mentions as the channel would: the
// mention stays for a rule that allows it, and shows as text for one that does not.
func TestTryKeepsTheRulesAllowMentions(t *testing.T) {
	useBuiltExecutor(t)
	dir := t.TempDir()
	ci := writeFile(t, dir, ".gitlab-ci.yml", "announce:\n  script:\n    - echo '<!here> v2 is out' > \"$CHATOPS_REPLY_DIR/message.md\"\n", 0o644)
	for allow, want := range map[bool]string{true: "┆ @here v2 is out", false: "┆ <!here> v2 is out"} {
		cfg := writeFile(t, dir, "config.toml", fmt.Sprintf("[executor]\n[slack]\nprogress_interval = \"0s\"\n[policy]\ndefault = \"deny\"\n"+
			"[[policy.rule]]\nname = \"announcements\"\naction = \"allow\"\njobs = [\"announce\"]\nallow_mentions = %v\n", allow), 0o600)
		code, out, errs := runTryCmd(t, tryEnv(), cfg, "--ci", ci, "announce")
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("allow_mentions = %v: code %d, want %q:\n%s\n%s", allow, code, want, out, errs)
		}
	}
}

// tryExecutorTOML is the [executor] table of the configs try's tests write: paths that
// do not exist, since try runs with state of its own.
const tryExecutorTOML = `[executor]
builds_dir = "/nonexistent/builds"
cache_dir = "/nonexistent/cache"
state_dir = "/nonexistent/state"
`

// tryDenyTOML is an admin's config for try's tests whose policy denies what its rules,
// appended after it, do not decide.
const tryDenyTOML = tryExecutorTOML + `
[gitlab]
url = "https://gitlab.example.com"

[slack]
progress_interval = "0s"

[policy]
default = "deny"
audit_log = "/nonexistent/audit.jsonl"
`
