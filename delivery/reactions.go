package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// Reactor reads what people did to a message, for approvals and cancels from chat. It is
// Slack's and kept apart from Poster: a platform without reactions (or a Poster that wraps
// one) simply does not implement it, and approval then fails closed.
type Reactor interface {
	// Reactions returns the users behind each reaction on the message ts in channel,
	// keyed by reaction name without skin tone ("white_check_mark").
	Reactions(ctx context.Context, channel, ts string) (map[string][]string, error)
	// GroupMembers returns the user ids of the Slack user group (S…).
	GroupMembers(ctx context.Context, group string) ([]string, error)
}

// Reactions implements Reactor with reactions.get (scope reactions:read). full=true asks
// for every user of every reaction, not only the first few.
func (s *Slack) Reactions(ctx context.Context, channel, ts string) (map[string][]string, error) {
	var item slack.ReactedItem
	err := s.call(ctx, "reactions.get", func(ctx context.Context) error {
		var err error
		item, err = s.api.GetReactionsContext(ctx, slack.ItemRef{Channel: channel, Timestamp: ts}, slack.GetReactionsParameters{Full: true})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, r := range item.Reactions {
		name, _, _ := strings.Cut(r.Name, "::") // "thumbsup::skin-tone-2"
		out[name] = append(out[name], r.Users...)
	}
	return out, nil
}

// GroupMembers implements Reactor with usergroups.users.list (scope usergroups:read).
func (s *Slack) GroupMembers(ctx context.Context, group string) ([]string, error) {
	var users []string
	err := s.call(ctx, "usergroups.users.list", func(ctx context.Context) error {
		var err error
		users, err = s.api.GetUserGroupMembersContext(ctx, group)
		return err
	})
	return users, err
}

// Backoff is how long Slack asked to wait before the next call (a 429's Retry-After, or
// the host budget's next slot); 0 when it did not say. Package control polls by it.
func (e *Error) Backoff() time.Duration { return e.RetryAfter }

// groupTier is usergroups.users.list's bucket: Slack's Tier 2 (reactions.get is Tier 3).
const groupTier = "tier2"

func init() {
	Tiers[groupTier] = Tier{PerMinute: 20, Burst: 5}
}

// Reactions implements Reactor when the wrapped Poster does. Reading reactions is the
// lowest class of call: like a progress edit it is made only when the bucket holds more
// than the reserve kept for messages that must arrive, so polling never starves a reply.
// When it is skipped, the error says when to look again (Backoff).
func (b *RateBudget) Reactions(ctx context.Context, channel, ts string) (map[string][]string, error) {
	r, ok := b.next.(Reactor)
	if !ok {
		return nil, errNoReactor
	}
	var out map[string][]string
	err := b.spendLow(ctx, "reactions.get", "tier3", func() error {
		var err error
		out, err = r.Reactions(ctx, channel, ts)
		return err
	})
	return out, err
}

// GroupMembers implements Reactor when the wrapped Poster does, in the low class too.
func (b *RateBudget) GroupMembers(ctx context.Context, group string) ([]string, error) {
	r, ok := b.next.(Reactor)
	if !ok {
		return nil, errNoReactor
	}
	var out []string
	err := b.spendLow(ctx, "usergroups.users.list", groupTier, func() error {
		var err error
		out, err = r.GroupMembers(ctx, group)
		return err
	})
	return out, err
}

var errNoReactor = errors.New("this chat client cannot read reactions")

// spendLow makes call only when bucket keeps its reserve for messages that must arrive
// afterwards, and otherwise says how long until it might (Backoff). The reserve is half the
// burst as for progress edits, but never the whole of it: on a host with a small
// slack.rate_share (a burst of 1) polling still gets the token when it is there.
func (b *RateBudget) spendLow(ctx context.Context, method, bucket string, call func() error) error {
	t := b.tier(bucket)
	reserve := min(t.Burst*progressReserve, t.Burst-1)
	ok, wait := false, time.Second
	err := b.update(func(s *rateState, now time.Time) {
		bk := s.bucket(bucket, t, now)
		if !bk.At.After(now) && bk.Tokens-1 >= reserve {
			bk.Tokens--
			ok = true
			return
		}
		w := time.Duration(max(0, reserve+1-bk.Tokens) / t.PerMinute * float64(time.Minute))
		if bk.At.After(now) {
			w += bk.At.Sub(now)
		}
		wait = max(wait, w)
	})
	if err != nil {
		// The budget's file is unusable: Slack's own 429s still pace the poll.
		return b.observe(bucket, call())
	}
	if !ok {
		return &Error{Method: method, Code: "rate_budget_short", Class: Retryable, RetryAfter: wait,
			msg: fmt.Sprintf("%s skipped: the host's Slack rate budget is kept for replies", method)}
	}
	return b.observe(bucket, call())
}

// AsReactor returns p as a Reactor when it can read reactions. A RateBudget always has the
// methods, so it counts only when the Poster it wraps can: a platform without reactions
// is told apart at once, not after reads that fail.
func AsReactor(p Poster) (Reactor, bool) {
	if b, ok := p.(*RateBudget); ok {
		if _, ok := b.next.(Reactor); !ok {
			return nil, false
		}
		return b, true
	}
	r, ok := p.(Reactor)
	return r, ok
}
