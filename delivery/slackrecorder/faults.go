package slackrecorder

import (
	"fmt"
	"net/http"
	"time"
)

// Fault is one misbehaviour for one call. Status or Error make the call fail; Delay alone
// makes it slow: Slack acts on the call at once but answers only after Delay (or when the
// client gives up), which a client with a shorter timeout cannot tell from a lost call.
type Fault struct {
	// Status, when not zero, is the HTTP status to answer (429, 500, 503…) with an HTML
	// body, as Slack's front end does.
	Status int
	// RetryAfter is the Retry-After header sent with Status, in seconds ("7"). slack-go
	// needs it to recognise a 429 as a rate limit.
	RetryAfter string
	// Error, when not empty (and Status is zero), is answered as {"ok":false,"error":Error}
	// with HTTP 200.
	Error string
	// Delay holds the answer back this long, or until the client goes away.
	Delay time.Duration
	// AfterEffect makes Slack act on the call (post the message…) before failing with
	// Status or Error: the ambiguous case of a call that worked but did not look so.
	AfterEffect bool
}

// RateLimited is a 429 answer with Retry-After set to retryAfter in whole seconds.
func RateLimited(retryAfter time.Duration) Fault {
	return Fault{Status: http.StatusTooManyRequests, RetryAfter: fmt.Sprint(int64(retryAfter / time.Second))}
}

// HTTPError is an answer with HTTP status code (500, 502, 503…).
func HTTPError(code int) Fault { return Fault{Status: code} }

// SlackError is an ok:false answer with Slack's error code ("not_in_channel",
// "internal_error"…).
func SlackError(code string) Fault { return Fault{Error: code} }

// Slow is a call that Slack acts on at once but answers only after d.
func Slow(d time.Duration) Fault { return Fault{Delay: d} }

func (f Fault) failing() bool { return f.Status != 0 || f.Error != "" }

// Fail queues faults for method's next calls, one per call, in order; later calls are
// answered normally again (or by FailAlways). method is a Web API method such as
// "chat.postMessage", UploadMethod, or AnyMethod.
func (s *Server) Fail(method string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = append(s.faults[method], faults...)
}

// FailAlways applies f to every call of method once the faults queued by Fail ran out.
// The zero Fault turns it off.
func (s *Server) FailAlways(method string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == (Fault{}) {
		delete(s.always, method)
	} else {
		s.always[method] = f
	}
}

// Heal drops every fault set by Fail and FailAlways.
func (s *Server) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string][]Fault{}
	s.always = map[string]Fault{}
}
