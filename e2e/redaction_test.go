package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/emulator"
)

// Tokens of kinds gitlab-runner 19.4 masks by default (FF_MASK_ALL_DEFAULT_TOKENS), printed
// by a job whose features.token_mask_prefixes is empty: only the default list can hide them.
const (
	deployToken = "gldt-AAAAbbbbCCCCdddd1234"
	runnerToken = "glrt-RRRRssssTTTT5678"
	jobToken    = "glcbt-64_JJJJkkkkLLLL9012"
	urlToken    = "PPPPqqqqUUUU"
	maskedValue = "dt-0123456789abcdef" // DEPLOY_TOKEN, masked in examples/job-response.json
)

// leakFragments are pieces no output may contain: every token's body, and both ends of the
// masked value (a secret split in two leaves at least one end of six characters or more).
var leakFragments = []string{"AAAAbbbb", "CCCCdddd", "RRRRssss", "JJJJkkkk", "kkkkLLLL", urlToken[:8], "dt-012", "abcdef"}

func findLeak(data []byte) string {
	for _, f := range leakFragments {
		if bytes.Contains(data, []byte(f)) {
			return f
		}
	}
	return ""
}

// redactionResponse is the example chat job without its own token prefixes, asking for
// the tokens in its input too.
func redactionResponse(t *testing.T, id int64) []byte {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal(response(t, id, map[string]string{
		"CHAT_INPUT": "go " + deployToken + " https://x.example/?private_token=" + urlToken,
	}), &r); err != nil {
		t.Fatal(err)
	}
	r["features"].(map[string]any)["token_mask_prefixes"] = []string{}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// redactionScript prints every kind of secret, also where a cut or a split used to expose
// one: after 1000 bytes of colour codes (the progress edit's 1024-byte cut) and across the
// reply's 16 KiB line split.
var redactionScript = []string{
	`echo "deploy token ` + deployToken + `"`,
	`echo "runner token ` + runnerToken + `"`,
	`echo "job token ` + jobToken + `"`,
	`echo "masked: $DEPLOY_TOKEN"`,
	`echo "url: https://gitlab.example.com/api/v4/projects?private_token=` + urlToken + `&page=2"`,
	`for i in $(seq 250); do printf '\033[0m'; done; echo "progress $DEPLOY_TOKEN"; sleep 1.2`,
	`printf '%16379s' '' | tr ' ' x; echo "$DEPLOY_TOKEN long line"`,
	`echo done`,
}

// A gldt-/glrt-/glcbt- token and a masked variable printed by a job never reach Slack (any
// call, message, edit or file), the audit log, or the outbox files (issue 10, issue 9).
func TestRunnerDefaultTokensNeverLeaveTheHost(t *testing.T) {
	h := newHost(t, allowAll+"[slack]\nprogress_interval = \"200ms\"\napi_url = \"PLACEHOLDER\"\n")
	cfg, _ := os.ReadFile(h.config)
	_ = os.WriteFile(h.config, bytes.Replace(cfg, []byte("PLACEHOLDER"), []byte(h.slack.APIURL()), 1), 0o600)

	res := h.run(context.Background(), emulator.Job{Response: redactionResponse(t, 330), Script: redactionScript})
	if res.State != "success" {
		t.Fatalf("state %s\n%s", res.State, res.RawTrace)
	}
	// The runner masks these in its job log too: the reply must not show more than GitLab.
	// (The emulator has the runner's masker and tokensanitizer, not its urlsanitizer.)
	if leak := findLeak(bytes.ReplaceAll(res.Trace, []byte(urlToken), nil)); leak != "" {
		t.Fatalf("the emulated runner did not mask %q; the test does not test the executor", leak)
	}
	if !bytes.Contains(res.RawTrace, []byte(deployToken)) {
		t.Fatal("the job did not print the tokens")
	}
	checkSlackClean(t, h.slack)
	start := channel(t, h.slack, 1)[0]
	if !strings.Contains(start.History[0], "gldt-[MASKED]") || !strings.Contains(start.History[0], "private_token=[MASKED]") {
		t.Errorf("start message input = %q", start.History[0])
	}
	var progressSeen bool
	for _, text := range start.History {
		progressSeen = progressSeen || strings.Contains(text, "\n> progress")
	}
	if !progressSeen {
		t.Errorf("no progress edit showed the line after the colour codes: %q", start.History)
	}
	thread := h.slack.Thread("C0123ABCD", start.TS)
	if len(thread) != 1 || len(thread[0].Files) != 1 {
		t.Fatalf("want one reply with the output attached:\n%s", h.slack)
	}
	file := string(thread[0].Files[0].Content)
	for _, want := range []string{"deploy token gldt-[MASKED]", "runner token glrt-[MASKED]", "job token glcbt-[MASKED]",
		"masked: [MASKED]", "private_token=[MASKED]&page=2", "[MASKED] long line"} {
		if !strings.Contains(strings.ReplaceAll(file, "\n", ""), want) {
			t.Errorf("attached output lacks %q", want)
		}
	}
	records := readAudit(t, filepath.Join(h.dir, "state", "audit.jsonl"))
	if len(records) != 1 || !strings.Contains(records[0]["input"].(string), "gldt-[MASKED]") {
		t.Errorf("audit records = %v", records)
	}
	checkFilesClean(t, filepath.Join(h.dir, "state"))
}

// With Slack refusing (the bot not yet in the channel) the whole reply stays in the outbox:
// its files hold nothing a job must not show, and flush delivers it as masked as ever. (A
// refusal rather than an outage keeps the test from waiting out the cleanup's budget.)
func TestOutboxFilesHoldNoSecrets(t *testing.T) {
	h := newHost(t, allowAll)
	h.slack.FailAlways(slacktest.AnyMethod, slacktest.SlackError("not_in_channel"))
	res := h.run(context.Background(), emulator.Job{Response: redactionResponse(t, 331), Script: redactionScript})
	if res.State != "success" {
		t.Fatalf("state %s", res.State)
	}
	outbox := filepath.Join(h.dir, "state", "outbox")
	var queued []byte
	_ = filepath.WalkDir(outbox, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(p)
			queued = append(queued, data...)
		}
		return nil
	})
	if !bytes.Contains(queued, []byte("gldt-[MASKED]")) {
		t.Fatalf("the outbox does not hold the reply (%d bytes)", len(queued))
	}
	checkFilesClean(t, filepath.Join(h.dir, "state"))
	h.slack.Heal()
	cmd := exec.Command(binary, "--config", h.config, "flush", "--retry-failed")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SLACK_BOT_TOKEN=" + slackToken}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("flush: %v\n%s", err, out)
	}
	checkSlackClean(t, h.slack)
	if start := channel(t, h.slack, 1)[0]; len(h.slack.Thread("C0123ABCD", start.TS)) != 1 {
		t.Errorf("reply not delivered:\n%s", h.slack)
	}
}

