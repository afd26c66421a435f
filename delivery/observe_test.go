package delivery

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
)

func TestOutcomesAndRateLimitsAreReported(t *testing.T) {
	f := slacktest.New(t, testToken)
	clk := newFakeClock()
	var mu sync.Mutex
	var outcomes, limited []string
	dir := t.TempDir()
	// Through the host budget too: its own waits are not 429s, Slack's are.
	b := newBudget(t, dir, newPoster(t, f), 1, clk)
	ob := Open(dir, b, Options{Clock: clk, AttemptTimeout: 2 * time.Second, Jitter: func(time.Duration) time.Duration { return 0 },
		OnOutcome: func(kind, outcome string) {
			mu.Lock()
			defer mu.Unlock()
			outcomes = append(outcomes, kind+" "+outcome)
		},
		On429: func(method string) {
			mu.Lock()
			defer mu.Unlock()
			limited = append(limited, method)
		}})
	j, err := ob.Job("42")
	if err != nil {
		t.Fatal(err)
	}
	f.Fail("chat.postMessage", slacktest.RateLimited(time.Second))
	f.Fail("chat.postEphemeral", slacktest.SlackError("user_not_in_channel"))
	ctx := context.Background()
	if _, err := j.Send(ctx, 0, startMsg("C1"), Message{Kind: KindEphemeral, Channel: "C1", User: "U1", Text: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := j.Progress(ctx, "start", "1m"); err != nil {
		t.Fatal(err)
	}
	want := []string{"post sent", "ephemeral failed", "progress sent"}
	if !slices.Equal(outcomes, want) {
		t.Errorf("outcomes %q, want %q", outcomes, want)
	}
	if !slices.Equal(limited, []string{"chat.postMessage"}) {
		t.Errorf("429s %q, want one from chat.postMessage", limited)
	}
}
