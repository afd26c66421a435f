package control

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeReader answers from a script of reaction states, one per read (the last repeats).
type fakeReader struct {
	mu       sync.Mutex
	states   []map[string][]string
	errs     []error // per read, before states; nil entries read normally
	groups   map[string][]string
	groupErr error
	reads    []time.Time
}

func (f *fakeReader) Reactions(ctx context.Context, channel, ts string) (map[string][]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, time.Now())
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		if err != nil {
			return nil, err
		}
	}
	if len(f.states) == 0 {
		return nil, nil
	}
	s := f.states[0]
	if len(f.states) > 1 {
		f.states = f.states[1:]
	}
	return s, nil
}

func (f *fakeReader) GroupMembers(ctx context.Context, group string) ([]string, error) {
	if f.groupErr != nil {
		return nil, f.groupErr
	}
	return f.groups[group], nil
}

type limited struct{ after time.Duration }

func (l limited) Error() string          { return "rate limited" }
func (l limited) Backoff() time.Duration { return l.after }
func req(needed int, timeout time.Duration) Request {
	return Request{Channel: "C1", TS: "1.1", Requester: "UREQ", Approvers: []string{"UBOB", "UCAROL"},
		Needed: needed, Deadline: time.Now().Add(timeout), Interval: 5 * time.Millisecond}
}

func TestWaitOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		needed int
		states []map[string][]string
		want   Outcome
		by     string
	}{
		{"one approval", 1, []map[string][]string{{}, {"white_check_mark": {"UBOB"}}}, Approved, "[UBOB]"},
		{"requester and strangers ignored", 1, []map[string][]string{{"white_check_mark": {"UREQ", "UEVE"}, "x": {"UEVE", "UREQ"}}}, Expired, "[]"},
		{"two distinct needed, one given twice", 2, []map[string][]string{{"white_check_mark": {"UBOB", "UBOB", "UREQ"}}}, Expired, "[UBOB]"},
		{"two given across reads", 2, []map[string][]string{{"white_check_mark": {"UBOB"}}, {"white_check_mark": {"UCAROL"}}}, Approved, "[UBOB UCAROL]"},
		{"refusal by an approver", 2, []map[string][]string{{"white_check_mark": {"UBOB"}}, {"white_check_mark": {"UBOB"}, "x": {"UCAROL"}}}, Refused, "[UCAROL]"},
		{"refusal wins over the last approval in one read", 1, []map[string][]string{{"white_check_mark": {"UBOB"}, "x": {"UCAROL"}}}, Refused, "[UCAROL]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeReader{states: tc.states}
			res := Wait(context.Background(), f, req(tc.needed, 300*time.Millisecond))
			if res.Outcome != tc.want || fmtList(res.By) != tc.by {
				t.Errorf("got %s by %v, want %s by %s", res.Outcome, res.By, tc.want, tc.by)
			}
		})
	}
}

func fmtList(l []string) string { return "[" + strings.Join(l, " ") + "]" }

func TestWaitGroupMembersApprove(t *testing.T) {
	f := &fakeReader{states: []map[string][]string{{"white_check_mark": {"UDAVE"}}}, groups: map[string][]string{"SOPS": {"UDAVE", "UREQ"}}}
	r := req(1, time.Minute)
	r.Approvers, r.Groups = nil, []string{"SOPS"}
	if res := Wait(context.Background(), f, r); res.Outcome != Approved || fmtList(res.By) != "[UDAVE]" {
		t.Errorf("got %s by %v", res.Outcome, res.By)
	}
	// The requester is in the group too: still not an approver.
	f = &fakeReader{states: []map[string][]string{{"white_check_mark": {"UREQ"}}}, groups: map[string][]string{"SOPS": {"UDAVE", "UREQ"}}}
	r.Deadline = time.Now().Add(100 * time.Millisecond)
	if res := Wait(context.Background(), f, r); res.Outcome != Expired {
		t.Errorf("requester in the group: got %s", res.Outcome)
	}
}

