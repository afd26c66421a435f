package delivery

import (
	"context"
	"encoding/json"

	"github.com/slack-go/slack"
)

// BlockPoster is a Poster that can show Block Kit blocks. It is optional: the outbox uses
// it for a message that carries blocks when the Poster has it, and posts the message's
// text otherwise (a chat platform without Block Kit shows the reply in words). Text is
// always sent too: Slack shows it in notifications, and where blocks cannot be shown.
type BlockPoster interface {
	// PostBlocks is PostMessage with blocks, a JSON array the caller validated.
	PostBlocks(ctx context.Context, channel, threadTS, text string, blocks json.RawMessage) (ts string, err error)
	// UpdateBlocks is UpdateMessage with blocks. It is idempotent.
	UpdateBlocks(ctx context.Context, channel, ts, text string, blocks json.RawMessage) error
}

// postMessage posts text, with blocks when there are some and p can show them.
func postMessage(ctx context.Context, p Poster, channel, threadTS, text string, blocks json.RawMessage) (string, error) {
	if bp, ok := p.(BlockPoster); ok && len(blocks) > 0 {
		return bp.PostBlocks(ctx, channel, threadTS, text, blocks)
	}
	return p.PostMessage(ctx, channel, threadTS, text)
}

// updateMessage edits to text, with blocks when there are some and p can show them.
func updateMessage(ctx context.Context, p Poster, channel, ts, text string, blocks json.RawMessage) error {
	if bp, ok := p.(BlockPoster); ok && len(blocks) > 0 {
		return bp.UpdateBlocks(ctx, channel, ts, text, blocks)
	}
	return p.UpdateMessage(ctx, channel, ts, text)
}

// PostBlocks implements BlockPoster when the Poster it wraps does; else it posts text.
func (b *RateBudget) PostBlocks(ctx context.Context, channel, threadTS, text string, blocks json.RawMessage) (string, error) {
	var ts string
	err := b.spend(ctx, "chat.postMessage", "post:"+channel, 1, func() error {
		var err error
		ts, err = postMessage(ctx, b.next, channel, threadTS, text, blocks)
		return err
	})
	return ts, err
}

// UpdateBlocks implements BlockPoster when the Poster it wraps does; else it edits text.
func (b *RateBudget) UpdateBlocks(ctx context.Context, channel, ts, text string, blocks json.RawMessage) error {
	return b.spend(ctx, "chat.update", "tier3", 1, func() error {
		return updateMessage(ctx, b.next, channel, ts, text, blocks)
	})
}

// rawBlock hands slack-go a block exactly as validated: re-encoding through its types
// could drop or reorder fields.
type rawBlock struct{ json.RawMessage }

func (r rawBlock) BlockType() slack.MessageBlockType {
	var t struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(r.RawMessage, &t)
	return slack.MessageBlockType(t.Type)
}

func (rawBlock) ID() string { return "" }

func slackBlocks(method string, blocks json.RawMessage) (slack.MsgOption, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(blocks, &parts); err != nil {
		return nil, errorf(method, Permanent, "blocks are not a JSON array: %v", err)
	}
	bs := make([]slack.Block, len(parts))
	for i, p := range parts {
		bs[i] = rawBlock{p}
	}
	return slack.MsgOptionBlocks(bs...), nil
}

// PostBlocks implements BlockPoster.
func (s *Slack) PostBlocks(ctx context.Context, channel, threadTS, text string, blocks json.RawMessage) (string, error) {
	bo, err := slackBlocks("chat.postMessage", blocks)
	if err != nil {
		return "", err
	}
	opts := []slack.MsgOption{slack.MsgOptionText(text, false), bo, slack.MsgOptionDisableLinkUnfurl()}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	var ts string
	err = s.call(ctx, "chat.postMessage", func(ctx context.Context) error {
		var err error
		_, ts, err = s.api.PostMessageContext(ctx, channel, opts...)
		return err
	})
	return ts, err
}

// UpdateBlocks implements BlockPoster.
func (s *Slack) UpdateBlocks(ctx context.Context, channel, ts, text string, blocks json.RawMessage) error {
	bo, err := slackBlocks("chat.update", blocks)
	if err != nil {
		return err
	}
	return s.call(ctx, "chat.update", func(ctx context.Context) error {
		_, _, _, err := s.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(text, false), bo)
		return err
	})
}

var (
	_ BlockPoster = (*Slack)(nil)
	_ BlockPoster = (*RateBudget)(nil)
)
