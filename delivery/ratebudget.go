package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// RateBudget is a Poster that spends one Slack rate budget shared by every executor process
// on the host. A runner with concurrent = 50 runs 50 executor processes at once, all posting
// as the same Slack app, and Slack's limits are per app and workspace: without a shared
// budget each process finds the limit by being refused, and 50 of them retrying on their own
// spend the budget on progress edits and push final replies into 429 back-off.
//
// The budget is a token bucket per Slack rate tier (see Tiers), refilled at Slack's
// documented rate times the host's share of it (slack.rate_share: 1/N for a fleet of N
// hosts). Its state is one small file, <state_dir>/slack-rate.json, read and rewritten under
// an flock on every call, so there is nothing new to run. It is not synced to disk: after a
// crash a torn file reads as a full budget, which costs at worst one burst of 429s.
//
// Calls are spent in two classes:
//
//   - messages that must arrive (start messages, final edits, replies, ephemeral messages,
//     files) reserve a token and wait for it, in the order they asked. If the wait would
//     outlast the call's deadline, the reservation is given back and the call fails as
//     Retryable with the wait as its RetryAfter: the outbox keeps the message for the next
//     delivery, it is never dropped.
//   - progress edits (a context from Job.Progress) are sent only when the bucket holds more
//     than a reserve left for the first class, and otherwise skipped: the next edit carries
//     the latest state, and the final edit replaces them all.
//
// A 429 from Slack empties the tier's bucket until its Retry-After has passed, for every
// process on the host, and the 429 itself is returned for the retry loop to honour.
type RateBudget struct {
	next  Poster
	path  string
	share float64
	clock Clock
}

// Tier is one of Slack's rate limits: a rate and a burst the bucket can hold.
type Tier struct {
	PerMinute float64
	Burst     float64
}

// Tiers are Slack's documented limits for the methods the executor calls. chat.postMessage
// is limited per channel (about one a second, short bursts allowed), so its bucket is kept per
// channel; chat.update is Tier 3 (50+ a minute); chat.postEphemeral and the two files.*
// methods are Tier 4 (100+ a minute). Bursts are our choice: small enough that a host using
// its whole share in one go stays inside what Slack tolerates.
var Tiers = map[string]Tier{
	"post":  {PerMinute: 60, Burst: 3},
	"tier3": {PerMinute: 50, Burst: 10},
	"tier4": {PerMinute: 100, Burst: 20},
}

// progressReserve is the fraction of a bucket's burst that progress edits leave for the
// messages that must arrive.
const progressReserve = 0.5

// RateFile is the budget's state file under the state directory.
const RateFile = "slack-rate.json"

// NewRateBudget wraps p in the host's budget kept under stateDir, at share (0 < share <= 1)
// of Slack's rates. clock may be nil (the real one).
func NewRateBudget(p Poster, stateDir string, share float64, clock Clock) (*RateBudget, error) {
	if share <= 0 || share > 1 || math.IsNaN(share) {
		return nil, fmt.Errorf("slack rate budget: share must be in (0, 1], got %v", share)
	}
	if clock == nil {
		clock = realClock{}
	}
	return &RateBudget{next: p, path: filepath.Join(stateDir, RateFile), share: share, clock: clock}, nil
}

type progressKey struct{}

// asProgress marks ctx as carrying a progress edit, which the budget may skip.
func asProgress(ctx context.Context) context.Context {
	return context.WithValue(ctx, progressKey{}, true)
}

func isProgress(ctx context.Context) bool {
	v, _ := ctx.Value(progressKey{}).(bool)
	return v
}

// PostMessage implements Poster.
func (b *RateBudget) PostMessage(ctx context.Context, channel, threadTS, text string) (string, error) {
	var ts string
	err := b.spend(ctx, "chat.postMessage", "post:"+channel, 1, func() error {
		var err error
		ts, err = b.next.PostMessage(ctx, channel, threadTS, text)
		return err
	})
	return ts, err
}

