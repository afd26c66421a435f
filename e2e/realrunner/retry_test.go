package realrunner

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wrapper writes a prepare_exec that runs body (bash, with $EXECUTOR the real executor and
// $ATTEMPTS a directory for counting calls) around the executor's prepare.
func wrapper(t *testing.T, dir, body string) string {
	t.Helper()
	attempts := filepath.Join(dir, "attempts")
	if err := os.MkdirAll(attempts, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "prepare-wrapper")
	script := fmt.Sprintf("#!/usr/bin/env bash\nEXECUTOR=%q\nATTEMPTS=%q\nn=$(ls \"$ATTEMPTS\" | wc -l); touch \"$ATTEMPTS/$((n+1))\"\n%s\n",
		executorBin, attempts, body)
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// The first prepare fails as a system failure before the executor runs (a host briefly
// out of resources): the runner cleans up, waits 3 s and prepares again. The job runs once,
// and chat hears of it once.
func TestPrepareRetriedAfterSystemFailure(t *testing.T) {
	dir := t.TempDir()
	prep := wrapper(t, dir, `if [ "$n" = 0 ]; then echo "transient failure" >&2; exit "$SYSTEM_FAILURE_EXIT_CODE"; fi
exec "$EXECUTOR" "$@"`)
	r := newRig(t, rigOptions{prepareExec: prep})
	j, final := r.run(chatJob(t, jobSpec{id: 580, script: []string{chatReply("the answer")}}))
	assertFinal(t, final, "success", "", 0)
	log := j.Log()
	if !strings.Contains(log, "transient failure") || !strings.Contains(log, "Will be retried in 3s") {
		t.Errorf("GitLab's log does not show the retry:\n%s", log)
	}
	start := channel(t, r.slack, 1)[0]
	if !strings.HasPrefix(start.Text, ":white_check_mark:") || reply(t, r.slack, start).Text != "```\nthe answer\n```" {
		t.Errorf("Slack:\n%s", r.slack)
	}
	r.assertClean(580)
}

// The first prepare did all its work (decision, start message) and then died by SIGKILL
// before it could exit: the runner retries. GitLab sees one job that succeeded; chat must
// show one job that succeeded.
func TestPrepareKilledAfterItsWorkIsRetried(t *testing.T) {
	dir := t.TempDir()
	prep := wrapper(t, dir, `"$EXECUTOR" "$@" || exit
if [ "$n" = 0 ]; then kill -KILL $$; fi`)
	r := newRig(t, rigOptions{prepareExec: prep})
	j, final := r.run(chatJob(t, jobSpec{id: 581, script: []string{chatReply("the answer")}}))
	assertFinal(t, final, "success", "", 0)
	if !strings.Contains(j.Log(), "Will be retried in 3s") {
		t.Errorf("GitLab's log does not show the retry:\n%s", j.Log())
	}
	r.assertClean(581)
	top := r.slack.Channel("C0123ABCD")
	var starts []string
	for _, m := range top {
		if m.ThreadTS == "" || m.ThreadTS == m.TS {
			starts = append(starts, m.Text)
		}
	}
	if len(starts) != 1 || !strings.HasPrefix(starts[0], ":white_check_mark:") {
		t.Errorf("a retried prepare shows in chat as %d jobs, want one that succeeded: %q", len(starts), starts)
	}
}

// Every prepare fails as a system failure (the state directory cannot be made): three
// attempts, then runner_system_failure; nothing in chat may claim anything ran.
func TestPrepareSystemFailureExhaustsRetries(t *testing.T) {
	r := newRig(t, rigOptions{})
	// state_dir's parent is a file.
	blocker := filepath.Join(r.dir, "blocker")
	write(t, blocker, "")
	cfg, err := os.ReadFile(r.execConfig)
	if err != nil {
		t.Fatal(err)
	}
	write(t, r.execConfig, strings.Replace(string(cfg), fmt.Sprintf("state_dir = %q", filepath.Join(r.dir, "state")),
		fmt.Sprintf("state_dir = %q", filepath.Join(blocker, "state")), 1))
	j, final := r.run(chatJob(t, jobSpec{id: 582, script: []string{"echo ran"}}))
	assertFinal(t, final, "failed", "runner_system_failure", 0)
	log := j.Log()
	if n := strings.Count(log, "Preparation failed:"); n != 3 {
		t.Errorf("%d failed preparations in GitLab's log, want 3:\n%s", n, log)
	}
	if strings.Contains(log, "\nran\n") {
		t.Error("the script ran")
	}
	for _, m := range r.slack.Messages() {
		if strings.HasPrefix(m.Text, ":white_check_mark:") {
			t.Errorf("chat says %q for a job that never ran", m.Text)
		}
	}
}
