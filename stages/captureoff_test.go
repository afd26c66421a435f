package stages

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/job"
)

// spoolsOf lists the reply spool files a job's state holds.
func spoolsOf(t *testing.T, f *fixture) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(f.state().Dir, "reply-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Output nothing will read is not captured: the job writes straight to the runner.
func TestNoCaptureWhenNothingReadsIt(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(*job.Response)
		setup  func(f *fixture)
	}{
		{"no token", nil, func(f *fixture) { delete(f.env, "SLACK_BOT_TOKEN") }},
		{"invalid channel", func(r *job.Response) {
			for i := range r.Variables {
				if r.Variables[i].Key == "CHAT_CHANNEL" {
					r.Variables[i].Value = "#general"
				}
			}
		}, nil},
		{"reply never, no ack", nil, func(f *fixture) {
			f.stages.Cfg.Slack.Reply, f.stages.Cfg.Slack.Ack = "never", false
		}},
		{"reply never, no progress", nil, func(f *fixture) {
			f.stages.Cfg.Slack.Reply, f.stages.Cfg.Slack.ProgressInterval = "never", 0
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.mutate)
			if tt.setup != nil {
				tt.setup(f)
			}
			if err := f.stages.Prepare(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := f.stages.Run(context.Background(), f.script("echo to-stdout; echo to-stderr >&2"), "build_script"); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(f.stdout.String(), "to-stdout") || !strings.Contains(f.stderr.String(), "to-stderr") {
				t.Errorf("the runner got stdout %q, stderr %q", f.stdout, f.stderr)
			}
			if s := spoolsOf(t, f); len(s) != 0 {
				t.Errorf("captured with nothing to read it: %v", s)
			}
		})
	}
}

// With replies on, the user script is captured as before: both streams, merged, to stdout.
func TestCaptureWhenRepliesOn(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.stages.Run(context.Background(), f.script("echo to-stdout; echo to-stderr >&2"), "build_script"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(f.state().Dir, outputSpool+".head"))
	if err != nil || string(data) != "to-stdout\nto-stderr\n" {
		t.Errorf("captured %q (%v)", data, err)
	}
	if out := f.stdout.String(); !strings.Contains(out, "to-stdout\nto-stderr\n") {
		t.Errorf("runner got %q", out)
	}
}

// reply = "never" with progress edits on captures the last line only: no spools.
func TestProgressOnlyCapture(t *testing.T) {
	f := newFixture(t, nil)
	f.stages.Cfg.Slack.Reply = "never"
	f.stages.Cfg.Slack.ProgressInterval = config.Duration(50 * time.Millisecond)
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.stages.Run(context.Background(), f.script("echo step-one-done; sleep 2"), "build_script"); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range f.slack.Calls("chat.update") {
		found = found || strings.Contains(c.Params["text"], "step-one-done")
	}
	if !found {
		t.Errorf("no progress edit showed the last line; edits: %v", f.slack.Calls("chat.update"))
	}
	if s := spoolsOf(t, f); len(s) != 0 {
		t.Errorf("reply never: spooled %v", s)
	}
}
