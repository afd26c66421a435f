package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every command answers --help with its usage and flags on stdout and exit 0, and
// `help COMMAND` says the same.
func TestEveryCommandHasHelp(t *testing.T) {
	cmds := []string{"policy explain"}
	for _, c := range commands() {
		if c.name != "policy" {
			cmds = append(cmds, c.name)
		}
	}
	for _, c := range cmds {
		for _, h := range []string{"--help", "-h"} {
			args := append(strings.Fields(c), h)
			code, stdout, stderr := runCmd(t, env{}, args...)
			if code != 0 || stderr != "" {
				t.Errorf("%s %s: exit %d stderr %q", c, h, code, stderr)
			}
			if !strings.HasPrefix(stdout, "usage: chatops-executor "+c) || !strings.Contains(stdout, "--config FILE") {
				t.Errorf("%s %s: stdout %q", c, h, stdout)
			}
			if _, ok := helps[c]; !ok {
				t.Errorf("%s has no help text", c)
			}
		}
		if code, stdout, _ := runCmd(t, env{}, "help", strings.Fields(c)[0]); code != 0 || !strings.HasPrefix(stdout, "usage: chatops-executor "+strings.Fields(c)[0]) {
			t.Errorf("help %s: exit %d %q", c, code, stdout)
		}
	}
}

// flush's help and the README name every flag flush has, each on one line of its own.
func TestFlushHelpListsEveryFlag(t *testing.T) {
	code, stdout, _ := runCmd(t, env{}, "flush", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(stdout, "\n") {
		if m := regexp.MustCompile(`^  --([a-z-]+)`).FindStringSubmatch(line); m != nil {
			got = append(got, m[1])
		}
	}
	want := []string{"budget", "config", "discard", "job", "retry-failed", "status"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("flush --help lists %q, want %q", got, want)
	}
	for _, f := range want {
		if f != "config" && !strings.Contains(string(readme), "flush --"+f) {
			t.Errorf("README does not show flush --%s", f)
		}
	}
}

// --config may follow the command, and --version is the version command.
func TestConfigAfterCommandAndVersionFlag(t *testing.T) {
	dir := t.TempDir()
	good := validConfig(t, dir)
	for _, args := range [][]string{{"check", "--config", good}, {"--config", good, "check"}} {
		code, stdout, stderr := runCmd(t, env{}, args...)
		if code != 0 || !strings.Contains(stdout, "config "+good+" is valid") {
			t.Errorf("%q: exit %d %q %q", args, code, stdout, stderr)
		}
	}
	bad := writeFile(t, dir, "bad.toml", "[executor]\nshel = \"bash\"\n", 0o600)
	if code, _, stderr := runCmd(t, env{}, "config", "--config", bad); code != fallbackSystemFailure || !strings.Contains(stderr, "executor.shel") {
		t.Errorf("config --config bad: exit %d %q", code, stderr)
	}
	code, stdout, _ := runCmd(t, env{}, "--version")
	if code != 0 || !regexp.MustCompile(`^chatops-executor \S+ \(commit \S+, built \S+, go`).MatchString(stdout) {
		t.Errorf("--version: %d %q", code, stdout)
	}
	if code, _, stderr := runCmd(t, env{}, "check", "--nope"); code != 2 || !strings.Contains(stderr, "check --help") {
		t.Errorf("check --nope: %d %q", code, stderr)
	}
}
