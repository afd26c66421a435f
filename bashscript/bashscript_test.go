package bashscript

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// trickyValues are values a job variable can hold that are easy to get
// wrong: quotes of both kinds, newlines, $ and command substitutions,
// backslashes, ANSI escapes, bytes that are not UTF-8, leading dashes.
var trickyValues = map[string]string{
	"EMPTY":       "",
	"PLAIN":       "plain-value_1.2/3@x,y",
	"SPACES":      "  leading and trailing  ",
	"QUOTES":      `it's "quoted" and 'single'`,
	"NEWLINES":    "line1\nline2\r\nline3\n",
	"DOLLAR":      "$HOME ${PATH} $(touch pwned) `touch pwned2` $$ $",
	"BACKSLASH":   `C:\path\to\n\x41\\`,
	"ANSI":        "\x1b[31mred\x1b[0m\a\b\t\v\f",
	"NON_UTF8":    "\xff\xfe\x80 caf\xc3\xa9 \xc3",
	"DASH":        "-n -e --",
	"GLOB":        "* ? [a-z] ~ {a,b}",
	"UNICODE":     "日本語 🚀",
	"PERCENT_ESC": "%s %d %% \\n",
}

func trickyJob(dir string) Job {
	j := Job{
		BuildsDir:  filepath.Join(dir, "builds"),
		ProjectDir: filepath.Join(dir, "builds", "group", "project"),
		RemoteURL:  "https://gitlab-ci-token:secret@gitlab.example.com/group/project.git",
		Hostname:   "executor-host",
		Script:     []string{"echo one", "echo 'two'"},
	}
	for _, k := range sortedKeys(trickyValues) {
		j.Variables = append(j.Variables, Variable{Key: k, Value: trickyValues[k], Public: true})
		j.Variables = append(j.Variables, Variable{Key: "FILE_" + k, Value: trickyValues[k], File: true})
	}
	j.Variables = append(j.Variables, Variable{Key: "GIT_STRATEGY", Value: "none"})
	return j
}