// UpdateMessage implements Poster.
func (b *RateBudget) UpdateMessage(ctx context.Context, channel, ts, text string) error {
	return b.spend(ctx, "chat.update", "tier3", 1, func() error {
		return b.next.UpdateMessage(ctx, channel, ts, text)
	})
}

// PostEphemeral implements Poster.
func (b *RateBudget) PostEphemeral(ctx context.Context, channel, user, text string) error {
	return b.spend(ctx, "chat.postEphemeral", "tier4", 1, func() error {
		return b.next.PostEphemeral(ctx, channel, user, text)
	})
}

// UploadFile implements Poster. It spends two Tier 4 calls (files.getUploadURLExternal and
// files.completeUploadExternal; the upload itself is not a Web API call).
func (b *RateBudget) UploadFile(ctx context.Context, f FileUpload) error {
	return b.spend(ctx, "files.completeUploadExternal", "tier4", 2, func() error {
		return b.next.UploadFile(ctx, f)
	})
}

// FindPost implements Finder when the Poster it wraps does (conversations.history and
// conversations.replies are Tier 3): without it, a post cut short by a crash could never be
// settled behind the budget. A Poster that cannot read the channel cannot tell.
func (b *RateBudget) FindPost(ctx context.Context, channel, threadTS, text string, since time.Time) (string, bool, error) {
	f, ok := b.next.(Finder)
	if !ok {
		return "", false, errors.New("this Slack client cannot read the channel")
	}
	var ts string
	var found bool
	err := b.spend(ctx, "conversations.history", "tier3", 1, func() error {
		var err error
		ts, found, err = f.FindPost(ctx, channel, threadTS, text, since)
		return err
	})
	return ts, found, err
}

// spend takes n tokens of bucket for one call and makes it, then notes a 429.
func (b *RateBudget) spend(ctx context.Context, method, bucket string, n float64, call func() error) error {
	low := isProgress(ctx)
	wait, ok, err := b.take(bucket, n, low)
	if err != nil {
		// The budget's file is unusable (permissions, disk): deliver without it rather
		// than hold up a message; Slack's own 429s still pace us.
		return b.observe(bucket, call())
	}
	if !ok {
		return &Error{Method: method, Code: "rate_budget_short", Class: Permanent,
			msg: "progress edit skipped: the host's Slack rate budget is kept for final replies"}
	}
	if wait > 0 {
		// A context's deadline is wall time, whatever b.clock says.
		if dl, has := ctx.Deadline(); has && time.Until(dl) < wait {
			b.giveBack(bucket, n)
			return &Error{Method: method, Code: "rate_budget", Class: Retryable, RetryAfter: wait,
				msg: fmt.Sprintf("the host's Slack rate budget for %s is spent: next slot in %s", method, wait.Round(time.Millisecond))}
		}
		if err := b.clock.Sleep(ctx, wait); err != nil {
			b.giveBack(bucket, n)
			return &Error{Method: method, Code: "rate_budget", Class: Retryable, RetryAfter: wait,
				msg: "gave up waiting for the host's Slack rate budget", cause: err}
		}
	}
	return b.observe(bucket, call())
}

// observe empties bucket for Retry-After when err is Slack's rate limit.
func (b *RateBudget) observe(bucket string, err error) error {
	if err == nil {
		return nil
	}
	e := Classify(err)
	if e.Code != "rate_limited" && e.Code != "http_429" && e.Code != "ratelimited" {
		return err
	}
	after := e.RetryAfter
	if after <= 0 {
		after = time.Second
	}
	_ = b.update(func(s *rateState, now time.Time) {
		bk := s.bucket(bucket, b.tier(bucket), now)
		bk.Tokens = min(bk.Tokens, 0)
		if until := now.Add(after); until.After(bk.At) {
			bk.At = until
		}
	})
	return err
}

