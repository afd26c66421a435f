package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/emulator"
)

// The secrets of examples/job-response.json, and a personal access token a job might print.
var jobSecrets = []string{"glcbt-jobtoken-4242-73e062cc48", "dt-0123456789abcdef", "glpat-abcdefghij0123456789"}

// chatReply is the documented way for a job to mark its reply.
func chatReply(body string) string {
	return `echo -e "section_start:$(date +%s):chat_reply\r\033[0K\n` + body + `\nsection_end:$(date +%s):chat_reply\r\033[0K"`
}

// channel returns the messages in the job's channel, failing when there are not n top-level ones.
func channel(t *testing.T, s *slacktest.Server, n int) []slacktest.Message {
	t.Helper()
	var top []slacktest.Message
	for _, m := range s.Channel("C0123ABCD") {
		if m.ThreadTS == "" || m.ThreadTS == m.TS {
			top = append(top, m)
		}
	}
	if len(top) != n {
		t.Fatalf("channel has %d top-level messages, want %d:\n%s", len(top), n, s)
	}
	return top
}

// assertNoSecret checks every byte that reached Slack.
func assertNoSecret(t *testing.T, s *slacktest.Server) {
	t.Helper()
	var all strings.Builder
	for _, c := range s.Calls(slacktest.AnyMethod) {
		for k, v := range c.Params {
			all.WriteString(k + "=" + v + "\n")
		}
	}
	for _, m := range s.Messages() {
		all.WriteString(strings.Join(m.History, "\n"))
		for _, f := range m.Files {
			all.WriteString(f.Title + f.Comment)
			all.Write(f.Content)
		}
	}
	for _, secret := range jobSecrets {
		if strings.Contains(all.String(), secret) {
			t.Errorf("secret %q reached Slack", secret)
		}
	}
}

func TestReplyFromChatReplySection(t *testing.T) {
	h := newHost(t, allowAll)
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 300, nil),
		Script: []string{
			"echo preparing the answer",
			chatReply(`\033[1;32mall green\033[0m <ok> & done\nprogress 10%\rprogress 100%`),
			"echo after the section",
		},
	})
	if res.State != "success" {
		t.Fatalf("state %s\n%s", res.State, res.RawTrace)
	}
	msgs := channel(t, h.slack, 1)
	start := msgs[0]
	if !strings.HasPrefix(start.History[0], ":arrow_forward: <@U0123ABCD> started *deploy* in ops/infra with `production v1.4.2`") {
		t.Errorf("start message = %q", start.History[0])
	}
	if !strings.HasPrefix(start.Text, ":white_check_mark: <@U0123ABCD> *deploy* in ops/infra succeeded after ") ||
		!strings.HasSuffix(start.Text, "<https://gitlab.example.com/ops/infra/-/jobs/4242|job #300>") {
		t.Errorf("final status = %q", start.Text)
	}
	thread := h.slack.Thread("C0123ABCD", start.TS)
	if len(thread) != 1 {
		t.Fatalf("thread has %d replies:\n%s", len(thread), h.slack)
	}
	if want := "```\nall green &lt;ok&gt; &amp; done\nprogress 100%\n```"; thread[0].Text != want {
		t.Errorf("reply = %q, want %q", thread[0].Text, want)
	}
	// The runner's log still has everything, untouched.
	if !strings.Contains(string(res.RawTrace), "\x1b[1;32mall green\x1b[0m <ok> & done\nprogress 10%\rprogress 100%") {
		t.Errorf("job log altered:\n%q", res.RawTrace)
	}
}

func TestReplyFallbackIsScriptOutputWithoutCommands(t *testing.T) {
	h := newHost(t, allowAll)
	h.run(context.Background(), emulator.Job{
		Response: response(t, 301, nil),
		Script:   []string{"echo first line", "printf 'second\\n\\033[31mred\\033[0m\\n'"},
	})
	start := channel(t, h.slack, 1)[0]
	thread := h.slack.Thread("C0123ABCD", start.TS)
	if len(thread) != 1 || thread[0].Text != "```\nfirst line\nsecond\nred\n```" {
		t.Errorf("fallback reply:\n%s", h.slack)
	}
}