func sortedKeys(m map[string]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	// A stable order keeps the golden files stable.
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

func TestShellEscape(t *testing.T) {
	tests := []struct{ in, want, posix string }{
		{"", "''", "''"},
		{"plain", "plain", "plain"},
		{"a b", "$'a b'", `"a b"`},
		{"it's", `$'it\'s'`, "it's"},
		{"$HOME", "$'$HOME'", `"\$HOME"`},
		{"a\nb", `$'a\nb'`, "a\nb"},
		{`back\slash`, `$'back\\slash'`, `"back\\slash"`},
		{"\x1b[32;1m", `$'\x1b[32;1m'`, "\"\x1b[32;1m\""},
		{"\xff", `$'\xff'`, "\xff"},
		{"é", `$'\xc3\xa9'`, "é"},
		{"`x`", "$'`x`'", "\"\\`x\\`\""},
	}
	for _, tc := range tests {
		if got := ShellEscape(tc.in); got != tc.want {
			t.Errorf("ShellEscape(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := PosixShellEscape(tc.in); got != tc.posix {
			t.Errorf("PosixShellEscape(%q) = %q, want %q", tc.in, got, tc.posix)
		}
	}
}

// TestShellEscapeRoundTrip feeds every byte value through bash.
func TestShellEscapeRoundTrip(t *testing.T) {
	var all []byte
	for c := 1; c < 256; c++ {
		all = append(all, byte(c))
	}
	for _, in := range []string{string(all), "\xff\xfe", "'", `\'`, "$'x'"} {
		out, err := exec.Command("bash", "-c", "printf '%s' "+ShellEscape(in)).Output()
		if err != nil {
			t.Fatalf("bash: %v", err)
		}
		if string(out) != in {
			t.Errorf("round trip of %q gave %q", in, out)
		}
	}
}

func TestGolden(t *testing.T) {
	dir := "/builds-root" // fixed, so golden files do not depend on t.TempDir
	withFlags := func(j Job, flags ...string) Job {
		for _, f := range flags {
			k, v, _ := strings.Cut(f, "=")
			j.Variables = append(j.Variables, Variable{Key: k, Value: v})
		}
		return j
	}
	chat := Job{
		BuildsDir:  "/var/lib/chatops/builds/4242",
		ProjectDir: "/var/lib/chatops/builds/4242/ops/infra",
		RemoteURL:  "https://gitlab-ci-token:glcbt-x@gitlab.example.com/ops/infra.git",
		Variables: []Variable{
			{Key: "CI_JOB_TOKEN", Value: "glcbt-jobtoken", Masked: true},
			{Key: "GIT_STRATEGY", Value: "none", Public: true},
			{Key: "CHAT_INPUT", Value: "production v1.4.2\nsecond line", Public: true},
			{Key: "KUBECONFIG", Value: "apiVersion: v1\n", File: true},
		},
		BeforeScript:  []string{"export A=1"},
		Script:        []string{"./bin/deploy \"$CHAT_INPUT\"", "echo first\necho second", "", "   echo trimmed   "},
		AfterScript:   []string{"echo done"},
		TraceSections: true,
	}
	tests := []struct {
		name string
		job  Job
	}{
		{"chat", chat},
		{"tricky", trickyJob(dir)},
		{"flags", withFlags(chat, "FF_SCRIPT_SECTIONS=true", "FF_ENABLE_BASH_EXIT_CODE_CHECK=true",
			"FF_USE_LEGACY_BASH_EVAL=true", "CI_DEBUG_TRACE=true", "FF_ENABLE_JOB_CLEANUP=true")},
		{"posix", withFlags(chat, "FF_POSIXLY_CORRECT_ESCAPES=true")},
		{"empty-tokenless", withFlags(chat, "GIT_STRATEGY=empty", "FF_GIT_URLS_WITHOUT_TOKENS=true")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stages, err := Stages(tc.job)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, s := range stages {
				fmt.Fprintf(&b, "=== %s (run_exec stage %s)\n%s", s.Name, s.Exec, s.Script)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if b.String() != string(want) {
				t.Errorf("output differs from %s (run with -update to accept):\ngot  %q\nwant %q", golden, b.String(), want)
			}
		})
	}
}

func TestStagesSkipping(t *testing.T) {
	j := Job{ProjectDir: "/b/p", BuildsDir: "/b", Variables: []Variable{{Key: "GIT_STRATEGY", Value: "none"}}}
	names := func(j Job) []string {
		s, err := Stages(j)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, st := range s {
			out = append(out, st.Exec)
		}
		return out
	}
	if got := fmt.Sprint(names(j)); got != "[prepare_script get_sources cleanup_file_variables]" {
		t.Errorf("no steps: %s", got)
	}
	j.Script = []string{"true"}
	j.AfterScript = []string{}
	if got := fmt.Sprint(names(j)); got != "[prepare_script get_sources build_script cleanup_file_variables]" {
		t.Errorf("no after_script: %s", got)
	}
	j.Variables = nil
	if _, err := Stages(j); !errors.Is(err, ErrUnsupportedGitStrategy) {
		t.Errorf("default clone strategy: err %v", err)
	}
}

// runStage writes and runs one stage script as a custom executor would,
// returning stdout+stderr and the exit code.
func runStage(t *testing.T, dir string, s Stage) (string, int) {
	t.Helper()
	file := filepath.Join(dir, "script-"+s.Exec)
	if err := os.WriteFile(file, []byte(s.Script), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", file)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

func stageByName(t *testing.T, stages []Stage, name string) Stage {
	t.Helper()
	for _, s := range stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stage %s", name)
	return Stage{}
}

func TestExecuteVariablesByteExact(t *testing.T) {
	dir := t.TempDir()
	j := trickyJob(dir)
	outDir := filepath.Join(dir, "out")
	j.Script = []string{"mkdir -p " + outDir}
	for k := range trickyValues {
		j.Script = append(j.Script,
			fmt.Sprintf(`printf '%%s' "$%s" > %s/%s`, k, outDir, k),
			fmt.Sprintf(`cp "$FILE_%s" %s/FILE_%s`, k, outDir, k))
	}
	stages, err := Stages(j)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{StagePrepare, StageGetSources, StageUserScript} {
		out, code := runStage(t, dir, stageByName(t, stages, name))
		if code != 0 {
			t.Fatalf("%s exited %d:\n%s", name, code, out)
		}
	}
	for k, want := range trickyValues {
		for _, name := range []string{k, "FILE_" + k} {
			got, err := os.ReadFile(filepath.Join(outDir, name))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
	}
	for _, p := range []string{"pwned", "pwned2"} {
		if _, err := os.Stat(filepath.Join(j.ProjectDir, p)); err == nil {
			t.Errorf("a variable value was executed (%s exists)", p)
		}
	}
	// cleanup_file_variables removes the file variables again.
	if out, code := runStage(t, dir, stageByName(t, stages, StageCleanup)); code != 0 {
		t.Fatalf("cleanup exited %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(j.ProjectDir+".tmp", "FILE_QUOTES")); !os.IsNotExist(err) {
		t.Errorf("file variable not removed: %v", err)
	}
}

func TestExecuteScriptBehaviour(t *testing.T) {
	tests := []struct {
		name     string
		script   []string
		wantCode int
		wantOut  []string
		notOut   []string
	}{
		{
			name:     "echo lines and success",
			script:   []string{"echo hello", `echo "$CHAT_INPUT"`},
			wantOut:  []string{"\x1b[32;1m$ echo hello\x1b[0;m\nhello\n", "\x1b[32;1m$ echo \"$CHAT_INPUT\"\x1b[0;m\nrun it\n"},
			wantCode: 0,
		},
		{
			name:     "first failure ends the script with its code",
			script:   []string{"echo before", "(exit 42)", "echo after"},
			wantOut:  []string{"before\n", "\x1b[32;1m$ (exit 42)\x1b[0;m\n"},
			notOut:   []string{"after\n"},
			wantCode: 42,
		},
		{
			name:     "pipefail",
			script:   []string{"false | true", "echo after"},
			notOut:   []string{"after\n"},
			wantCode: 1,
		},
		{
			name:     "multi-line command is echoed collapsed",
			script:   []string{"echo a\necho b"},
			wantOut:  []string{"\x1b[32;1m$ echo a # collapsed multi-line command\x1b[0;m\na\nb\n"},
			wantCode: 0,
		},
		{
			name:     "stdin is closed",
			script:   []string{"cat", "echo read-nothing"},
			wantOut:  []string{"read-nothing\n"},
			wantCode: 0,
		},
		{
			name:     "before_script runs first in the same shell",
			script:   []string{`echo "A=$A"`},
			wantOut:  []string{"A=1\n"},
			wantCode: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j := Job{
				BuildsDir:    filepath.Join(dir, "b"),
				ProjectDir:   filepath.Join(dir, "b", "p"),
				Variables:    []Variable{{Key: "GIT_STRATEGY", Value: "none"}, {Key: "CHAT_INPUT", Value: "run it"}},
				BeforeScript: []string{"export A=1"},
				Script:       tc.script,
			}
			if err := os.MkdirAll(j.ProjectDir, 0o755); err != nil {
				t.Fatal(err)
			}
			s, err := Generate(j, StageUserScript)
			if err != nil {
				t.Fatal(err)
			}
			out, code := runStage(t, dir, Stage{Name: StageUserScript, Exec: "build_script", Script: s})
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tc.wantCode, out)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%q", w, out)
				}
			}
			for _, w := range tc.notOut {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%q", w, out)
				}
			}
		})
	}
}

// TestExecuteJobFlow runs every stage the way the runner sequences them for
// a failing job: the script fails, after_script still runs in its own
// process (seeing GITLAB_ENV additions and CI_JOB_STATUS), cleanup last.
func TestExecuteJobFlow(t *testing.T) {
	dir := t.TempDir()
	j := Job{
		BuildsDir:  filepath.Join(dir, "b"),
		ProjectDir: filepath.Join(dir, "b", "ops", "infra"),
		Variables: []Variable{
			{Key: "GIT_STRATEGY", Value: "none"},
			{Key: "CI_JOB_STATUS", Value: "running"},
			{Key: "SECRET_FILE", Value: "s3cr3t", File: true},
		},
		Script:      []string{`echo "FROM_SCRIPT=yes" >> "$GITLAB_ENV"`, "pwd", "exit 3"},
		AfterScript: []string{`echo "after: $CI_JOB_STATUS $FROM_SCRIPT $(cat "$SECRET_FILE")"`},
	}
	stages, err := Stages(j)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"prepare_script", "get_sources", "build_script", "after_script", "cleanup_file_variables"}
	var got []string
	for _, s := range stages {
		got = append(got, s.Exec)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stages %v, want %v", got, want)
	}

	out, code := runStage(t, dir, stages[0])
	if code != 0 || !strings.Contains(out, "Running on ") || !strings.Contains(out, "...\n") {
		t.Fatalf("prepare: %d %q", code, out)
	}
	if out, code = runStage(t, dir, stages[1]); code != 0 || !strings.Contains(out, "Skipping Git repository setup") {
		t.Fatalf("get_sources: %d %q", code, out)
	}
	if fi, err := os.Stat(j.ProjectDir); err != nil || !fi.IsDir() {
		t.Fatalf("get_sources did not create the project dir: %v", err)
	}
	out, code = runStage(t, dir, stages[2])
	if code != 3 || !strings.Contains(out, j.ProjectDir+"\n") {
		t.Fatalf("build_script: %d %q", code, out)
	}

	// The runner regenerates after_script once it knows the job failed.
	j.Variables[1].Value = "failed"
	after, err := Generate(j, StageAfterScript)
	if err != nil {
		t.Fatal(err)
	}
	out, code = runStage(t, dir, Stage{Exec: "after_script", Script: after})
	if code != 0 || !strings.Contains(out, "Running after script...") || !strings.Contains(out, "after: failed yes s3cr3t\n") {
		t.Fatalf("after_script: %d %q", code, out)
	}
	if out, code = runStage(t, dir, stages[4]); code != 0 {
		t.Fatalf("cleanup: %d %q", code, out)
	}
	for _, f := range []string{"SECRET_FILE", "gitlab_runner_env"} {
		if _, err := os.Stat(filepath.Join(j.ProjectDir+".tmp", f)); !os.IsNotExist(err) {
			t.Errorf("%s survived cleanup: %v", f, err)
		}
	}
}

func TestExecuteTermEndsScriptCleanly(t *testing.T) {
	dir := t.TempDir()
	j := Job{
		BuildsDir: filepath.Join(dir, "b"), ProjectDir: dir,
		Variables: []Variable{{Key: "GIT_STRATEGY", Value: "none"}},
		Script:    []string{"echo started", "sleep 30", "echo not reached"},
	}
	s, err := Generate(j, StageUserScript)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "script")
	if err := os.WriteFile(file, []byte(s), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", file)
	// The runner signals the executor's whole process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "started\n") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("want exit 1 after TERM (trap 'exit 1' TERM), got %v", err)
	}
	if strings.Contains(out.String(), "not reached") || strings.Contains(out.String(), "sleep 30\n") && strings.Contains(out.String(), "Terminated") {
		t.Errorf("output after TERM: %q", out.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