func TestWaitFailsClosed(t *testing.T) {
	down := errors.New("connection refused")
	f := &fakeReader{errs: []error{down, down, down}, states: []map[string][]string{{"white_check_mark": {"UBOB"}}}}
	res := Wait(context.Background(), f, req(1, time.Minute))
	if res.Outcome != Failed || !errors.Is(res.Err, down) || len(f.reads) != MaxFailures {
		t.Errorf("got %s (%v) after %d reads", res.Outcome, res.Err, len(f.reads))
	}
	// Failures that are not in a row do not add up.
	f = &fakeReader{errs: []error{down, down, nil, down, down}, states: []map[string][]string{{}, {"white_check_mark": {"UBOB"}}}}
	if res := Wait(context.Background(), f, req(1, time.Minute)); res.Outcome != Approved {
		t.Errorf("interrupted failures: got %s (%v)", res.Outcome, res.Err)
	}
	// An unresolvable group fails closed too.
	f = &fakeReader{groupErr: down, states: []map[string][]string{{"white_check_mark": {"UBOB"}}}}
	r := req(1, time.Minute)
	r.Groups = []string{"SOPS"}
	if res := Wait(context.Background(), f, r); res.Outcome != Failed {
		t.Errorf("group look-up down: got %s", res.Outcome)
	}
}

func TestWaitBacksOffOnRateLimitWithoutFailing(t *testing.T) {
	f := &fakeReader{errs: []error{limited{150 * time.Millisecond}, limited{150 * time.Millisecond}, limited{150 * time.Millisecond}, limited{150 * time.Millisecond}},
		states: []map[string][]string{{"white_check_mark": {"UBOB"}}}}
	res := Wait(context.Background(), f, req(1, time.Minute))
	if res.Outcome != Approved {
		t.Fatalf("got %s (%v): rate limits must not count as failures", res.Outcome, res.Err)
	}
	for i := 1; i < len(f.reads); i++ {
		if gap := f.reads[i].Sub(f.reads[i-1]); gap < 140*time.Millisecond {
			t.Errorf("read %d came %s after a rate limit asking for 150ms", i+1, gap)
		}
	}
}

func TestWaitStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeReader{}
	done := make(chan Result)
	go func() { done <- Wait(ctx, f, req(1, time.Hour)) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case res := <-done:
		if res.Outcome != Stopped {
			t.Errorf("got %s", res.Outcome)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not end with its context")
	}
}

func TestWatchCancel(t *testing.T) {
	f := &fakeReader{states: []map[string][]string{
		{"octagonal_sign": {"UEVE"}, "x": {"UOPS"}},
		{"octagonal_sign": {"UEVE", "UOPS"}},
	}}
	w := Watch{Channel: "C1", TS: "1.1", Allowed: []string{"UREQ", "UOPS"}, Interval: 5 * time.Millisecond}
	if by := WatchCancel(context.Background(), f, w); by != "UOPS" || len(f.reads) != 2 {
		t.Errorf("cancelled by %q after %d reads, want UOPS after 2", by, len(f.reads))
	}
	// Named users can cancel while a group cannot be resolved; failed reads only delay.
	f = &fakeReader{groupErr: errors.New("down"), errs: []error{errors.New("502"), limited{20 * time.Millisecond}},
		states: []map[string][]string{{"octagonal_sign": {"UREQ"}}}}
	w.Groups = []string{"SOPS"}
	if by := WatchCancel(context.Background(), f, w); by != "UREQ" {
		t.Errorf("got %q", by)
	}
	// Nobody allowed: it runs until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	f = &fakeReader{states: []map[string][]string{{"octagonal_sign": {"UEVE"}}}}
	if by := WatchCancel(ctx, f, Watch{Allowed: []string{"UREQ"}, Interval: 5 * time.Millisecond}); by != "" {
		t.Errorf("cancelled by %q", by)
	}
}