func TestReplyFailureShowsLastLines(t *testing.T) {
	h := newHost(t, allowAll)
	h.run(context.Background(), emulator.Job{
		Response: response(t, 302, nil),
		Script:   []string{"for i in $(seq 1 400); do echo line $i; done", "echo 'error: disk full' >&2", "exit 3"},
	})
	start := channel(t, h.slack, 1)[0]
	if !strings.Contains(start.Text, ":x: <@U0123ABCD> *deploy* in ops/infra failed with exit code 3 after") {
		t.Errorf("status = %q", start.Text)
	}
	thread := h.slack.Thread("C0123ABCD", start.TS)
	if len(thread) != 1 || len(thread[0].Files) != 1 {
		t.Fatalf("want one reply with the output attached:\n%s", h.slack)
	}
	text := thread[0].Text
	if !strings.Contains(text, "Last 25 lines") || !strings.Contains(text, "line 400\nerror: disk full\n```") || strings.Contains(text, "line 375\n") {
		t.Errorf("failure preview = %q", text)
	}
	if !bytes.HasPrefix(thread[0].Files[0].Content, []byte("line 1\nline 2\n")) {
		t.Errorf("attached output starts %q", thread[0].Files[0].Content[:20])
	}
}

func TestLargeReplyIsUploadedWhole(t *testing.T) {
	h := newHost(t, allowAll)
	// About 5 MB of numbered lines inside a chat_reply section.
	script := []string{
		`printf 'section_start:%s:chat_reply\r\033[0K\n' "$(date +%s)"`,
		`seq -f 'row %07g of the big report' 1 180000`,
		`printf 'section_end:%s:chat_reply\r\033[0K\n' "$(date +%s)"`,
	}
	h.run(context.Background(), emulator.Job{Response: response(t, 303, nil), Script: script})
	start := channel(t, h.slack, 1)[0]
	thread := h.slack.Thread("C0123ABCD", start.TS)
	if len(thread) != 1 || len(thread[0].Files) != 1 {
		t.Fatalf("want one upload in the thread:\n%s", h.slack)
	}
	content := thread[0].Files[0].Content
	want, _ := exec.Command("seq", "-f", "row %07g of the big report", "1", "180000").Output()
	if !bytes.Equal(content, bytes.TrimRight(want, "\n")) {
		t.Errorf("uploaded %d bytes, want the whole %d-byte report", len(content), len(want))
	}
	preview := thread[0].Text
	if utf8.RuneCountInString(preview) > 3000 || !strings.Contains(preview, "row 0000001 of") || !strings.Contains(preview, "row 0180000 of") || !strings.Contains(preview, "lines omitted") {
		t.Errorf("preview (%d chars) = %q", utf8.RuneCountInString(preview), preview)
	}
}

func TestSecretsNeverReachSlack(t *testing.T) {
	h := newHost(t, allowAll)
	h.run(context.Background(), emulator.Job{
		Response: response(t, 304, map[string]string{"CHAT_INPUT": "deploy with dt-0123456789abcdef"}),
		Script: []string{
			`echo "token: $DEPLOY_TOKEN"`,
			`echo "job token: $CI_JOB_TOKEN"`,
			`printf 'split: dt-01234'; sleep 0.2; printf '56789abcdef\n'`,
			`echo "pat: glpat-abcdefghij0123456789"`,
			chatReply(`deployed with $DEPLOY_TOKEN`),
		},
	})
	start := channel(t, h.slack, 1)[0]
	thread := h.slack.Thread("C0123ABCD", start.TS)
	if len(thread) != 1 || thread[0].Text != "```\ndeployed with [MASKED]\n```" {
		t.Errorf("reply:\n%s", h.slack)
	}
	assertNoSecret(t, h.slack)
}

