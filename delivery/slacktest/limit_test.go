package slacktest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
)

func TestLimitAnswers429PerMethodAndChannel(t *testing.T) {
	s := slacktest.New(t, token)
	s.SetLimit("chat.postMessage", slacktest.Limit{PerMinute: 1, Burst: 2, PerChannel: true})
	s.SetLimit("chat.update", slacktest.Limit{PerMinute: 1, Burst: 1})
	api := client(s, token)
	ctx := context.Background()
	post := func(ch string) error {
		_, _, err := api.PostMessageContext(ctx, ch, slack.MsgOptionText("x", false))
		return err
	}
	for i := range 2 {
		if err := post("C1"); err != nil {
			t.Fatalf("post %d within the burst: %v", i+1, err)
		}
	}
	err := post("C1")
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 60*time.Second {
		t.Fatalf("third post in C1: %v, want a 429 with Retry-After 60s", err)
	}
	if err := post("C2"); err != nil {
		t.Errorf("another channel has its own bucket: %v", err)
	}
	_, ts, _ := api.PostMessageContext(ctx, "C3", slack.MsgOptionText("x", false))
	for i, want := range []bool{true, false} {
		_, _, _, err := api.UpdateMessageContext(ctx, "C3", ts, slack.MsgOptionText("y", false))
		if (err == nil) != want {
			t.Errorf("update %d: %v", i+1, err)
		}
	}
	if got := s.Throttled("chat.postMessage"); got != 1 {
		t.Errorf("Throttled(chat.postMessage) = %d, want 1", got)
	}
	if got := s.Throttled(slacktest.AnyMethod); got != 2 {
		t.Errorf("Throttled(any) = %d, want 2", got)
	}
	// A throttled call has no effect and is recorded with its status.
	if n := len(s.Channel("C1")); n != 2 {
		t.Errorf("C1 shows %d messages, want 2", n)
	}
	calls := s.Calls("chat.postMessage")
	if calls[2].Status != 429 {
		t.Errorf("the throttled call is recorded with status %d", calls[2].Status)
	}
	s.SetLimit("chat.postMessage", slacktest.Limit{})
	if err := post("C1"); err != nil {
		t.Errorf("after removing the limit: %v", err)
	}
}
