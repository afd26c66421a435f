package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/delivery/mattermosttest"
	"github.com/chatops-executor/chatops-executor/emulator"
)

// A Mattermost job's CHATOPS_REPLY_DIR: message.md is Markdown with Mattermost's
// channel-wide mentions neutralised, blocks.json is refused with a note (Mattermost has no
// Block Kit), and files land in the thread masked.
func TestMattermostRichReply(t *testing.T) {
	h := newMMHost(t, allowAll)
	res := h.run(context.Background(), emulator.Job{
		Response: mmResponse(t, 930, nil),
		Script: []string{
			"echo this output is replaced",
			`printf '**Deployed** v1.4.2 @channel @here @ALL @alice\ntoken %s\n' "$DEPLOY_TOKEN" > "$CHATOPS_REPLY_DIR/message.md"`,
			`echo '[{"type":"divider"}]' > "$CHATOPS_REPLY_DIR/blocks.json"`,
			`printf 'host,token\nweb1,%s\n' "$CI_JOB_TOKEN" > "$CHATOPS_REPLY_DIR/hosts.csv"`,
		},
	})
	if res.State != "success" {
		t.Fatalf("state %s\n%s", res.State, res.RawTrace)
	}
	start := h.roots(1)[0]
	thread := h.thread(start.ID)
	var answer string
	var csv []byte
	for _, p := range thread {
		if len(p.Files) > 0 {
			for _, f := range p.Files {
				if f.Name == "hosts.csv" {
					csv = f.Content
				}
			}
			continue
		}
		answer += p.Message + "\n"
	}
	for _, want := range []string{"**Deployed** v1.4.2", "@\u200bchannel", "@\u200bhere", "@\u200bALL", "@alice", "token [MASKED]",
		"blocks.json was not used: Mattermost has no Block Kit"} {
		// The note is escaped Markdown ("blocks\\.json"), shown without the backslashes.
		if !strings.Contains(strings.ReplaceAll(answer, "\\", ""), want) {
			t.Errorf("answer lacks %q:\n%s", want, h.mm)
		}
	}
	for _, bad := range []string{"this output is replaced", " @channel", " @here", "@alice\u200b"} {
		if strings.Contains(answer, bad) {
			t.Errorf("answer has %q:\n%s", bad, answer)
		}
	}
	if string(csv) != "host,token\nweb1,[MASKED]\n" {
		t.Errorf("hosts.csv in the thread: %q\n%s", csv, h.mm)
	}
	h.assertMMClean()
	h.assertClean(930)
}

// Approvals are read from Slack's reactions only: a Mattermost job that a rule sends for
// approval fails closed, before its script runs, and its requester is told why.
func TestMattermostJobNeedingApprovalIsDenied(t *testing.T) {
	h := newMMHost(t, `
[policy]
default = "deny"
[[policy.rule]]
name = "prod-deploy"
action = "approve"
jobs = ["deploy"]
approvers = ["U0BOB"]
`)
	marker := filepath.Join(h.public, "deployed")
	res := h.run(context.Background(), emulator.Job{Response: mmResponse(t, 931, nil), Script: []string{"touch " + marker}})
	if res.State != "failed" {
		t.Fatalf("state %s (%v)", res.State, res.Err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the job ran without an approval")
	}
	var told string
	for _, p := range h.mm.Posts("") {
		told += p.Message + "\n"
	}
	for _, p := range h.mm.Posts(mattermosttest.DirectChannel(mmUser)) {
		told += p.Message + "\n"
	}
	if !strings.Contains(told, "approv") {
		t.Errorf("the requester was not told that the job needs an approval Mattermost cannot give:\n%s", h.mm)
	}
	h.assertMMClean()
}
