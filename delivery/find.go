package delivery

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/slack-go/slack"
)

// A post whose sender died between recording "in flight" and Slack's answer may or may not
// be in the channel. Posting it again risks a duplicate, and not posting it risks losing
// it; a Poster that can read the channel settles which: the outbox asks a Finder before it
// gives such a post up as "unknown".

// Finder is a Poster that can look for a message it may have posted.
type Finder interface {
	// FindPost looks for a message with exactly text, posted by the bot at or after since,
	// in channel (in the thread of threadTS when it is not empty). It returns its ts and
	// true when found, false when the channel certainly has no such message, and an error
	// when it cannot tell (no history scope, Slack down).
	FindPost(ctx context.Context, channel, threadTS, text string, since time.Time) (string, bool, error)
}

// findLimit bounds how many recent messages FindPost reads: the post it looks for was
// made seconds or minutes ago, in a channel where the bot does not post thousands.
const findLimit = 200

// FindPost implements Finder with conversations.history and conversations.replies (scopes
// channels:history, groups:history). Without them it reports that it cannot tell.
func (s *Slack) FindPost(ctx context.Context, channel, threadTS, text string, since time.Time) (string, bool, error) {
	oldest := strconv.FormatFloat(float64(since.Add(-time.Minute).UnixNano())/1e9, 'f', 6, 64)
	var msgs []slack.Message
	method := "conversations.history"
	if threadTS != "" {
		method = "conversations.replies"
	}
	err := s.call(ctx, method, func(ctx context.Context) error {
		if threadTS != "" {
			m, _, _, err := s.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
				ChannelID: channel, Timestamp: threadTS, Limit: findLimit})
			msgs = m
			return err
		}
		h, err := s.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{
			ChannelID: channel, Oldest: oldest, Inclusive: true, Limit: findLimit})
		if h != nil {
			msgs = h.Messages
		}
		return err
	})
	if err != nil {
		return "", false, err
	}
	if len(msgs) >= findLimit {
		return "", false, fmt.Errorf("%s: more than %d messages since the post: cannot tell", method, findLimit)
	}
	for _, m := range msgs {
		if m.Text == text && m.BotID != "" && m.Timestamp != threadTS {
			return m.Timestamp, true, nil
		}
	}
	return "", false, nil
}
