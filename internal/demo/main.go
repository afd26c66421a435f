// Command demo runs an example chat job through the runner emulator and the real
// chatops-executor binary, with embedded defaults: no GitLab, no Slack, nothing to set up.
// It is what `make demo` runs until `chatops-executor try` takes its place.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/chatops-executor/chatops-executor/emulator"
)

// script is the example chat job's script: what a job author would put in .gitlab-ci.yml.
var script = []string{
	`echo "Hello <@$CHAT_USER_ID>, you asked for: $CHAT_INPUT"`,
	`echo -e "section_start:$(date +%s):chat_reply\r\033[0K\nHost: $(uname -sr)\nFiles in the build dir: $(ls -A | wc -l)\nsection_end:$(date +%s):chat_reply\r\033[0K"`,
}

// demoConfig is the executor's config for the demo: private temporary directories and a
// policy that lets the example deploy through only from one channel with a version-shaped
// input. There is no GitLab to verify identities with, so no user or group conditions.
const demoConfig = `[executor]
builds_dir = %q
cache_dir = %q
state_dir = %q

[policy]
default = "deny"
audit_log = %q

[[policy.rule]]
name = "deploys-from-ops-channel"
action = "allow"
jobs = ["deploy"]
channels = ["C0123ABCD"]
input = '(staging|production) v[0-9]+\.[0-9]+\.[0-9]+'
`

func main() {
	executor := flag.String("executor", "bin/chatops-executor", "the executor binary")
	job := flag.String("job", "examples/job-response.json", "the job as the runner receives it from GitLab")
	flag.Parse()
	if err := run(*executor, *job); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(executor, jobFile string) error {
	jobResponse, err := os.ReadFile(jobFile)
	if err != nil {
		return fmt.Errorf("job response: %w", err)
	}
	exe, err := filepath.Abs(executor)
	if err != nil {
		return err
	}
	if _, err := os.Stat(exe); err != nil {
		return fmt.Errorf("executor binary: %w (run 'make build' first)", err)
	}
	dir, err := os.MkdirTemp("", "chatops-executor-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	config := filepath.Join(dir, "config.toml")
	audit := filepath.Join(dir, "audit.jsonl")
	toml := fmt.Sprintf(demoConfig, filepath.Join(dir, "builds"), filepath.Join(dir, "cache"), filepath.Join(dir, "state"), audit)
	if err := os.WriteFile(config, []byte(toml), 0o600); err != nil {
		return err
	}
	args := func(stage string) []string { return []string{"--config", config, stage} }
	r := &emulator.Runner{
		Executable: exe, ConfigArgs: args("config"), PrepareArgs: args("prepare"),
		RunArgs: args("run"), CleanupArgs: args("cleanup"),
		Env:     []string{"PATH=" + os.Getenv("PATH")},
		WorkDir: filepath.Join(dir, "runner"),
	}
	if !json.Valid(jobResponse) {
		return fmt.Errorf("job response %s is not valid JSON", jobFile)
	}
	fmt.Printf("== /gitlab ops/infra run deploy production v1.4.2   (emulated gitlab-runner %s)\n\n", emulator.RunnerVersion)
	start := time.Now()
	res, err := r.Run(context.Background(), emulator.Job{Response: jobResponse, Script: script})
	if err != nil {
		return err
	}
	fmt.Println("== job log (as the runner streams it to GitLab):")
	os.Stdout.Write(readable(res.RawTrace))
	fmt.Println("\n== runner log (cleanup's report):")
	os.Stdout.Write(res.RunnerLog)
	if data, err := os.ReadFile(audit); err == nil {
		fmt.Println("\n== audit log:")
		os.Stdout.Write(data)
	}
	fmt.Printf("\n== job %s in %s\n", res.State, time.Since(start).Round(time.Millisecond))
	if res.State != "success" {
		return fmt.Errorf("the demo job failed: %v", res.Err)
	}
	return nil
}

// readable drops the section markers and colour codes the runner puts in the job log,
// which GitLab's web UI renders but a terminal shows as noise.
func readable(trace []byte) []byte {
	markers := regexp.MustCompile(`section_(start|end):[0-9]+:[a-zA-Z0-9_.-]+(\[[^\]]*\])?\r?\x1b\[0K`)
	ansi := regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
	out := markers.ReplaceAll(trace, nil)
	out = ansi.ReplaceAll(out, nil)
	return bytes.ReplaceAll(out, []byte("\r"), nil)
}
