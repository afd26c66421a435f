package main

import (
	"os"
	"strings"
	"testing"
)

func TestFlushCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := validConfig(t, dir)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"flush", "--discard"}, 2, "--discard needs --job"},
		{[]string{"flush", "--budget", "0s"}, 2, "--budget must be positive"},
		{[]string{"flush", "extra"}, 2, "flush takes no arguments"},
	} {
		code, _, stderr := runCmd(t, env{}, append([]string{"--config", cfg}, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%q: exit %d stderr %q, want %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
	// An empty outbox: nothing to do, success, with or without a token.
	for _, e := range []env{{}, {"SLACK_BOT_TOKEN": "xoxb-1"}} {
		if code, stdout, stderr := runCmd(t, e, "--config", cfg, "flush"); code != 0 {
			t.Errorf("empty outbox: exit %d\n%s%s", code, stdout, stderr)
		}
	}
	if code, _, stderr := runCmd(t, env{}, "--config", dir+"/missing.toml", "flush"); code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing config: exit %d %q", code, stderr)
	}
}

// An unreadable queue file is listed by --status (exit 1), with where it is and what to do.
func TestFlushStatusListsQuarantinedFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := validConfig(t, dir)
	job := dir + "/state/outbox/77"
	if err := os.MkdirAll(job, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, job, "op-000001.json", "", 0o600)
	code, stdout, stderr := runCmd(t, env{}, "--config", cfg, "flush", "--status")
	for _, want := range []string{"job 77: 1 unreadable file set aside", "set aside op-000001.json: the file is empty", "quarantine", "flush --discard --job 77"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("flush --status lacks %q:\n%s%s", want, stdout, stderr)
		}
	}
	if code != 1 {
		t.Errorf("exit %d, want 1: a quarantined file needs an admin", code)
	}
}