func TestProgressEditsStartMessage(t *testing.T) {
	h := newHost(t, allowAll+"[slack]\nprogress_interval = \"300ms\"\napi_url = \"PLACEHOLDER\"\n")
	// The host's default slack section was replaced: point it at the fake.
	cfg, _ := os.ReadFile(h.config)
	_ = os.WriteFile(h.config, bytes.Replace(cfg, []byte("PLACEHOLDER"), []byte(h.slack.APIURL()), 1), 0o600)
	h.run(context.Background(), emulator.Job{
		Response: response(t, 305, nil),
		Script:   []string{"for i in 1 2 3 4 5 6 7 8; do echo step $i; sleep 0.25; done"},
	})
	start := channel(t, h.slack, 1)[0]
	var progress []string
	for _, text := range start.History {
		if strings.HasPrefix(text, ":hourglass_flowing_sand:") {
			progress = append(progress, text)
		}
	}
	if len(progress) < 3 {
		t.Fatalf("%d progress edits, want several:\n%q", len(progress), start.History)
	}
	if !strings.Contains(progress[len(progress)-1], "\n> step ") || !strings.Contains(progress[0], "running for") {
		t.Errorf("progress edit = %q", progress[len(progress)-1])
	}
	if !strings.HasPrefix(start.Text, ":white_check_mark:") {
		t.Errorf("final text = %q", start.Text)
	}
}

func TestSlackDownThenFlushDeliversOnce(t *testing.T) {
	h := newHost(t, allowAll)
	h.slack.Down()
	res := h.run(context.Background(), emulator.Job{Response: response(t, 306, nil), Script: []string{chatReply("the answer is 42")}})
	if res.State != "success" {
		t.Fatalf("a dead Slack failed the job: %s %v", res.State, res.Err)
	}
	if !strings.Contains(string(res.RunnerLog), "waiting in the outbox") {
		t.Errorf("runner log does not say what was queued:\n%s", res.RunnerLog)
	}
	h.slack.Up()
	flush := func() (string, error) {
		cmd := exec.Command(binary, "--config", h.config, "flush")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SLACK_BOT_TOKEN=" + slackToken}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Two flushes at once: each message must still arrive exactly once.
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := flush(); err != nil {
				t.Errorf("flush: %v\n%s", err, out)
			}
		}()
	}
	wg.Wait()
	start := channel(t, h.slack, 1)[0]
	thread := h.slack.Thread("C0123ABCD", start.TS)
	if len(thread) != 1 || thread[0].Text != "```\nthe answer is 42\n```" || !strings.HasPrefix(start.Text, ":white_check_mark:") {
		t.Errorf("after flush:\n%s", h.slack)
	}
	if out, err := flush(); err != nil {
		t.Errorf("a third flush with an empty outbox: %v\n%s", err, out)
	}
	if n := len(h.slack.Calls("chat.postMessage")); n != 2 {
		t.Errorf("%d chat.postMessage calls, want 2 (start and reply)", n)
	}
}

func TestCancelledJobReply(t *testing.T) {
	h := newHost(t, allowAll)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.runner.TraceSink = writerFunc(func(p []byte) (int, error) {
		if bytes.Contains(p, []byte("waiting forever")) {
			go cancel()
		}
		return len(p), nil
	})
	h.run(ctx, emulator.Job{Response: response(t, 307, nil), Script: []string{"echo waiting forever", "sleep 300"}})
	start := channel(t, h.slack, 1)[0]
	if !strings.HasPrefix(start.Text, ":no_entry_sign: <@U0123ABCD> *deploy* in ops/infra cancelled after") {
		t.Errorf("status = %q", start.Text)
	}
}

