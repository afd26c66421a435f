package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatops-executor/chatops-executor/delivery/mattermosttest"
	"github.com/chatops-executor/chatops-executor/emulator"
)

// Chat jobs started from Mattermost: CHAT_CHANNEL and CHAT_USER_ID are Mattermost ids, and
// the same runner, with the same config, replies there in Markdown.

const (
	mmToken   = "mmtokenmmtokenmmtokenmmtok"
	mmChannel = "opsopsopsopsopsopsopsopso1"
	mmUser    = "alicealicealicealicealice1"
)

// mmHost is a host with [mattermost] configured and a fake Mattermost beside its fake Slack.
type mmHost struct {
	*host
	mm *mattermosttest.Server
}

func newMMHost(t *testing.T, extraConfig string) *mmHost {
	t.Helper()
	return newMMHostWith(t, extraConfig, "")
}

// newMMHostWith is newMMHost with more keys in [mattermost].
func newMMHostWith(t *testing.T, extraConfig, mmKeys string) *mmHost {
	t.Helper()
	mm := mattermosttest.New(t, mmToken)
	mm.AddChannel(mmChannel)
	mm.AddUser(mmUser, "alice")
	tokenFile := filepath.Join(t.TempDir(), "mattermost-token")
	if err := os.WriteFile(tokenFile, []byte(mmToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, extraConfig+fmt.Sprintf("[mattermost]\nurl = %q\ntoken_file = %q\n%s", mm.URL(), tokenFile, mmKeys))
	return &mmHost{host: h, mm: mm}
}

// mmResponse is the example job, started from Mattermost.
func mmResponse(t *testing.T, id int64, vars map[string]string) []byte {
	t.Helper()
	if vars == nil {
		vars = map[string]string{}
	}
	vars["CHAT_CHANNEL"], vars["CHAT_USER_ID"] = mmChannel, mmUser
	return response(t, id, vars)
}

// roots returns the channel's root posts, failing when there are not n.
func (h *mmHost) roots(n int) []mattermosttest.Post {
	h.t.Helper()
	var out []mattermosttest.Post
	for _, p := range h.mm.Posts(mmChannel) {
		if p.RootID == "" {
			out = append(out, p)
		}
	}
	if len(out) != n {
		h.t.Fatalf("%d root posts, want %d:\n%s", len(out), n, h.mm)
	}
	return out
}

func (h *mmHost) thread(root string) []mattermosttest.Post {
	var out []mattermosttest.Post
	for _, p := range h.mm.Posts(mmChannel) {
		if p.RootID == root {
			out = append(out, p)
		}
	}
	return out
}

// assertMMClean checks every call carried the bearer token, no secret reached Mattermost,
// and nothing of the job went to Slack.
func (h *mmHost) assertMMClean() {
	h.t.Helper()
	var all strings.Builder
	for _, c := range h.mm.Calls("") {
		if !c.Token {
			h.t.Errorf("%s %s without the bot's token", c.Verb, c.Path)
		}
		all.WriteString(c.Path + c.Body + "\n")
	}
	for _, p := range h.mm.Posts("") {
		all.WriteString(p.Message + "\n")
		for _, f := range p.Files {
			all.Write(f.Content)
		}
	}
	for _, secret := range append(jobSecrets, slackToken) {
		if strings.Contains(all.String(), secret) {
			h.t.Errorf("%q reached Mattermost", secret)
		}
	}
	if m := h.slack.Messages(); len(m) != 0 {
		h.t.Errorf("a Mattermost job posted to Slack:\n%s", h.slack)
	}
}

func TestMattermostJobGetsAMarkdownReply(t *testing.T) {
	h := newMMHost(t, allowAll)
	res := h.run(context.Background(), emulator.Job{
		Response: mmResponse(t, 901, nil),
		Script:   []string{chatReply("the answer is 42 @channel *not bold*")},
	})
	if res.State != "success" {
		t.Fatalf("%s %v", res.State, res.Err)
	}
	start := h.roots(1)[0]
	if !strings.HasPrefix(start.Message, ":white_check_mark: @alice **deploy** in ops/infra succeeded after") || start.Edits != 1 {
		t.Errorf("start post %q (%d edits)", start.Message, start.Edits)
	}
	thread := h.thread(start.ID)
	if len(thread) != 1 || thread[0].Message != "```\nthe answer is 42 @\u200bchannel *not bold*\n```" {
		t.Fatalf("reply:\n%s", h.mm)
	}
	if n := len(h.mm.Calls("users.get")); n != 1 {
		t.Errorf("the requester's username was looked up %d times, want once", n)
	}
	h.assertMMClean()
	h.assertClean(901)
}

func TestMattermostFailureShowsLastLinesAndAttachesOutput(t *testing.T) {
	h := newMMHost(t, allowAll)
	h.run(context.Background(), emulator.Job{
		Response: mmResponse(t, 902, nil),
		Script:   []string{"for i in $(seq 1 3000); do echo line $i of the log; done", "echo 'error: disk full' >&2", "exit 3"},
	})
	start := h.roots(1)[0]
	if !strings.Contains(start.Message, ":x: @alice **deploy** in ops/infra failed with exit code 3 after") {
		t.Errorf("status %q", start.Message)
	}
	thread := h.thread(start.ID)
	if len(thread) != 1 || len(thread[0].Files) != 1 {
		t.Fatalf("want one reply with the output attached:\n%s", h.mm)
	}
	text := thread[0].Message
	if !strings.Contains(text, "Last 25 lines") || !strings.Contains(text, "line 3000 of the log\nerror: disk full\n```") || strings.Contains(text, "line 2975 of") {
		t.Errorf("preview %q", text)
	}
	file := thread[0].Files[0].Content
	if !bytes.HasPrefix(file, []byte("line 1 of the log\nline 2 of the log\n")) || !bytes.HasSuffix(file, []byte("error: disk full")) {
		t.Errorf("attached output: %d bytes, starts %q", len(file), file[:min(40, len(file))])
	}
	h.assertMMClean()
}

// Mattermost's post limit, not Slack's 3000-character default, decides what is inline.
func TestMattermostLongOutputInlineUpToThePostLimit(t *testing.T) {
	h := newMMHost(t, allowAll)
	h.run(context.Background(), emulator.Job{
		Response: mmResponse(t, 903, nil),
		Script:   []string{chatReply(`$(seq -f 'row %05g of the report' 1 600)`)},
	})
	start := h.roots(1)[0]
	thread := h.thread(start.ID)
	if len(thread) != 1 || len(thread[0].Files) != 0 || !strings.Contains(thread[0].Message, "row 00600 of the report\n```") {
		t.Fatalf("want the ~15000 characters inline:\n%s", h.mm)
	}
	if n := utf8.RuneCountInString(thread[0].Message); n < 14400 || n > mattermosttest.MaxMessageRunes {
		t.Errorf("reply of %d characters", n)
	}
}

// The bot has no create_post_ephemeral permission (the usual case): the denial reaches the
// requester as a direct message, and the job log says which way it went.
func TestMattermostDenialFallsBackToDirectMessage(t *testing.T) {
	h := newMMHost(t, "[policy]\ndefault = \"deny\"\n")
	res := h.run(context.Background(), emulator.Job{Response: mmResponse(t, 904, nil), Script: []string{"true"}})
	if n := len(h.mm.Calls("posts.ephemeral")); n != 1 {
		t.Errorf("%d ephemeral attempts, want 1", n)
	}
	dm := h.mm.Posts(mattermosttest.DirectChannel(mmUser))
	if len(dm) != 1 || !strings.Contains(dm[0].Message, "The runner's policy denied your chat command (rule `default`)") ||
		!strings.Contains(dm[0].Message, "direct message") {
		t.Fatalf("direct messages:\n%s", h.mm)
	}
	if p := h.mm.Posts(mmChannel); len(p) != 0 {
		t.Errorf("a denied job posted to the channel:\n%s", h.mm)
	}
	logs := string(res.Trace) + string(res.RunnerLog)
	if !strings.Contains(logs, "sent to the requester as a direct message") {
		t.Errorf("no log says the denial went as a direct message:\n%s", logs)
	}
	h.assertMMClean()
}

func TestMattermostDenialEphemeralWhenAllowed(t *testing.T) {
	h := newMMHost(t, "[policy]\ndefault = \"deny\"\n")
	h.mm.AllowEphemeral(true)
	h.run(context.Background(), emulator.Job{Response: mmResponse(t, 905, nil), Script: []string{"true"}})
	p := h.mm.Posts("")
	if len(p) != 1 || !p[0].Ephemeral || p[0].ForUser != mmUser || p[0].ChannelID != mmChannel {
		t.Fatalf("want one ephemeral post for the requester:\n%s", h.mm)
	}
}

func (h *mmHost) flush(args ...string) (string, error) {
	cmd := exec.Command(binary, append([]string{"--config", h.config, "flush"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SLACK_BOT_TOKEN=" + slackToken}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestMattermostDownThenFlushDeliversOnce(t *testing.T) {
	h := newMMHost(t, allowAll)
	h.mm.Down()
	res := h.run(context.Background(), emulator.Job{Response: mmResponse(t, 906, nil), Script: []string{chatReply("the answer is 42")}})
	if res.State != "success" {
		t.Fatalf("a dead Mattermost failed the job: %s %v", res.State, res.Err)
	}
	if !strings.Contains(string(res.RunnerLog), "waiting in the outbox") {
		t.Errorf("runner log does not say what was queued:\n%s", res.RunnerLog)
	}
	h.mm.Up()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := h.flush(); err != nil {
				t.Errorf("flush: %v\n%s", err, out)
			}
		}()
	}
	wg.Wait()
	start := h.roots(1)[0]
	thread := h.thread(start.ID)
	if len(thread) != 1 || thread[0].Message != "```\nthe answer is 42\n```" || !strings.HasPrefix(start.Message, ":white_check_mark:") {
		t.Errorf("after flush:\n%s", h.mm)
	}
	if n := len(h.mm.Calls("posts.create")); n != 2 {
		t.Errorf("%d posts.create calls, want 2 (start and reply)", n)
	}
	if out, err := h.flush(); err != nil || !strings.Contains(out, "empty") {
		t.Errorf("a third flush: %v\n%s", err, out)
	}
	h.assertMMClean()
}

func TestMattermostRateLimitWaitsForReset(t *testing.T) {
	prom := filepath.Join(t.TempDir(), "chatops.prom")
	h := newMMHost(t, allowAll+fmt.Sprintf("[metrics]\ntextfile = %q\n", prom))
	h.mm.Fail("posts.create", mattermosttest.RateLimited(1))
	h.run(context.Background(), emulator.Job{Response: mmResponse(t, 907, nil), Script: []string{chatReply("ok")}})
	calls := h.mm.Calls("posts.create")
	if len(calls) != 3 {
		t.Fatalf("%d posts.create calls, want 3 (refused start, start, reply):\n%s", len(calls), h.mm)
	}
	if gap := calls[1].At.Sub(calls[0].At); gap < time.Second {
		t.Errorf("retried %s after a 429 with X-RateLimit-Reset: 1", gap)
	}
	start := h.roots(1)[0]
	if th := h.thread(start.ID); len(th) != 1 {
		t.Errorf("reply:\n%s", h.mm)
	}
	// Counted as Mattermost's, not Slack's.
	data, _ := os.ReadFile(prom)
	if !strings.Contains(string(data), `chatops_executor_mattermost_rate_limited_total{method="posts.create"} 1`) ||
		strings.Contains(string(data), "chatops_executor_slack_rate_limited_total{") {
		t.Errorf("metrics:\n%s", data)
	}
}

func TestMattermostSecretsNeverReachIt(t *testing.T) {
	h := newMMHost(t, allowAll)
	h.run(context.Background(), emulator.Job{
		Response: mmResponse(t, 908, map[string]string{"CHAT_INPUT": "deploy with dt-0123456789abcdef"}),
		Script: []string{
			`echo "token: $DEPLOY_TOKEN"`,
			`echo "job token: $CI_JOB_TOKEN"`,
			`printf 'split: dt-01234'; sleep 0.2; printf '56789abcdef\n'`,
			`echo "pat: glpat-abcdefghij0123456789"`,
			chatReply(`deployed with $DEPLOY_TOKEN`),
		},
	})
	start := h.roots(1)[0]
	if th := h.thread(start.ID); len(th) != 1 || th[0].Message != "```\ndeployed with [MASKED]\n```" {
		t.Errorf("reply:\n%s", h.mm)
	}
	h.assertMMClean()
}

// One runner, one config: a Slack job and a Mattermost job at the same time, each answered
// in its own chat and nowhere else.
func TestOneRunnerServesSlackAndMattermostAtOnce(t *testing.T) {
	h := newMMHost(t, allowAll)
	var wg sync.WaitGroup
	var slackRes, mmRes *emulator.Result
	wg.Add(2)
	go func() {
		defer wg.Done()
		slackRes, _ = h.runner.Run(context.Background(), emulator.Job{Response: response(t, 910, nil), Script: []string{"sleep 0.5", chatReply("slack side")}})
	}()
	go func() {
		defer wg.Done()
		mmRes, _ = h.runner.Run(context.Background(), emulator.Job{Response: mmResponse(t, 911, nil), Script: []string{"sleep 0.5", chatReply("mattermost side")}})
	}()
	wg.Wait()
	if slackRes == nil || mmRes == nil || slackRes.State != "success" || mmRes.State != "success" {
		t.Fatalf("results %+v %+v", slackRes, mmRes)
	}
	top := channel(t, h.slack, 1)
	thread := h.slack.Thread("C0123ABCD", top[0].TS)
	if len(thread) != 1 || thread[0].Text != "```\nslack side\n```" || !strings.HasPrefix(top[0].Text, ":white_check_mark: <@U0123ABCD> *deploy*") {
		t.Errorf("Slack:\n%s", h.slack)
	}
	start := h.roots(1)[0]
	mmThread := h.thread(start.ID)
	if len(mmThread) != 1 || mmThread[0].Message != "```\nmattermost side\n```" || !strings.HasPrefix(start.Message, ":white_check_mark: @alice **deploy**") {
		t.Errorf("Mattermost:\n%s", h.mm)
	}
	for _, p := range h.mm.Posts("") {
		if strings.Contains(p.Message, "slack side") {
			t.Errorf("the Slack job's reply reached Mattermost")
		}
	}
	h.assertClean(910)
	h.assertClean(911)
}

// An upgrade onto a host that now serves Mattermost too: the old release's Slack messages
// (no backend recorded) still go to Slack, exactly once and in order, and a Mattermost
// job's reply waiting beside them goes to Mattermost, in one flush.
func TestUpgradeFixtureDeliversBesideMattermost(t *testing.T) {
	src := upgradeFixtures(t)[0]
	h := newMMHost(t, allowAll)
	state := filepath.Join(h.dir, "state")
	installFixture(t, src, state)
	jobs := waitingOps(t, state)
	ids := sortedJobs(jobs)
	h.mm.Down()
	h.slack.Down()
	h.run(context.Background(), emulator.Job{Response: mmResponse(t, 920, nil), Script: []string{chatReply("queued while down")}})
	h.slack.Up()
	h.mm.Up()
	out, err := h.flush()
	if err != nil || !strings.Contains(out, "outbox is empty") {
		t.Fatalf("flush: %v\n%s", err, out)
	}
	assertDeliveredAsQueued(t, h.slack.Events(), jobs, ids)
	start := h.roots(1)[0]
	// Mattermost was down at every stage: the username could not be looked up, so the
	// reply goes without the mention rather than not at all.
	if th := h.thread(start.ID); len(th) != 1 || th[0].Message != "```\nqueued while down\n```" || !strings.HasPrefix(start.Message, ":white_check_mark: **deploy**") {
		t.Errorf("Mattermost:\n%s", h.mm)
	}
	for _, e := range h.slack.Events() {
		if strings.Contains(e.Text, "queued while down") || e.Channel == mmChannel {
			t.Errorf("the Mattermost reply went to Slack: %+v", e)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(state, "outbox")); len(ents) != 0 {
		t.Errorf("the outbox keeps %v after delivery", ents)
	}
}

func TestMattermostProgressEditsStartPost(t *testing.T) {
	h := newMMHost(t, allowAll+"[slack]\nprogress_interval = \"300ms\"\n")
	h.run(context.Background(), emulator.Job{
		Response: mmResponse(t, 930, nil),
		Script:   []string{"for i in 1 2 3 4 5 6 7 8; do echo step $i; sleep 0.25; done"},
	})
	start := h.roots(1)[0]
	if start.Edits < 3 || !strings.HasPrefix(start.Message, ":white_check_mark: @alice") {
		t.Errorf("%d edits, final %q; want progress edits then the status", start.Edits, start.Message)
	}
	var progress int
	for _, c := range h.mm.Calls("posts.patch") {
		if strings.Contains(c.Body, "running for") && strings.Contains(c.Body, `\n\u003e step `) {
			progress++
		}
	}
	if progress < 2 {
		t.Errorf("%d progress edits with the last line", progress)
	}
	if n := len(h.mm.Calls("users.get")); n != 1 {
		t.Errorf("the username was looked up %d times, want once for the whole job", n)
	}
}

// The token file is the executor's: a job that goes looking for it finds nothing, and
// nothing of it reaches the job log or Mattermost.
func TestMattermostTokenUnreachableFromJob(t *testing.T) {
	h := newMMHost(t, allowAll)
	data, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	var tokenFile string
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "token_file = "); ok {
			tokenFile = strings.Trim(v, `"`)
		}
	}
	res := h.run(context.Background(), emulator.Job{
		Response: mmResponse(t, 931, nil),
		Script: []string{
			`cat ` + tokenFile + ` || echo "no token file"`,
			`cat ` + h.config + ` || echo "no config"`,
			`env | grep -i mattermost || echo "no env"`,
			// Split, so that the echoed command line does not carry the token itself.
			`grep -rl "` + mmToken[:10] + `""` + mmToken[10:] + `" /proc/*/environ 2>/dev/null | head -1 || true`,
		},
	})
	if bytes.Contains(res.Trace, []byte(mmToken)) || bytes.Contains(res.RawTrace, []byte(mmToken)) {
		t.Fatalf("the job read the Mattermost token:\n%s", res.RawTrace)
	}
	if !bytes.Contains(res.RawTrace, []byte("no token file")) {
		t.Errorf("the job could read the token file:\n%s", res.RawTrace)
	}
	h.assertMMClean()
}

// [mattermost] may set the reply keys of [slack] for its own jobs: here no start message
// for Mattermost, while Slack's jobs keep theirs.
func TestMattermostReplyKeysOverrideSlacks(t *testing.T) {
	h := newMMHostWith(t, allowAll, "ack = false\n")
	h.run(context.Background(), emulator.Job{Response: mmResponse(t, 940, nil), Script: []string{chatReply("one post")}})
	h.run(context.Background(), emulator.Job{Response: response(t, 941, nil), Script: []string{chatReply("two messages")}})
	posts := h.mm.Posts(mmChannel)
	if len(posts) != 1 || posts[0].Edits != 0 || !strings.HasPrefix(posts[0].Message, ":white_check_mark: @alice **deploy**") ||
		!strings.HasSuffix(posts[0].Message, "\n```\none post\n```") {
		t.Errorf("Mattermost, ack off:\n%s", h.mm)
	}
	start := channel(t, h.slack, 1)[0]
	if th := h.slack.Thread("C0123ABCD", start.TS); len(th) != 1 || len(start.History) != 2 {
		t.Errorf("Slack, ack on:\n%s", h.slack)
	}
}

// Without a start message the status line shares the post with the output, and Mattermost
// refuses a post over 16383 characters rather than cutting it: output that fits alone but
// not beside the status goes as a file.
func TestMattermostStatusCountsAgainstThePostLimit(t *testing.T) {
	h := newMMHostWith(t, allowAll, "ack = false\n")
	h.run(context.Background(), emulator.Job{
		Response: mmResponse(t, 942, nil),
		Script:   []string{chatReply(`$(seq -f 'row %05g of the report' 1 680)`)}, // 16328 characters fenced
	})
	posts := h.mm.Posts(mmChannel)
	if len(posts) != 1 || len(posts[0].Files) != 1 || !strings.HasPrefix(posts[0].Message, ":white_check_mark: @alice") {
		t.Fatalf("want one post with the status, a preview and the file:\n%s", h.mm)
	}
	if n := utf8.RuneCountInString(posts[0].Message); n > mattermosttest.MaxMessageRunes {
		t.Errorf("post of %d characters", n)
	}
}

// A Mattermost job on a runner without [mattermost]: it runs, nothing is posted anywhere,
// and the runner log says why.
func TestMattermostJobWithoutMattermostConfigRunsSilently(t *testing.T) {
	h := newHost(t, allowAll)
	res := h.run(context.Background(), emulator.Job{Response: mmResponse(t, 950, nil), Script: []string{"echo ran"}})
	if res.State != "success" || !bytes.Contains(res.Trace, []byte("ran")) {
		t.Fatalf("%s %v", res.State, res.Err)
	}
	if !strings.Contains(string(res.Trace)+string(res.RunnerLog), "CHAT_CHANNEL is a Mattermost channel id and [mattermost] url and token_file are not set") {
		t.Errorf("no word on why there is no reply:\n%s\n%s", res.Trace, res.RunnerLog)
	}
	if m := h.slack.Messages(); len(m) != 0 {
		t.Errorf("a Mattermost job posted to Slack:\n%s", h.slack)
	}
	h.assertClean(950)
}

// A host that serves Mattermost only (no Slack token anywhere): its jobs reply, and flush
// delivers what waited.
func TestMattermostOnlyHostFlushes(t *testing.T) {
	h := newMMHost(t, allowAll)
	h.runner.Env = []string{"PATH=" + os.Getenv("PATH")}
	h.mm.Down()
	res := h.run(context.Background(), emulator.Job{Response: mmResponse(t, 960, nil), Script: []string{chatReply("later")}})
	if res.State != "success" {
		t.Fatalf("%s %v", res.State, res.Err)
	}
	h.mm.Up()
	cmd := exec.Command(binary, "--config", h.config, "flush")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "outbox is empty") {
		t.Fatalf("flush: %v\n%s", err, out)
	}
	start := h.roots(1)[0]
	if th := h.thread(start.ID); len(th) != 1 || th[0].Message != "```\nlater\n```" {
		t.Errorf("after flush:\n%s", h.mm)
	}
}
