package emulator

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/bashscript"
)

func TestStamper(t *testing.T) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	const h = "2026-01-02T03:04:05.000006Z "
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"lines", []string{"a\nb\n"}, h + "00O a\n" + h + "00O b\n"},
		{"partial then rest", []string{"ab", "c\nd"}, h + "00O abc\n" + h + "00O d\n"},
		{"carriage return flushes and marks continuation", []string{"x\r\x1b[0K", "y\n"}, h + "00O x\r\x1b[0K\n" + h + "00O+y\n"},
		{"section marker then line", []string{"section_start:1:a\r\x1b[0K", "\x1b[0Ktext\n"}, h + "00O section_start:1:a\r\x1b[0K\n" + h + "00O+\x1b[0Ktext\n"},
		{"unterminated line flushed at close", []string{"tail"}, h + "00O tail\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			s := &stamper{id: 0, typ: 'O', now: func() time.Time { return clock }, out: func(p []byte) { out.Write(p) }}
			for _, w := range tc.writes {
				s.write([]byte(w))
			}
			s.close()
			if out.String() != tc.want {
				t.Errorf("got  %q\nwant %q", out.String(), tc.want)
			}
		})
	}
}

func TestMaskingAcrossWrites(t *testing.T) {
	l := &jobLog{now: time.Now}
	l.setSecrets([]string{"s3cr3t-value", " "}, []string{"glpat-"})
	s := l.stream(0, 'O')
	for _, w := range []string{"a s3c", "r3t-va", "lue b glp", "at-ABC", "def c\n"} {
		if _, err := s.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Close()
	if got, want := l.trace.String(), "a [MASKED] b glpat-[MASKED] c\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMapFailureReason(t *testing.T) {
	supported := []string{"script_failure", "runner_system_failure", "job_execution_timeout"}
	tests := map[string]string{
		"":                         ScriptFailure,
		ScriptFailure:              ScriptFailure,
		ConfigurationError:         ScriptFailure,
		JobCanceled:                UnknownFailure,
		"image_pull_failure":       RunnerSystemFailure,
		"something_new_and_unseen": UnknownFailure,
	}
	for in, want := range tests {
		if got := mapFailureReason(in, supported); got != want {
			t.Errorf("map(%q) = %q, want %q", in, got, want)
		}
	}
	if got := mapFailureReason(JobCanceled, append(supported, JobCanceled)); got != JobCanceled {
		t.Errorf("supported reasons pass unchanged, got %q", got)
	}
}

func TestExpand(t *testing.T) {
	vars := []bashscript.Variable{
		{Key: "RUNNER_TEMP_PROJECT_DIR", Value: "/b/p.tmp"},
		{Key: "A", Value: "a"},
		{Key: "F", Value: "content", File: true},
		{Key: "REF", Value: "$A-${A}-$F-$$-$1-$MISSING-$B"},
		{Key: "RAW", Value: "$A", Raw: true},
		{Key: "B", Value: "$A"},
	}
	got := expand(vars)
	if v := value(got, "REF"); v != "a-a-/b/p.tmp/F-$---$A" {
		t.Errorf("REF = %q (one pass only: $B stays unexpanded $A)", v)
	}
	if v := value(got, "RAW"); v != "$A" {
		t.Errorf("RAW = %q", v)
	}
}

// TestFeatureFlagTable guards against drift from the runner's own table
// when its source is in the module cache.
func TestFeatureFlagTable(t *testing.T) {
	dir := runnerSourceDir(t)
	src, err := os.ReadFile(filepath.Join(dir, "helpers", "featureflags", "flags.go"))
	if err != nil {
		t.Skipf("runner source not available: %v", err)
	}
	consts := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(\w+)\s+string = "(FF_\w+)"`).FindAllStringSubmatch(string(src), -1) {
		consts[m[1]] = m[2]
	}
	body := string(src[strings.Index(string(src), "var flags"):])
	body = body[:strings.Index(body, "\n}\n")]
	var want []featureFlag
	for _, block := range strings.Split(body, "\n\t{\n")[1:] {
		name := regexp.MustCompile(`Name:\s*"?(\w+)"?,`).FindStringSubmatch(block)
		def := regexp.MustCompile(`DefaultValue:\s*(true|false)`).FindStringSubmatch(block)
		if name == nil || def == nil {
			t.Fatalf("cannot parse flag block:\n%s", block)
		}
		n := name[1]
		if c, ok := consts[n]; ok {
			n = c
		}
		want = append(want, featureFlag{n, def[1] == "true"})
	}
	if len(want) != len(featureFlags) {
		t.Fatalf("runner has %d flags, emulator %d", len(want), len(featureFlags))
	}
	for i := range want {
		if want[i] != featureFlags[i] {
			t.Errorf("flag %d: runner %v, emulator %v", i, want[i], featureFlags[i])
		}
	}
}

func runnerSourceDir(t *testing.T) string {
	t.Helper()
	info, ok := debug.ReadBuildInfo()
	version := ""
	if ok {
		for _, d := range info.Deps {
			if d.Path == "gitlab.com/gitlab-org/gitlab-runner" {
				version = d.Version
			}
		}
	}
	if version == "" {
		version = "v1.11.1-0.20260903214710-fc1f1862bd91"
	}
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, "go", "pkg", "mod")
	}
	return filepath.Join(cache, "gitlab.com", "gitlab-org", "gitlab-runner@"+version)
}
