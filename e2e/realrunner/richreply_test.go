package realrunner

import (
	"strings"
	"testing"
)

// Under the real gitlab-runner the job's script sees CHATOPS_REPLY_DIR (the runner's
// generated script keeps the executor's environment), the job log previews the reply,
// and the reply carries message.md, the blocks and the file.
func TestRichReplyUnderTheRealRunner(t *testing.T) {
	r := newRig(t, rigOptions{})
	j, final := r.run(chatJob(t, jobSpec{id: 520,
		script: []string{
			"echo the captured output",
			`echo '*answered* from message.md' > "$CHATOPS_REPLY_DIR/message.md"`,
			`echo '[{"type":"section","fields":[{"type":"mrkdwn","text":"*host*"},{"type":"plain_text","text":"web1"}]}]' > "$CHATOPS_REPLY_DIR/blocks.json"`,
			`printf 'a,b\n1,%s\n' "$CI_JOB_TOKEN" > "$CHATOPS_REPLY_DIR/data.csv"`,
		},
	}))
	assertFinal(t, final, "success", "", 0)
	if !strings.Contains(j.Log(), "reply directory: blocks.json is valid Block Kit") {
		t.Errorf("GitLab's job log lacks the reply directory's preview:\n%s", j.Log())
	}
	start := channel(t, r.slack, 1)[0]
	thread := r.slack.Thread(start.Channel, start.TS)
	if len(thread) != 2 {
		t.Fatalf("thread: %d replies:\n%s", len(thread), r.slack)
	}
	if thread[0].Text != "*answered* from message.md" || !strings.Contains(thread[0].Blocks, `"web1"`) {
		t.Errorf("answer: %q %s", thread[0].Text, thread[0].Blocks)
	}
	if len(thread[1].Files) != 1 || string(thread[1].Files[0].Content) != "a,b\n1,[MASKED]\n" {
		t.Errorf("file: %+v", thread[1].Files)
	}
	r.assertClean(520)
}
