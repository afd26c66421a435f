package main

import (
	"os"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/delivery"
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
	// A host whose token file is not written yet: nothing to deliver is no failure (the
	// package's timer runs flush from the start).
	noToken := writeFile(t, dir, "notoken.toml", "[executor]\nbuilds_dir = \""+dir+"/builds\"\ncache_dir = \""+dir+"/cache\"\nstate_dir = \""+dir+"/state\"\n[slack]\ntoken_file = \""+dir+"/slack-token\"\n", 0o600)
	if code, stdout, stderr := runCmd(t, env{}, "--config", noToken, "flush"); code != 0 || !strings.Contains(stdout, "outbox is empty") {
		t.Errorf("no token file, empty outbox: exit %d\n%s%s", code, stdout, stderr)
	}
	// …but with a reply waiting, the missing token is the failure it is.
	j, err := delivery.Open(dir+"/state", nil, delivery.Options{}).Job("77")
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Enqueue(delivery.Message{Kind: delivery.KindPost, Channel: "C1", Text: "waiting"}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if code, _, stderr := runCmd(t, env{}, "--config", noToken, "flush"); code != 1 || !strings.Contains(stderr, "flush: slack token: secret file "+dir+"/slack-token") {
		t.Errorf("no token file, a reply waiting: exit %d %q", code, stderr)
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