func TestDeniedRequesterToldEphemerally(t *testing.T) {
	h := newHost(t, "[policy]\ndefault = \"deny\"\n")
	h.run(context.Background(), emulator.Job{Response: response(t, 308, nil), Script: []string{"true"}})
	var eph []slacktest.Message
	for _, m := range h.slack.Messages() {
		if m.Ephemeral {
			eph = append(eph, m)
		} else {
			t.Errorf("a denied job posted to the channel: %q", m.Text)
		}
	}
	if len(eph) != 1 || eph[0].User != "U0123ABCD" || !strings.Contains(eph[0].Text, "The runner's policy denied your chat command (rule `default`)") {
		t.Errorf("ephemeral messages:\n%s", h.slack)
	}
}

func TestHugeLineAndInvalidUTF8(t *testing.T) {
	h := newHost(t, allowAll)
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 309, nil),
		Script: []string{
			`printf 'bad \xff\xfe bytes\n'`,
			`head -c 104857600 /dev/zero | tr '\0' 'x'`, // 100 MB, no newline
			`echo; echo the end`,
		},
	})
	if res.State != "success" {
		t.Fatalf("state %s", res.State)
	}
	if n := bytes.Count(res.RawTrace, []byte("x")); n < 100<<20 {
		t.Errorf("the runner got %d of the 100 MiB line", n)
	}
	// The spool keeps the first and last 32 MiB; the line is cut in both, and a line cut
	// in half is dropped (a secret cut in half would escape its mask), so what reaches chat
	// is the text around it and a note of what was left out.
	start := channel(t, h.slack, 1)[0]
	thread := h.slack.Thread("C0123ABCD", start.TS)
	if len(thread) != 1 {
		t.Fatalf("want one reply:\n%s", h.slack)
	}
	for _, m := range append(thread, start) {
		if !utf8.ValidString(m.Text) {
			t.Errorf("invalid UTF-8 reached Slack: %q", m.Text)
		}
	}
	text := thread[0].Text
	if !strings.HasPrefix(text, "```\nbad \uFFFD\uFFFD bytes\n") || !strings.Contains(text, "bytes of output left out") || !strings.HasSuffix(text, "the end\n```") {
		t.Errorf("reply = %q", text)
	}
}

func TestReplyAfterWindowOnly(t *testing.T) {
	h := newHost(t, allowAll+"[slack]\nreply = \"after-window\"\nreply_window = \"1h\"\napi_url = \"PLACEHOLDER\"\n")
	cfg, _ := os.ReadFile(h.config)
	_ = os.WriteFile(h.config, bytes.Replace(cfg, []byte("PLACEHOLDER"), []byte(h.slack.APIURL()), 1), 0o600)
	now := time.Now().UTC()
	// Created just now: GitLab's own reply will come, so ours would be a duplicate.
	h.run(context.Background(), emulator.Job{
		Response: response(t, 310, map[string]string{"CI_PIPELINE_CREATED_AT": now.Format(time.RFC3339)}),
		Script:   []string{"echo short job"},
	})
	start := channel(t, h.slack, 1)[0]
	if th := h.slack.Thread("C0123ABCD", start.TS); len(th) != 0 {
		t.Errorf("posted output inside GitLab's window:\n%s", h.slack)
	}
	// Created two hours ago: GitLab's response URL is dead, we must answer.
	h.run(context.Background(), emulator.Job{
		Response: response(t, 311, map[string]string{"CI_PIPELINE_CREATED_AT": now.Add(-2 * time.Hour).Format(time.RFC3339)}),
		Script:   []string{"echo long job"},
	})
	msgs := channel(t, h.slack, 2)
	if th := h.slack.Thread("C0123ABCD", msgs[1].TS); len(th) != 1 || th[0].Text != "```\nlong job\n```" {
		t.Errorf("no output after the window:\n%s", h.slack)
	}
}

