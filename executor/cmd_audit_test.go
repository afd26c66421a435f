package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/audit"
	"github.com/chatops-executor/chatops-executor/replies"
)

func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := validConfig(t, dir)
	path := filepath.Join(dir, "state", "audit.jsonl") // the default policy.audit_log
	l := &audit.Log{Path: path, Host: "runner-7"}
	for i := range 4 {
		if err := l.Append(audit.Record{JobID: int64(i), Decision: "allow"}, replies.Secrets{}); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := runCmd(t, env{}, "--config", cfg, "audit", "verify")
	if code != 0 || !strings.Contains(stdout, "audit chain holds: 4 records in 1 file(s), from record 1 to record 4, host runner-7") {
		t.Fatalf("intact log: exit %d\n%s%s", code, stdout, stderr)
	}
	// Rotated: the files are given oldest first, no config needed.
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(audit.Record{JobID: 9, Decision: "deny"}, replies.Secrets{}); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCmd(t, env{}, "audit", "verify", rotated, path); code != 0 || !strings.Contains(stdout, "5 records in 2 file(s)") {
		t.Errorf("rotated pair: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ := runCmd(t, env{}, "audit", "verify", path); code != 0 || !strings.Contains(stdout, "from record 5 (older files not given") {
		t.Errorf("live log alone: exit %d\n%s", code, stdout)
	}
	// Swap two lines of the rotated file.
	data, _ := os.ReadFile(rotated)
	ls := strings.SplitAfter(string(data), "\n")
	ls[1], ls[2] = ls[2], ls[1]
	if err := os.WriteFile(rotated, []byte(strings.Join(ls, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCmd(t, env{}, "audit", "verify", rotated, path)
	if want := fmt.Sprintf("audit log tampered with: %s:2: record 3 is out of order", rotated); code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("swapped lines: exit %d %q, want %q", code, stderr, want)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"audit"}, 2, "audit needs a subcommand"},
		{[]string{"audit", "check"}, 2, `unknown audit subcommand "check"`},
		{[]string{"audit", "verify", "--all"}, 2, "flag provided but not defined: -all"},
		{[]string{"audit", "verify", filepath.Join(dir, "nope")}, 1, "no such file"},
	} {
		code, _, stderr := runCmd(t, env{}, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%q: exit %d %q, want %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
	if code, stdout, _ := runCmd(t, env{}, "audit", "verify", "--help"); code != 0 || !strings.Contains(stdout, "oldest first") {
		t.Errorf("help: %d %q", code, stdout)
	}
}
