package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
)

func TestSlackReactionsAndGroups(t *testing.T) {
	f := slacktest.New(t, testToken)
	p := newPoster(t, f)
	ctx := context.Background()
	ts, err := p.PostMessage(ctx, "C1", "", "deploy?")
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Reactions(ctx, "C1", ts)
	if err != nil || len(got) != 0 {
		t.Fatalf("no reactions yet: %v, %v", got, err)
	}
	f.React("C1", ts, "white_check_mark", "U0BOB")
	f.React("C1", ts, "white_check_mark::skin-tone-3", "U0CAROL")
	f.React("C1", ts, "x", "U0EVE")
	got, err = p.Reactions(ctx, "C1", ts)
	if err != nil || fmt.Sprint(got) != "map[white_check_mark:[U0BOB U0CAROL] x:[U0EVE]]" {
		t.Fatalf("reactions %v, %v", got, err)
	}
	if call := f.Calls("reactions.get")[1]; call.Params["full"] != "true" || call.Params["timestamp"] != ts {
		t.Errorf("reactions.get params %v", call.Params)
	}
	if _, err := p.Reactions(ctx, "C1", "1.999"); Classify(err).Code != "message_not_found" {
		t.Errorf("unknown message: %v", err)
	}
	f.SetGroup("S0SRE", "U0BOB", "U0DAVE")
	if users, err := p.GroupMembers(ctx, "S0SRE"); err != nil || strings.Join(users, ",") != "U0BOB,U0DAVE" {
		t.Errorf("group members %v, %v", users, err)
	}
	if _, err := p.GroupMembers(ctx, "S0NONE"); Classify(err).Class != Permanent {
		t.Errorf("unknown group: %v", err)
	}
	f.SetScopes("chat:write")
	if _, err := p.Reactions(ctx, "C1", ts); !strings.Contains(fmt.Sprint(err), "reactions:read") {
		t.Errorf("without reactions:read: %v", err)
	}
}

// reactPoster is a Poster that is also a Reactor, counting reads.
type reactPoster struct {
	countPoster
	reads int
	err   error
}

func (p *reactPoster) Reactions(context.Context, string, string) (map[string][]string, error) {
	p.reads++
	return map[string][]string{}, p.err
}

func (p *reactPoster) GroupMembers(context.Context, string) ([]string, error) { return nil, nil }

// Polling reactions never takes the tokens kept for replies, and a 429 on it holds off
// every later poll until its Retry-After has passed.
func TestRateBudgetPollsOnlyAboveTheReserve(t *testing.T) {
	dir, clk := t.TempDir(), newFakeClock()
	inner := &reactPoster{}
	b := newBudget(t, dir, inner, 1, clk)
	ctx := context.Background()
	burst := int(Tiers["tier3"].Burst)
	polled := 0
	for range burst {
		if _, err := b.Reactions(ctx, "C1", "1.1"); err == nil {
			polled++
		}
	}
	if polled != burst-int(float64(burst)*progressReserve) {
		t.Fatalf("polled %d times from a full bucket of %d", polled, burst)
	}
	_, err := b.Reactions(ctx, "C1", "1.1")
	var e *Error
	if !errors.As(err, &e) || e.Code != "rate_budget_short" || e.Backoff() <= 0 || inner.reads != polled {
		t.Fatalf("poll below the reserve: %v (reads %d)", err, inner.reads)
	}
	// The reserve is there for a final edit, with no wait.
	for i := range int(float64(burst) * progressReserve) {
		if err := b.UpdateMessage(ctx, "C1", "1.1", "final"); err != nil || len(clk.slept()) != 0 {
			t.Fatalf("final edit %d: %v, slept %v", i+1, err, clk.slept())
		}
	}
	// A 429 on a poll: nothing is polled until Retry-After has passed.
	clk.advance(time.Minute)
	inner.err = &Error{Method: "reactions.get", Code: "rate_limited", Class: Retryable, RetryAfter: 30 * time.Second}
	if _, err := b.Reactions(ctx, "C1", "1.1"); Classify(err).Code != "rate_limited" {
		t.Fatalf("got %v", err)
	}
	inner.err = nil
	reads := inner.reads
	clk.advance(29 * time.Second)
	if _, err := b.Reactions(ctx, "C1", "1.1"); err == nil || inner.reads != reads {
		t.Errorf("polled within Retry-After: %v", err)
	} else if Classify(err).Backoff() < time.Second {
		t.Errorf("backoff %s", Classify(err).Backoff())
	}
	clk.advance(20 * time.Second)
	if _, err := b.Reactions(ctx, "C1", "1.1"); err != nil {
		t.Errorf("after Retry-After and a refill: %v", err)
	}
	// A Poster without reactions has no Reactor behind the budget.
	if _, err := newBudget(t, t.TempDir(), &countPoster{}, 1, clk).Reactions(ctx, "C1", "1.1"); err == nil {
		t.Error("a Poster without reactions read some")
	}
}

// With a small share the bucket holds a single token: polling still gets it.
func TestRateBudgetPollsWithBurstOfOne(t *testing.T) {
	clk := newFakeClock()
	b := newBudget(t, t.TempDir(), &reactPoster{}, 0.05, clk)
	if _, err := b.Reactions(context.Background(), "C1", "1.1"); err != nil {
		t.Errorf("poll with a burst of one: %v", err)
	}
}
