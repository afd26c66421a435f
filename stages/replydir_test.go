package stages

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/policy"
	"github.com/chatops-executor/chatops-executor/replies"
	"github.com/chatops-executor/chatops-executor/replydir"
)

func richFixture(t *testing.T) (*Stages, *chat, *job.Response) {
	t.Helper()
	cfg := config.Default()
	s := &Stages{Cfg: &cfg, Stderr: io.Discard}
	j := &job.Response{ID: 77}
	return s, &chat{channel: "C1", secrets: replies.Secrets{Values: []string{"s3cr3tvalue"}}}, j
}

func blocksOf(t *testing.T, m delivery.Message) []map[string]any {
	t.Helper()
	var bs []map[string]any
	if err := json.Unmarshal(m.Blocks, &bs); err != nil {
		t.Fatalf("blocks %q: %v", m.Blocks, err)
	}
	return bs
}

func TestRichMessages(t *testing.T) {
	s, c, j := richFixture(t)
	divider := json.RawMessage(`[{"type":"divider"}]`)
	file := filepath.Join(t.TempDir(), "spooled")
	os.WriteFile(file, []byte("a,b\n"), 0o600)
	upload := func() *delivery.Message {
		return &delivery.Message{Kind: delivery.KindUpload, Channel: "C1", Text: "```preview```", Filename: "out.txt"}
	}

	// message.md replaces the output, its upload included.
	msgs := s.richMessages(c, &richReply{text: "*hi*", hasText: true}, j, "start", "", "```out```", upload())
	if len(msgs) != 1 || msgs[0].Text != "*hi*" || msgs[0].Kind != delivery.KindPost || msgs[0].ThreadOf != "start" {
		t.Errorf("message.md: %+v", msgs)
	}

	// No start message: the status leads the text, and the blocks get it as a context block.
	msgs = s.richMessages(c, &richReply{text: "*hi*", hasText: true, blocks: divider}, j, "", ":white_check_mark: done", "", nil)
	if len(msgs) != 1 || msgs[0].Text != ":white_check_mark: done\n*hi*" {
		t.Fatalf("without start: %+v", msgs)
	}
	if bs := blocksOf(t, msgs[0]); len(bs) != 2 || bs[0]["type"] != "context" || !strings.Contains(string(msgs[0].Blocks), "done") {
		t.Errorf("status block: %s", msgs[0].Blocks)
	}

	// Notes with blocks: a context block at the end (text is not shown with blocks).
	msgs = s.richMessages(c, &richReply{blocks: divider, notes: []string{"x.bin was not shared: <binary>"}}, j, "start", "", "```out```", nil)
	if bs := blocksOf(t, msgs[0]); len(msgs) != 1 || len(bs) != 2 || !strings.Contains(string(msgs[0].Blocks), "x.bin was not shared: &lt;binary&gt;") {
		t.Errorf("notes block: %+v %s", msgs, msgs[0].Blocks)
	}

	// Fifty blocks: the notes go in a message of their own.
	fifty := "[" + strings.TrimSuffix(strings.Repeat(`{"type":"divider"},`, 50), ",") + "]"
	msgs = s.richMessages(c, &richReply{blocks: json.RawMessage(fifty), notes: []string{"n"}}, j, "start", "", "```out```", nil)
	if len(msgs) != 2 || len(blocksOf(t, msgs[0])) != 50 || msgs[1].Text != "_n_" || msgs[1].ThreadOf != "start" {
		t.Errorf("full blocks: %+v", msgs)
	}
	// Fifty blocks and no start message: the status does not fit; the text stays.
	msgs = s.richMessages(c, &richReply{blocks: json.RawMessage(fifty)}, j, "", ":x: failed", ":x: failed\n```out```", nil)
	if len(msgs) != 1 || msgs[0].Blocks != nil || !strings.Contains(msgs[0].Text, "blocks.json was not used: with the executor's 1 blocks it holds more than Slack's 50") {
		t.Errorf("no room for the status: %+v", msgs)
	}

	// Files only, long output: the output's upload keeps the preview and the notes; the
	// files follow in the thread.
	r := &richReply{files: []replydir.File{{Name: "data-[MASKED].csv", Path: file, Text: true}}, notes: []string{"y was not shared"}}
	msgs = s.richMessages(c, r, j, "start", "", "```preview```", upload())
	r.close()
	if len(msgs) != 2 || msgs[0].Filename != "out.txt" || msgs[0].Text != "```preview```\n_y was not shared_" ||
		msgs[1].Kind != delivery.KindUpload || msgs[1].Filename != "data-[MASKED].csv" || msgs[1].ThreadOf != "start" {
		t.Errorf("files: %+v", msgs)
	}

	// Blocks and a long output: the blocks answer, the output follows as a file.
	msgs = s.richMessages(c, &richReply{blocks: divider}, j, "start", "", "```preview```", upload())
	if len(msgs) != 2 || msgs[0].Blocks == nil || msgs[0].Text != "```preview```" || msgs[1].Text != "" || msgs[1].Filename != "out.txt" {
		t.Errorf("blocks and upload: %+v", msgs)
	}
}

func TestAllowMentionsFollowsTheDecidingRule(t *testing.T) {
	s, _, _ := richFixture(t)
	s.Cfg.Policy.Rules = []config.Rule{
		{Name: "quiet", Action: "allow", Jobs: []string{"quiet"}},
		{Name: "loud", Action: "allow", Jobs: []string{"loud"}, AllowMentions: true},
		{Name: "odd", Action: "deny", Jobs: []string{"odd"}, AllowMentions: true},
		// A job a second person approved runs as an allowed one does.
		{Name: "release", Action: "approve", Jobs: []string{"release"}, Approval: config.Approval{Approvers: []string{"U0BOB"}}, AllowMentions: true},
		// An unnamed rule decides as well as a named one.
		{Action: "allow", Jobs: []string{"unnamed"}, AllowMentions: true},
	}
	s.Cfg.Policy.Default = "deny"
	e, err := policy.NewOffline(s.Cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The policy decides in prepare and the record keeps it; a config changed afterwards
	// changes nothing for the job.
	for job, want := range map[string]bool{"quiet": false, "loud": true, "odd": false, "release": true, "unnamed": true, "other": false} {
		d := e.Explain(context.Background(), policy.Input{Job: job, Project: "ops/infra", Channel: "C1", Verified: true}).Decision()
		st := State{Dir: t.TempDir()}
		var rec JobRecord
		if err := s.recordDecision(st, &rec, d); err != nil {
			t.Fatal(err)
		}
		s.Cfg.Policy.Rules[1].AllowMentions = !s.Cfg.Policy.Rules[1].AllowMentions
		if got := s.allowMentions(rec); got != want {
			t.Errorf("job %q (rule %q): %v", job, d.Rule, got)
		}
		s.Cfg.Policy.Rules[1].AllowMentions = !s.Cfg.Policy.Rules[1].AllowMentions
	}
}
