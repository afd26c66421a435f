package delivery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// countPoster counts calls and can fail the next ones with queued errors.
type countPoster struct {
	mu      sync.Mutex
	updates []string
	posts   []string
	errs    []error
}

func (p *countPoster) next() error {
	if len(p.errs) == 0 {
		return nil
	}
	err := p.errs[0]
	p.errs = p.errs[1:]
	return err
}

func (p *countPoster) PostMessage(_ context.Context, channel, _, text string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.next(); err != nil {
		return "", err
	}
	p.posts = append(p.posts, channel+" "+text)
	return "1.0", nil
}

func (p *countPoster) UpdateMessage(_ context.Context, _, _, text string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.next(); err != nil {
		return err
	}
	p.updates = append(p.updates, text)
	return nil
}

func (p *countPoster) PostEphemeral(context.Context, string, string, string) error { return nil }
func (p *countPoster) UploadFile(context.Context, FileUpload) error                { return nil }

func (p *countPoster) counts() (updates, posts int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.updates), len(p.posts)
}

func newBudget(t *testing.T, dir string, p Poster, share float64, clk Clock) *RateBudget {
	t.Helper()
	b, err := NewRateBudget(p, dir, share, clk)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRateBudgetIsSharedByProcesses(t *testing.T) {
	dir, clk := t.TempDir(), newFakeClock()
	inner := &countPoster{}
	// Two budgets on one state dir stand for two executor processes on one host.
	a, b := newBudget(t, dir, inner, 1, clk), newBudget(t, dir, inner, 1, clk)
	ctx := context.Background()
	for i := range int(Tiers["tier3"].Burst) {
		who := a
		if i%2 == 1 {
			who = b
		}
		if err := who.UpdateMessage(ctx, "C1", "1.0", "final"); err != nil {
			t.Fatal(err)
		}
	}
	if s := clk.slept(); len(s) != 0 {
		t.Fatalf("the burst waited: %v", s)
	}
	// The burst is spent for both: the next call waits one refill (60s / 50).
	if err := b.UpdateMessage(ctx, "C1", "1.0", "final"); err != nil {
		t.Fatal(err)
	}
	if s := clk.slept(); len(s) != 1 || s[0] != 1200*time.Millisecond {
		t.Fatalf("after the burst, slept %v, want [1.2s]", s)
	}
	// Posts have their own bucket per channel.
	if _, err := a.PostMessage(ctx, "C2", "", "reply"); err != nil {
		t.Fatal(err)
	}
	if s := clk.slept(); len(s) != 1 {
		t.Errorf("a post waited for the update bucket: %v", s)
	}
	if u, p := inner.counts(); u != 11 || p != 1 {
		t.Errorf("%d updates and %d posts reached Slack, want 11 and 1", u, p)
	}
}

func TestRateBudgetShareScalesRateAndBurst(t *testing.T) {
	dir, clk := t.TempDir(), newFakeClock()
	b := newBudget(t, dir, &countPoster{}, 0.5, clk)
	for range 5 { // half of tier 3's burst of 10
		if err := b.UpdateMessage(context.Background(), "C1", "1.0", "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.UpdateMessage(context.Background(), "C1", "1.0", "x"); err != nil {
		t.Fatal(err)
	}
	if s := clk.slept(); len(s) != 1 || s[0] != 2400*time.Millisecond {
		t.Errorf("slept %v, want [2.4s] (25 a minute)", s)
	}
	for _, bad := range []float64{0, -1, 1.5} {
		if _, err := NewRateBudget(&countPoster{}, dir, bad, clk); err == nil {
			t.Errorf("share %v accepted", bad)
		}
	}
}

func TestRateBudgetSkipsProgressAndKeepsReserveForFinals(t *testing.T) {
	dir, clk := t.TempDir(), newFakeClock()
	inner := &countPoster{}
	b := newBudget(t, dir, inner, 1, clk)
	ctx := context.Background()
	pctx := asProgress(ctx)
	sent, skipped := 0, 0
	for range 20 {
		err := b.UpdateMessage(pctx, "C1", "1.0", "progress")
		var e *Error
		switch {
		case err == nil:
			sent++
		case errors.As(err, &e) && e.Code == "rate_budget_short":
			skipped++
		default:
			t.Fatal(err)
		}
	}
	reserve := int(Tiers["tier3"].Burst * progressReserve)
	if sent != int(Tiers["tier3"].Burst)-reserve || skipped != 20-sent {
		t.Fatalf("progress: %d sent, %d skipped; want %d sent", sent, skipped, int(Tiers["tier3"].Burst)-reserve)
	}
	if len(clk.slept()) != 0 {
		t.Error("a progress edit waited for the budget")
	}
	// The reserve is still there for final edits, without waiting.
	for range reserve {
		if err := b.UpdateMessage(ctx, "C1", "1.0", "final"); err != nil {
			t.Fatal(err)
		}
	}
	if len(clk.slept()) != 0 {
		t.Errorf("final edits waited: %v", clk.slept())
	}
	// Once the bucket refills past the reserve, progress flows again.
	clk.advance(time.Minute)
	if err := b.UpdateMessage(pctx, "C1", "1.0", "progress"); err != nil {
		t.Errorf("progress after a refill: %v", err)
	}
}

func TestRateBudget429BlocksEveryProcess(t *testing.T) {
	dir, clk := t.TempDir(), newFakeClock()
	inner := &countPoster{errs: []error{&Error{Method: "chat.update", Code: "rate_limited", Class: Retryable, RetryAfter: 7 * time.Second}}}
	a, b := newBudget(t, dir, inner, 1, clk), newBudget(t, dir, inner, 1, clk)
	err := a.UpdateMessage(context.Background(), "C1", "1.0", "x")
	var e *Error
	if !errors.As(err, &e) || e.Code != "rate_limited" || e.RetryAfter != 7*time.Second {
		t.Fatalf("the 429 was not passed on: %v", err)
	}
	// The other process waits out Retry-After (and one token's refill), without asking Slack.
	if err := b.UpdateMessage(context.Background(), "C1", "1.0", "x"); err != nil {
		t.Fatal(err)
	}
	if s := clk.slept(); len(s) != 1 || s[0] != 7*time.Second+1200*time.Millisecond {
		t.Errorf("slept %v, want [8.2s]", s)
	}
	// A progress edit during the block is skipped.
	inner.errs = []error{&Error{Method: "chat.update", Code: "rate_limited", Class: Retryable, RetryAfter: 3 * time.Second}}
	_ = a.UpdateMessage(context.Background(), "C1", "1.0", "x")
	if err := b.UpdateMessage(asProgress(context.Background()), "C1", "1.0", "x"); !errors.As(err, &e) || e.Code != "rate_budget_short" {
		t.Errorf("progress during a 429 block: %v", err)
	}
}

func TestRateBudgetGivesBackWhatItCannotWaitFor(t *testing.T) {
	dir, clk := t.TempDir(), newFakeClock()
	inner := &countPoster{}
	b := newBudget(t, dir, inner, 1, clk)
	for range 10 {
		_ = b.UpdateMessage(context.Background(), "C1", "1.0", "x")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := b.UpdateMessage(ctx, "C1", "1.0", "late")
	var e *Error
	if !errors.As(err, &e) || e.Class != Retryable || e.RetryAfter != 1200*time.Millisecond {
		t.Fatalf("a call that cannot wait for its slot: %v", err)
	}
	// Its reservation was returned: the next caller waits one refill, not two.
	if err := b.UpdateMessage(context.Background(), "C1", "1.0", "x"); err != nil {
		t.Fatal(err)
	}
	if s := clk.slept(); len(s) != 1 || s[0] != 1200*time.Millisecond {
		t.Errorf("slept %v, want [1.2s]", s)
	}
	if u, _ := inner.counts(); u != 11 {
		t.Errorf("%d updates reached Slack, want 11", u)
	}
}

func TestRateBudgetTornFileStartsFull(t *testing.T) {
	dir, clk := t.TempDir(), newFakeClock()
	if err := os.WriteFile(filepath.Join(dir, RateFile), []byte(`{"buckets":{"tier3":{"tok`), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newBudget(t, dir, &countPoster{}, 1, clk)
	if err := b.UpdateMessage(context.Background(), "C1", "1.0", "x"); err != nil || len(clk.slept()) != 0 {
		t.Errorf("torn file: %v, slept %v", err, clk.slept())
	}
}

// Through the outbox: a final reply that cannot get a slot in time stays queued, and goes
// out with the next delivery.
func TestRateBudgetNeverDropsAQueuedReply(t *testing.T) {
	dir, clk := t.TempDir(), newFakeClock()
	inner := &countPoster{}
	b := newBudget(t, dir, inner, 1, clk)
	ob := Open(dir, b, Options{Clock: clk, Budget: time.Second, Jitter: func(time.Duration) time.Duration { return 0 }})
	for range 10 {
		_ = b.UpdateMessage(context.Background(), "C1", "1.0", "spend")
	}
	j, err := ob.Job("7")
	if err != nil {
		t.Fatal(err)
	}
	// The start post has its own bucket; the final edit needs tier 3, now spent.
	rep, err := j.Send(context.Background(), time.Second, startMsg("C1"),
		Message{Kind: KindUpdate, Target: "start", Channel: "C1", Text: "final"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Waiting) != 1 {
		t.Fatalf("report %+v, want the final edit waiting", rep)
	}
	clk.advance(time.Minute)
	rep, err = j.Deliver(context.Background(), time.Second)
	if err != nil || !rep.Clear() || len(rep.Delivered) != 1 {
		t.Fatalf("second delivery: %+v %v", rep, err)
	}
	if u, _ := inner.counts(); u != 11 {
		t.Errorf("%d updates reached Slack, want 11 (10 + the final once)", u)
	}
}

// findPoster is a countPoster that can read the channel.
type findPoster struct {
	countPoster
	asked int
}

func (p *findPoster) FindPost(_ context.Context, channel, _, text string, _ time.Time) (string, bool, error) {
	p.asked++
	return "9.9", channel == "C1" && text == "posted", nil
}

// The outbox settles a post cut short by a crash by asking a Finder; behind the budget it
// must still be able to, or every such post would stay "unknown outcome".
func TestRateBudgetPassesFindPostThrough(t *testing.T) {
	clk := newFakeClock()
	p := &findPoster{}
	var poster Poster = newBudget(t, t.TempDir(), p, 1, clk)
	f, ok := poster.(Finder)
	if !ok {
		t.Fatal("the budget hides the Poster's Finder")
	}
	if ts, found, err := f.FindPost(context.Background(), "C1", "", "posted", clk.Now()); err != nil || !found || ts != "9.9" || p.asked != 1 {
		t.Errorf("FindPost = %q %v %v (asked %d)", ts, found, err, p.asked)
	}
	plain := newBudget(t, t.TempDir(), &countPoster{}, 1, clk)
	if _, _, err := plain.FindPost(context.Background(), "C1", "", "posted", clk.Now()); err == nil {
		t.Error("a budget over a Poster that cannot read the channel claimed to tell")
	}
}
