package delivery

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
)

const tableBlocks = `[{"type":"header","text":{"type":"plain_text","text":"Hosts"}},` +
	`{"type":"section","fields":[{"type":"mrkdwn","text":"*host*"},{"type":"mrkdwn","text":"*state*"},` +
	`{"type":"plain_text","text":"web1"},{"type":"plain_text","text":"up"}]}]`

func TestBlocksReachSlackThroughTheOutbox(t *testing.T) {
	r := newRig(t)
	j := r.job(t, "301")
	ctx := context.Background()
	if _, err := j.Send(ctx, 0, startMsg("C1")); err != nil {
		t.Fatal(err)
	}
	rep, err := j.Send(ctx, 0,
		Message{Kind: KindUpdate, Target: "start", Channel: "C1", Text: "done", Blocks: json.RawMessage(`[{"type":"divider"}]`)},
		Message{Kind: KindPost, ThreadOf: "start", Channel: "C1", Text: "host web1 up", Blocks: json.RawMessage(tableBlocks)})
	if err != nil || !rep.Clear() {
		t.Fatalf("%+v %v", rep, err)
	}
	msgs := r.f.Channel("C1")
	if len(msgs) != 2 {
		t.Fatalf("messages: %+v", msgs)
	}
	if msgs[0].Blocks != `[{"type":"divider"}]` || msgs[0].Text != "done" {
		t.Errorf("edit: %+v", msgs[0])
	}
	if msgs[1].Blocks != tableBlocks || msgs[1].Text != "host web1 up" || msgs[1].ThreadTS != msgs[0].TS {
		t.Errorf("thread reply: %+v", msgs[1])
	}
}

func TestFakeSlackRefusesBlocksSlackWould(t *testing.T) {
	f := slacktest.New(t, testToken)
	p := newPoster(t, f)
	ctx := context.Background()
	long := `[{"type":"section","text":{"type":"mrkdwn","text":"` + strings.Repeat("x", 3001) + `"}}]`
	many := "[" + strings.TrimSuffix(strings.Repeat(`{"type":"divider"},`, 51), ",") + "]"
	for name, c := range map[string]struct{ blocks, code string }{
		"51 blocks":     {many, "invalid_blocks"},
		"long section":  {long, "invalid_blocks"},
		"unknown type":  {`[{"type":"sparkles"}]`, "invalid_blocks"},
		"header mrkdwn": {`[{"type":"header","text":{"type":"mrkdwn","text":"x"}}]`, "invalid_blocks"},
	} {
		_, err := p.PostBlocks(ctx, "C1", "", "fallback", json.RawMessage(c.blocks))
		if e := Classify(err); err == nil || e.Code != c.code || e.Class != Permanent {
			t.Errorf("%s: %v, want %s", name, err, c.code)
		}
	}
	if len(f.Channel("C1")) != 0 {
		t.Errorf("refused blocks were posted: %+v", f.Channel("C1"))
	}
}

// textOnly is a Poster without Block Kit (another chat platform).
type textOnly struct{ posted []string }

func (p *textOnly) PostMessage(_ context.Context, _, _, text string) (string, error) {
	p.posted = append(p.posted, text)
	return "1.1", nil
}
func (p *textOnly) UpdateMessage(context.Context, string, string, string) error { return nil }
func (p *textOnly) PostEphemeral(context.Context, string, string, string) error { return nil }
func (p *textOnly) UploadFile(context.Context, FileUpload) error                { return nil }

func TestPosterWithoutBlocksGetsTheText(t *testing.T) {
	p := &textOnly{}
	ob := Open(t.TempDir(), p, Options{Clock: newFakeClock(), AttemptTimeout: time.Second})
	j, err := ob.Job("302")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := j.Send(context.Background(), 0, Message{Kind: KindPost, Channel: "C1", Text: "in words", Blocks: json.RawMessage(tableBlocks)})
	if err != nil || !rep.Clear() || len(p.posted) != 1 || p.posted[0] != "in words" {
		t.Errorf("%+v %v %q", rep, err, p.posted)
	}
}

func TestEnqueueChecksBlocks(t *testing.T) {
	r := newRig(t)
	j := r.job(t, "303")
	if err := j.Enqueue(Message{Kind: KindPost, Channel: "C1", Text: "x", Blocks: json.RawMessage(`[{`)}); err == nil {
		t.Error("invalid JSON blocks queued")
	}
	if err := j.Enqueue(Message{Kind: KindEphemeral, Channel: "C1", User: "U1", Text: "x", Blocks: json.RawMessage(`[]`)}); err == nil {
		t.Error("blocks on an ephemeral message queued")
	}
}