// take reserves n tokens (or, for low priority, takes them only when more than the reserve
// is there) and says how long to wait before the reserved slot comes.
func (b *RateBudget) take(bucket string, n float64, low bool) (wait time.Duration, ok bool, err error) {
	t := b.tier(bucket)
	err = b.update(func(s *rateState, now time.Time) {
		bk := s.bucket(bucket, t, now)
		if low {
			if bk.At.After(now) || bk.Tokens-n < t.Burst*progressReserve {
				return
			}
			bk.Tokens -= n
			ok = true
			return
		}
		bk.Tokens -= n
		ok = true
		if bk.At.After(now) {
			wait = bk.At.Sub(now)
		}
		if bk.Tokens < 0 {
			wait += time.Duration(-bk.Tokens / t.PerMinute * float64(time.Minute))
		}
	})
	return wait, ok, err
}

// giveBack returns a reservation that will not be used.
func (b *RateBudget) giveBack(bucket string, n float64) {
	t := b.tier(bucket)
	_ = b.update(func(s *rateState, now time.Time) {
		bk := s.bucket(bucket, t, now)
		bk.Tokens = min(bk.Tokens+n, t.Burst)
	})
}

// tier is the host's share of bucket's Slack tier.
func (b *RateBudget) tier(bucket string) Tier {
	name := bucket
	if strings.HasPrefix(name, "post:") {
		name = "post"
	}
	t := Tiers[name]
	return Tier{PerMinute: t.PerMinute * b.share, Burst: max(1, math.Floor(t.Burst*b.share))}
}

// rateState is the budget file: a bucket per tier, and per channel for posts.
type rateState struct {
	Buckets map[string]*rateBucket `json:"buckets"`
}

// rateBucket holds Tokens as of At. At may lie in the future: a 429 moved it there, and no
// token comes before it.
type rateBucket struct {
	Tokens float64   `json:"tokens"`
	At     time.Time `json:"at"`
}

// bucket returns name's bucket refilled to now (a new one is full).
func (s *rateState) bucket(name string, t Tier, now time.Time) *rateBucket {
	bk := s.Buckets[name]
	if bk == nil {
		bk = &rateBucket{Tokens: t.Burst, At: now}
		s.Buckets[name] = bk
	}
	if now.After(bk.At) {
		bk.Tokens = min(t.Burst, bk.Tokens+now.Sub(bk.At).Minutes()*t.PerMinute)
		bk.At = now
	}
	return bk
}

// idleBucket is how long a full per-channel bucket is kept: after that it is the same as a
// new one, and the file stays small on a host that talks to many channels.
const idleBucket = 10 * time.Minute

// update runs fn on the state under an exclusive flock and writes it back.
func (b *RateBudget) update(fn func(s *rateState, now time.Time)) error {
	f, err := os.OpenFile(b.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(b.path), 0o700); err != nil {
			return fmt.Errorf("slack rate budget: %w", err)
		}
		if f, err = os.OpenFile(b.path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
			return fmt.Errorf("slack rate budget: %w", err)
		}
	}
	defer f.Close()
	if err := flock(f); err != nil {
		return fmt.Errorf("slack rate budget: lock: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("slack rate budget: read: %w", err)
	}
	s := rateState{}
	if len(data) > 0 && json.Unmarshal(data, &s) != nil {
		s = rateState{} // torn by a crash: start full
	}
	if s.Buckets == nil {
		s.Buckets = map[string]*rateBucket{}
	}
	now := b.clock.Now()
	fn(&s, now)
	for name, bk := range s.Buckets {
		if strings.HasPrefix(name, "post:") && now.Sub(bk.At) > idleBucket {
			delete(s.Buckets, name)
		}
	}
	out, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("slack rate budget: %w", err)
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("slack rate budget: write: %w", err)
	}
	if _, err := f.WriteAt(out, 0); err != nil {
		return fmt.Errorf("slack rate budget: write: %w", err)
	}
	return nil
}

func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// HostBudget wraps p in the host's rate budget under stateDir at share of Slack's rates, or
// returns p itself when share is 0 (slack.rate_share = 0: each process on its own) or p is
// nil.
func HostBudget(p Poster, stateDir string, share float64) (Poster, error) {
	if p == nil || share == 0 {
		return p, nil
	}
	b, err := NewRateBudget(p, stateDir, share, nil)
	if err != nil {
		return nil, err
	}
	return b, nil
}