func checkSlackClean(t *testing.T, s *slacktest.Server) {
	t.Helper()
	for _, c := range s.Calls(slacktest.AnyMethod) {
		for k, v := range c.Params {
			if leak := findLeak([]byte(v)); leak != "" {
				t.Errorf("%s %s: %q reached Slack in %q", c.Method, k, leak, v)
			}
		}
	}
	for _, m := range s.Messages() {
		for _, text := range m.History {
			if leak := findLeak([]byte(text)); leak != "" {
				t.Errorf("%q reached Slack in %q", leak, text)
			}
		}
		for _, f := range m.Files {
			if leak := findLeak(append([]byte(f.Title+f.Comment), f.Content...)); leak != "" {
				t.Errorf("%q reached Slack in file %s", leak, f.Title)
			}
		}
	}
}

// checkFilesClean reads every file the executor left under dir.
func checkFilesClean(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(p)
		if leak := findLeak(data); leak != "" {
			t.Errorf("%q left on disk in %s", leak, p)
		}
		return nil
	})
}

// A job that turns FF_MASK_ALL_DEFAULT_TOKENS off sees its gldt- token in the job log, as
// the runner shows it, and the reply matches the log; glpat- stays masked in both.
func TestMaskAllDefaultTokensOffMatchesTheJobLog(t *testing.T) {
	h := newHost(t, allowAll)
	var r map[string]any
	if err := json.Unmarshal(response(t, 332, map[string]string{"FF_MASK_ALL_DEFAULT_TOKENS": "false"}), &r); err != nil {
		t.Fatal(err)
	}
	r["features"].(map[string]any)["token_mask_prefixes"] = []string{}
	resp, _ := json.Marshal(r)
	res := h.run(context.Background(), emulator.Job{Response: resp, Script: []string{
		`echo "deploy token ` + deployToken + `"`, `echo "pat glpat-abcdefghij0123456789"`}})
	if !bytes.Contains(res.Trace, []byte(deployToken)) || bytes.Contains(res.Trace, []byte("glpat-abcdef")) {
		t.Fatalf("the emulated runner's log does not show what this test expects:\n%s", res.Trace)
	}
	start := channel(t, h.slack, 1)[0]
	thread := h.slack.Thread("C0123ABCD", start.TS)
	if want := "```\ndeploy token " + deployToken + "\npat glpat-[MASKED]\n```"; len(thread) != 1 || thread[0].Text != want {
		t.Errorf("reply:\n%s\nwant %q", h.slack, want)
	}
}