// slackConfig replaces a host's [slack] section, keeping it pointed at the fake.
func slackConfig(t *testing.T, h *host, settings string) {
	t.Helper()
	cfg, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(cfg, []byte("[slack]"))
	if i < 0 {
		t.Fatal("host config has no [slack] section")
	}
	cfg = append(cfg[:i:i], []byte("[slack]\napi_url = \""+h.slack.APIURL()+"\"\nprogress_interval = \"0s\"\n"+settings)...)
	if err := os.WriteFile(h.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReplyWithoutAckIsOneMessage(t *testing.T) {
	h := newHost(t, allowAll)
	slackConfig(t, h, "ack = false\n")
	h.run(context.Background(), emulator.Job{Response: response(t, 320, nil), Script: []string{"echo hello"}})
	msgs := channel(t, h.slack, 1)
	want := "```\nhello\n```"
	if !strings.HasPrefix(msgs[0].Text, ":white_check_mark: <@U0123ABCD> *deploy* in ops/infra succeeded") || !strings.HasSuffix(msgs[0].Text, "\n"+want) {
		t.Errorf("single reply = %q", msgs[0].Text)
	}
	if len(msgs[0].History) != 1 {
		t.Errorf("the single reply was edited: %q", msgs[0].History)
	}
}

func TestReplyNeverPostsOnlyStatus(t *testing.T) {
	h := newHost(t, allowAll)
	slackConfig(t, h, "reply = \"never\"\n")
	h.run(context.Background(), emulator.Job{Response: response(t, 321, nil), Script: []string{"echo secret plans"}})
	start := channel(t, h.slack, 1)[0]
	if th := h.slack.Thread("C0123ABCD", start.TS); len(th) != 0 || !strings.HasPrefix(start.Text, ":white_check_mark:") {
		t.Errorf("reply = never:\n%s", h.slack)
	}
}

// What one job could not deliver, the next job's cleanup delivers: no cron needed for the
// outbox to drain while jobs keep running.
func TestLaterJobDeliversWaitingReplies(t *testing.T) {
	h := newHost(t, allowAll)
	h.slack.Down()
	h.run(context.Background(), emulator.Job{Response: response(t, 322, nil), Script: []string{chatReply("first answer")}})
	h.slack.Up()
	h.run(context.Background(), emulator.Job{Response: response(t, 323, nil), Script: []string{chatReply("second answer")}})
	msgs := channel(t, h.slack, 2)
	var replies []string
	for _, m := range msgs {
		for _, r := range h.slack.Thread("C0123ABCD", m.TS) {
			replies = append(replies, r.Text)
		}
	}
	joined := strings.Join(replies, "|")
	if !strings.Contains(joined, "first answer") || !strings.Contains(joined, "second answer") || len(replies) != 2 {
		t.Errorf("replies = %q\n%s", replies, h.slack)
	}
}

// A denied job that is not a chat job chose CHAT_USER_ID and CHAT_CHANNEL itself, and its
// pipeline source is its own text: the bot must say nothing to anyone for it (a phishing
// relay otherwise), and what the denial says must quote nothing the job controls.
func TestDeniedNonChatJobSendsNothing(t *testing.T) {
	h := newHost(t, allowAll)
	lure := "push. Your session expired, log in again at https://evil.example/login"
	h.run(context.Background(), emulator.Job{
		Response: response(t, 330, map[string]string{"CI_PIPELINE_SOURCE": lure, "CHAT_USER_ID": "U0VICTIM1", "CHAT_CHANNEL": "C0123ABCD"}),
		Script:   []string{"true"},
	})
	if calls := h.slack.Calls(slacktest.AnyMethod); len(calls) != 0 {
		t.Errorf("a denied non-chat job made the bot call Slack %d times:\n%s", len(calls), h.slack)
	}
	// And a chat job denied by policy gets the fixed text, whatever its name and input.
	h2 := newHost(t, "[policy]\ndefault = \"deny\"\n")
	h2.run(context.Background(), emulator.Job{
		Response: response(t, 331, map[string]string{"CHAT_INPUT": "https://evil.example/login please"}),
		Script:   []string{"true"},
	})
	for _, m := range h2.slack.Messages() {
		if strings.Contains(m.Text, "evil") || strings.Contains(m.Text, "deploy") {
			t.Errorf("the denial quotes the job: %q", m.Text)
		}
	}
}
