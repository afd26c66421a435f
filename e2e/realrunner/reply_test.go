package realrunner

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChatReplyJob(t *testing.T) {
	r := newRig(t, rigOptions{})
	j, final := r.run(chatJob(t, jobSpec{id: 500,
		script: []string{
			"echo preparing the answer",
			chatReply(`\033[1;32mall green\033[0m <ok> & done`),
			`env | grep -c SLACK_BOT_TOKEN || true`,
		},
		afterScript: []string{`echo "after: $CI_JOB_STATUS"`},
	}))
	assertFinal(t, final, "success", "", 0)
	log := j.Log()
	for _, want := range []string{"preparing the answer\n", "\x1b[1;32mall green\x1b[0m <ok> & done\n", "\n0\n", "after: success\n",
		"Using Custom executor with driver chatops-executor", "Preparing chat job 500 (deploy)", "Job succeeded"} {
		if !strings.Contains(log, want) {
			t.Errorf("GitLab's job log lacks %q", want)
		}
	}
	if got := j.Verifications(); len(got) == 0 || got[0] != jobToken(500) {
		t.Errorf("GET /api/v4/job was asked with tokens %q, want the job's own", got)
	}
	// The policy allowed alice because GitLab said so while the job ran.
	audit := readAudit(t, filepath.Join(r.dir, "audit.jsonl"))
	if len(audit) != 1 || audit[0]["verified"] != true || audit[0]["decision"] != "allow" || audit[0]["rule"] != "alice-runs-chat-jobs" {
		t.Errorf("audit = %v", audit)
	}
	start := channel(t, r.slack, 1)[0]
	if !strings.HasPrefix(start.Text, ":white_check_mark: <@U0123ABCD> *deploy* in ops/infra succeeded after ") {
		t.Errorf("final status = %q", start.Text)
	}
	if got, want := reply(t, r.slack, start).Text, "```\nall green &lt;ok&gt; &amp; done\n```"; got != want {
		t.Errorf("reply = %q, want %q", got, want)
	}
	r.assertClean(500)
}

// Without a chat_reply section the reply is the user script's output, without the
// runner's "$ command" echo lines and its build_script WARNING, which the real runner
// does print into the step_script section.
func TestFallbackReply(t *testing.T) {
	r := newRig(t, rigOptions{})
	j, final := r.run(chatJob(t, jobSpec{id: 501,
		script: []string{"echo first line", "printf 'second\\n\\033[31mred\\033[0m\\n'"}}))
	assertFinal(t, final, "success", "", 0)
	if !strings.Contains(j.Log(), "WARNING: Starting with version 17.0 the 'build_script' stage will be replaced with 'step_script'") {
		t.Errorf("the real runner no longer prints the build_script WARNING; the fallback's reason to drop it is gone:\n%s", j.Log())
	}
	start := channel(t, r.slack, 1)[0]
	if got, want := reply(t, r.slack, start).Text, "```\nfirst line\nsecond\nred\n```"; got != want {
		t.Errorf("fallback reply = %q, want %q", got, want)
	}
}

func readAudit(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
