package slackrecorder

import (
	"fmt"
	"math"
	"net/http"
	"time"
)

// Limit is a rate limit the fake enforces on one method, the way Slack does per app and
// workspace (this server has one token, so per token): a bucket of Burst calls, refilled at
// PerMinute. A call that finds the bucket empty is answered 429 with a Retry-After of the
// whole seconds until the next call would be allowed, and does not count against the limit.
type Limit struct {
	PerMinute float64
	Burst     int
	// PerChannel keeps one bucket per channel parameter (chat.postMessage: about one a
	// second per channel).
	PerChannel bool
}

// limiter is a method's Limit and its buckets. s.mu guards it.
type limiter struct {
	Limit
	buckets map[string]*limitBucket
}

type limitBucket struct {
	tokens float64
	at     time.Time
}

// SetLimit makes the server enforce l on method from now on; the zero Limit removes it.
// Limits apply before the faults of Fail and FailAlways.
func (s *Server) SetLimit(method string, l Limit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limits == nil {
		s.limits = map[string]*limiter{}
	}
	if l == (Limit{}) {
		delete(s.limits, method)
		return
	}
	if l.PerMinute <= 0 || l.Burst < 1 {
		panic(fmt.Sprintf("slackrecorder: limit for %s needs PerMinute > 0 and Burst >= 1, got %+v", method, l))
	}
	s.limits[method] = &limiter{Limit: l, buckets: map[string]*limitBucket{}}
}

// limited returns the 429 Fault for a call of method that exceeds its limit, or the zero
// Fault. s.mu is held.
func (s *Server) limited(method string, params map[string]string, now time.Time) Fault {
	lm := s.limits[method]
	if lm == nil {
		return Fault{}
	}
	key := ""
	if lm.PerChannel {
		key = params["channel"]
		if key == "" {
			key = params["channel_id"]
		}
	}
	b := lm.buckets[key]
	if b == nil {
		b = &limitBucket{tokens: float64(lm.Burst), at: now}
		lm.buckets[key] = b
	}
	b.tokens = math.Min(float64(lm.Burst), b.tokens+now.Sub(b.at).Minutes()*lm.PerMinute)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return Fault{}
	}
	wait := (1 - b.tokens) / lm.PerMinute * 60
	s.throttled[method]++
	return Fault{Status: http.StatusTooManyRequests, RetryAfter: fmt.Sprint(int64(math.Ceil(wait)))}
}

// Throttled is how many calls of method (every method for AnyMethod) a Limit answered 429.
func (s *Server) Throttled(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if method != AnyMethod {
		return s.throttled[method]
	}
	n := 0
	for _, c := range s.throttled {
		n += c
	}
	return n
}
