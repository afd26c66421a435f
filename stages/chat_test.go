package stages

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/job"
)

func TestJobURLIgnoresJobVariableWhenGitLabKnown(t *testing.T) {
	f := newFixture(t, func(r *job.Response) {
		for i := range r.Variables {
			if r.Variables[i].Key == "CI_JOB_URL" {
				r.Variables[i].Value = "https://phish.example/login"
			}
		}
	})
	j, err := f.stages.loadJob()
	if err != nil {
		t.Fatal(err)
	}
	if got := f.stages.jobURL(j); got != "https://phish.example/login" {
		t.Errorf("without gitlab.url: %q", got)
	}
	f.stages.Cfg.GitLab.URL = "https://gitlab.example.com/"
	if got := f.stages.jobURL(j); got != "https://gitlab.example.com/ops/infra/-/jobs/4242" {
		t.Errorf("with gitlab.url: %q", got)
	}
}

func TestWantsOutput(t *testing.T) {
	f := newFixture(t, nil) // CI_PIPELINE_CREATED_AT is 2026-11-24T14:00:01Z
	j, _ := f.stages.loadJob()
	created := time.Date(2026, 11, 24, 14, 0, 1, 0, time.UTC)
	f.stages.Cfg.Slack.Reply = "after-window"
	for _, tt := range []struct {
		end  time.Duration
		want bool
	}{{10 * time.Minute, false}, {29 * time.Minute, false}, {31 * time.Minute, true}, {5 * time.Hour, true}} {
		f.stages.Now = func() time.Time { return created.Add(tt.end) }
		if got := f.stages.wantsOutput(j); got != tt.want {
			t.Errorf("after-window, job ends %v after creation: %v", tt.end, got)
		}
	}
	f.stages.Cfg.Slack.Reply = "never"
	if f.stages.wantsOutput(j) {
		t.Error("never")
	}
	f.stages.Cfg.Slack.Reply = "always"
	f.stages.Now = func() time.Time { return created }
	if !f.stages.wantsOutput(j) {
		t.Error("always")
	}
}

// Where the spool leaves bytes out, the lines on both sides of the gap are dropped whole:
// a secret cut in half would no longer match its mask.
func TestCopySpoolDropsCutLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	sp, err := openSpool(path, 40, 40)
	if err != nil {
		t.Fatal(err)
	}
	input := "first line\nsecond dt-0123456789abcdef-secret\n" + strings.Repeat("middle\n", 20) + "tail dt-0123456789abcdef-secret x\nlast line\n"
	if _, err := sp.Write([]byte(input)); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := readBack(t, path)
	got := out.String()
	if strings.Contains(got, "dt-01") || strings.Contains(got, "secret") {
		t.Errorf("part of a cut line survived: %q", got)
	}
	if !strings.HasPrefix(got, "first line\n\n[… ") || !strings.HasSuffix(got, "bytes of output left out …]\nlast line\n") {
		t.Errorf("got %q", got)
	}
}

func TestLastLine(t *testing.T) {
	var l lastLine
	for _, chunk := range []string{"one\ntw", "o\n\n   \nthr", "ee"} {
		l.Write([]byte(chunk))
	}
	if got := l.get(); got != "two" {
		t.Errorf("last complete line = %q, want two", got)
	}
	l.Write([]byte(strings.Repeat("x", 5000) + "\n"))
	if got := l.get(); len(got) != lastLineMax {
		t.Errorf("long line kept %d bytes, want %d", len(got), lastLineMax)
	}
}

func TestReplyOffWithoutToken(t *testing.T) {
	f := newFixture(t, nil)
	delete(f.env, "SLACK_BOT_TOKEN")
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.stderr.String(), "chat replies are off: no slack.token_file or SLACK_BOT_TOKEN") {
		t.Errorf("prepare did not say replies are off: %q", f.stderr)
	}
	if n := len(f.slack.Calls("*")); n != 0 {
		t.Errorf("%d calls to Slack without a token", n)
	}
}

// A stage must end when its script ends, not when a slow Slack answers a progress edit.
func TestSlowProgressEditDoesNotHoldTheStage(t *testing.T) {
	f := newFixture(t, nil)
	f.stages.Cfg.Slack.ProgressInterval = config.Duration(50 * time.Millisecond)
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.slack.FailAlways("chat.update", slacktest.Slow(time.Minute))
	done := make(chan error, 1)
	go func() { done <- f.stages.Run(context.Background(), f.script("sleep 0.3"), "build_script") }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run waited for a slow progress edit")
	}
	if len(f.slack.Calls("chat.update")) == 0 {
		t.Error("no progress edit was attempted")
	}
}

// Issue 9: the progress edit cut the raw last line at lastLineMax bytes before cleaning and
// masking, so after 1000 bytes of colour codes most of a secret reached Slack.
func TestProgressMasksBeforeTheCut(t *testing.T) {
	const secret = "Zq7Xv9Kp2Lm4Nb8Rt6Wy3Hs5Jd"
	f := newFixture(t, func(r *job.Response) {
		r.Variables = append(r.Variables, job.Variable{Key: "DEPLOY_KEY", Value: secret, Masked: true})
	})
	f.stages.Cfg.Slack.ProgressInterval = config.Duration(50 * time.Millisecond)
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	body := `for i in $(seq 250); do printf '\033[0m'; done; echo "deploying $DEPLOY_KEY now"; sleep 1`
	f.env["CUSTOM_ENV_DEPLOY_KEY"] = secret
	if err := f.stages.Run(context.Background(), f.script("DEPLOY_KEY="+secret+"\n"+body), "build_script"); err != nil {
		t.Fatal(err)
	}
	updates := f.slack.Calls("chat.update")
	if len(updates) == 0 {
		t.Fatal("no progress edit")
	}
	sawLine := false
	for _, c := range updates {
		text := c.Params["text"]
		for i := 0; i+4 <= len(secret); i++ {
			if strings.Contains(text, secret[i:i+4]) {
				t.Fatalf("part %q of the secret reached Slack: %q", secret[i:i+4], text)
			}
		}
		sawLine = sawLine || strings.Contains(text, "deploying")
	}
	if !sawLine {
		t.Errorf("no progress edit showed the line: %q", updates[len(updates)-1].Params["text"])
	}
}
