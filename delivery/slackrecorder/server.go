// Package slackrecorder is a Slack Web API on 127.0.0.1 that posts nothing anywhere: it
// answers the calls chatops-executor makes, records every call, keeps a view of what the
// channels show, and can be told to misbehave (refuse connections, rate limit, answer 5xx or
// ok:false, answer too late).
//
// Point a client at Server.APIURL: delivery.NewSlack(token, srv.APIURL()) in process, or
// slack.api_url in the config of an executor started as a subprocess. Then assert on
// Server.Messages (the channels as a person would see them), Server.Events (every accepted
// effect, in order) or Server.Calls (every request, as received).
//
// The fake implements, as Slack does and as slack-go calls them (form-encoded bodies with a
// token parameter; JSON bodies with an Authorization header are accepted too):
//
//   - chat.postMessage (channel, text, thread_ts; blocks or attachments count as content)
//   - chat.update (channel, ts, text): only messages posted with chat.postMessage can be
//     edited, anything else is message_not_found
//   - chat.postEphemeral (channel, user, text)
//   - files.getUploadURLExternal (filename, length): hands out an upload URL on the host
//     the client called (see SetUploadHost)
//   - the upload itself: a multipart POST of the "file" field to that URL, recorded as
//     method UploadMethod
//   - files.completeUploadExternal (files, channel_id or channels, initial_comment,
//     thread_ts): shares the uploaded files as one message
//   - auth.test: the bot and workspace (SetIdentity), with the token's scopes in the
//     X-OAuth-Scopes header (SetScopes; DefaultScopes unless set)
//   - conversations.info (channel): the channels made with AddChannel, is_member included;
//     a private channel the bot is not in, or any other, is channel_not_found, and without
//     channels:read (groups:read for a private channel) it is missing_scope
//   - conversations.history (channel, oldest) and conversations.replies (channel, ts): what
//     the channel holds, every message marked as the bot's
//   - reactions.get (channel, timestamp) and usergroups.users.list (usergroup): the
//     reactions React put on a message and the members SetGroup gave a group (reactions.go)
//
// A request without a token is answered not_authed, one with a wrong token invalid_auth.
// Any other method is unknown_method.
//
// try uses it to draw what the channel would show. Tests use it through package slacktest,
// which ties a server to the test's lifetime. From an end-to-end test that runs the executor
// binary:
//
//	fake := slacktest.New(t, "xoxb-test-token")
//	fake.Fail("chat.postMessage", slacktest.RateLimited(time.Second)) // the first post is throttled
//	cfg := "[slack]\napi_url = " + strconv.Quote(fake.APIURL()) + "\n" // plus the token file
//	runExecutor(t, cfg, "cleanup", ...)
//	msgs := fake.Messages()
//	if len(msgs) != 1 || !strings.Contains(msgs[0].Text, "succeeded") {
//		t.Errorf("Slack shows:\n%s", fake)
//	}
//
// The token is never recorded: Calls say whether a valid token came, and how, but neither
// the token parameter nor the Authorization header is kept, so printing a Call or a Message
// cannot leak it.
package slackrecorder

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// UploadMethod is the method name under which Calls, Fail and FailAlways know the upload
// POST to the URL files.getUploadURLExternal handed out (it is not a Web API method).
const UploadMethod = "files.upload"

// AnyMethod, given to Fail or FailAlways, matches every method (including UploadMethod)
// that has no fault of its own.
const AnyMethod = "*"

// uploadPath is where upload URLs point, like Slack's https://files.slack.com/upload/v1/….
const uploadPath = "/upload/v1/"

// Server is a fake Slack Web API. Its methods are safe for concurrent use.
type Server struct {
	// fatal reports a failure to come up again (Up); nil panics. slacktest.New sets it to
	// the test's Fatalf.
	fatal func(format string, args ...any)
	token string
	addr  string

	mu         sync.Mutex
	srv        *http.Server // nil while down
	ln         net.Listener // srv's
	closed     bool         // the test ended
	calls      []*Call
	faults     map[string][]Fault // per method, consumed in order
	always     map[string]Fault   // per method, once faults ran out
	events     []Event
	msgs       []*Message // in the order Slack accepted them
	uploads    map[string]*upload
	nextTS     int
	nextFile   int
	uploadHost string
	scopes     []string
	bot        Bot
	team       Team
	channels   map[string]Channel
	limits     map[string]*limiter // SetLimit
	throttled  map[string]int      // 429s answered by limits, per method
	control    *controlState       // reactions and user groups (reactions.go)
}

// upload is a file between files.getUploadURLExternal and its completion.
type upload struct {
	filename string
	length   int64
	content  []byte
	uploaded bool
}

// Start starts a recording Slack on 127.0.0.1 (a free port) that accepts token: for a
// program that shows what a Slack client would post (chatops-executor try), and, through
// package slacktest, for tests. Call Close when done. Up on such a server panics if the
// port cannot be had back, unless SetFatal said otherwise.
func Start(token string) (*Server, error) {
	if token == "" {
		return nil, errors.New("slackrecorder: empty token")
	}
	s := &Server{token: token, faults: map[string][]Fault{}, always: map[string]Fault{},
		uploads: map[string]*upload{}, scopes: slices.Clone(DefaultScopes), channels: map[string]Channel{},
		throttled: map[string]int{},
		bot:       Bot{ID: "U0BOT0001", Name: "chatops", BotID: "B0BOT0001"},
		team:      Team{ID: "T0TEAM001", Name: "Example", Domain: "example"}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("slackrecorder: %w", err)
	}
	s.addr = l.Addr().String()
	s.serve(l)
	return s, nil
}

// SetFatal makes Up report a failure to come up again through fatal instead of panicking.
func (s *Server) SetFatal(fatal func(format string, args ...any)) {
	s.mu.Lock()
	s.fatal = fatal
	s.mu.Unlock()
}

// Close stops the server for good: connections are refused, and Up does nothing.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.Down()
}

// APIURL is the Web API base URL, with its trailing slash, e.g. "http://127.0.0.1:4711/api/".
// It stays the same across Down and Up.
func (s *Server) APIURL() string { return "http://" + s.addr + "/api/" }

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

func (s *Server) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv, s.ln = srv, l
	s.mu.Unlock()
	go srv.Serve(l) // returns ErrServerClosed on Down
}

// Down closes the listener and every open connection: connections to the port are refused
// (and calls in progress cut off) until Up. It does nothing when already down.
func (s *Server) Down() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		// Closed here too, not only by srv: Serve may not have started yet, and until it
		// does, srv.Close would leave the port listening.
		ln.Close()
		srv.Close()
	}
}

// Up accepts connections again, on the same port. It does nothing when already up, and
// fails the test if the port cannot be had back.
func (s *Server) Up() {
	s.mu.Lock()
	up, closed := s.srv != nil, s.closed
	s.mu.Unlock()
	if up || closed {
		return
	}
	var l net.Listener
	var err error
	for range 50 { // the port is ours; a closing listener may hold it for a moment
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		if s.fatal == nil {
			panic(fmt.Sprintf("slackrecorder: up again on %s: %v", s.addr, err))
		}
		s.fatal("slackrecorder: up again on %s: %v", s.addr, err)
	}
	s.serve(l)
}

// SetUploadHost makes files.getUploadURLExternal hand out upload URLs on host (host:port,
// e.g. another Server's Addr) instead of the host the client called: to check that a client
// does not send its token to a host other than the API's. "" restores the default.
func (s *Server) SetUploadHost(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploadHost = host
}

// nextFault takes the fault for a call of method. s.mu is held.
func (s *Server) nextFault(method string) Fault {
	for _, m := range []string{method, AnyMethod} {
		if q := s.faults[m]; len(q) > 0 {
			s.faults[m] = q[1:]
			return q[0]
		}
	}
	for _, m := range []string{method, AnyMethod} {
		if f, ok := s.always[m]; ok {
			return f
		}
	}
	return Fault{}
}

// TokenCheck says how a credential in a request compared to the server's token.
type TokenCheck int

const (
	// TokenAbsent: the request carried none.
	TokenAbsent TokenCheck = iota
	// TokenValid: it was the server's token.
	TokenValid
	// TokenWrong: it was something else (or a malformed Authorization header).
	TokenWrong
)

func (c TokenCheck) String() string {
	switch c {
	case TokenAbsent:
		return "absent"
	case TokenValid:
		return "valid"
	case TokenWrong:
		return "wrong"
	}
	return fmt.Sprintf("TokenCheck(%d)", int(c))
}

// Call is one request as the fake received it. It never holds the token.
type Call struct {
	// Method is the Web API method ("chat.postMessage") or UploadMethod.
	Method string
	// Time is when the request arrived.
	Time time.Time
	// ContentType is the request's media type: "application/x-www-form-urlencoded" (what
	// slack-go sends to Web API methods), "application/json" or "multipart/form-data"
	// (the upload).
	ContentType string
	// Params are the request's parameters, the first value of each: form fields (body and
	// query string), the top-level fields of a JSON body (a value that is not a string as
	// its JSON text: false, ["a"]), or the non-file fields of a multipart upload. The token
	// parameter is left out.
	Params map[string]string
	// Header is how the Authorization header's bearer token compared; Param how the token
	// parameter did (form-encoded bodies only: Slack reads no token from a JSON body).
	Header, Param TokenCheck
	// Auth says the call was authenticated: Header or Param was valid.
	Auth bool
	// Filename and Size describe the file part of an upload (Size 0 for other calls).
	Filename string
	Size     int64
	// Status is the HTTP status answered, 0 while the answer is still held back (Fault.Delay).
	Status int
	// Error is the ok:false error code answered, "" for ok:true or a non-200 Status.
	Error string
}

// Calls returns the calls of method (every call for AnyMethod), in the order they arrived.
// A call is recorded as soon as its request was read, before any Fault.Delay.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == AnyMethod || c.Method == method {
			cc := *c
			cc.Params = make(map[string]string, len(c.Params))
			for k, v := range c.Params {
				cc.Params[k] = v
			}
			out = append(out, cc)
		}
	}
	return out
}

// File is an uploaded file as shared in a channel.
type File struct {
	ID string
	// Filename is the name given to files.getUploadURLExternal.
	Filename string
	// Title is the title given to files.completeUploadExternal, or Filename when none was.
	Title string
	// Comment is the initial_comment it was shared with (also its message's Text).
	Comment string
	// Content is every byte uploaded. It must not be modified.
	Content []byte
}

// Event is one effect Slack accepted, in the order it accepted them: a post, an edit, an
// ephemeral message or a file share. Calls that failed leave none.
type Event struct {
	// Method is "chat.postMessage", "chat.update", "chat.postEphemeral" or
	// "files.completeUploadExternal".
	Method  string
	Time    time.Time
	Channel string
	// TS is the message's ts: the new message's, or for chat.update the edited one's.
	TS string
	// ThreadTS is the ts of the thread's parent for a message in a thread (also for an
	// edit of one), "" otherwise.
	ThreadTS string
	// User is the recipient of an ephemeral message.
	User string
	// Text is the text posted, the new text of an edit, or the initial comment of a share.
	Text string
	// Files are the files shared.
	Files []File
}

// Events returns every accepted effect, in order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// Message is a message as the channel shows it, with its edits applied.
type Message struct {
	Channel string
	TS      string
	// ThreadTS is the ts of the thread's parent for a reply in a thread, "" otherwise.
	ThreadTS string
	// Text is the current text, after every chat.update; for a file share the initial
	// comment.
	Text string
	// History is every text the message had, the posted one first; the last is Text.
	// More than one entry means it was edited.
	History []string
	// Blocks is the message's Block Kit blocks as sent (a JSON array), "" for none.
	Blocks string
	// Ephemeral marks a chat.postEphemeral message, shown only to User.
	Ephemeral bool
	User      string
	// Files are the files shared with this message (files.completeUploadExternal).
	Files []File
	// Time is when it was posted; Edited when it was last edited (zero if never).
	Time, Edited time.Time
}

// Messages returns every message in every channel, ephemeral ones and file shares
// included, in the order they were posted (edits do not move a message).
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = *m
		out[i].History = slices.Clone(m.History)
		out[i].Files = slices.Clone(m.Files)
	}
	return out
}

// Channel returns the messages of one channel, in the order they were posted.
func (s *Server) Channel(channel string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.Channel == channel {
			out = append(out, m)
		}
	}
	return out
}

// Thread returns the replies in the thread of the message ts in channel, oldest first.
func (s *Server) Thread(channel, ts string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.Channel == channel && m.ThreadTS == ts {
			out = append(out, m)
		}
	}
	return out
}

// String describes the channels' contents, for test failure messages: one line per
// message, thread replies indented under their parent, file contents by size only.
func (s *Server) String() string {
	var b strings.Builder
	msgs := s.Messages()
	line := func(m Message, indent string) {
		fmt.Fprintf(&b, "%s%s %s", indent, m.Channel, m.TS)
		if m.Ephemeral {
			fmt.Fprintf(&b, " (ephemeral to %s)", m.User)
		}
		fmt.Fprintf(&b, " %q", m.Text)
		if len(m.History) > 1 {
			fmt.Fprintf(&b, " (edited %d times)", len(m.History)-1)
		}
		for _, f := range m.Files {
			fmt.Fprintf(&b, " [file %s %q %d bytes]", f.Filename, f.Title, len(f.Content))
		}
		b.WriteByte('\n')
	}
	parents := map[string]bool{}
	for _, m := range msgs {
		if m.ThreadTS == "" {
			parents[m.Channel+" "+m.TS] = true
		}
	}
	for _, m := range msgs {
		if m.ThreadTS != "" && parents[m.Channel+" "+m.ThreadTS] {
			continue
		}
		line(m, "")
		if m.ThreadTS == "" {
			for _, r := range msgs {
				if r.Channel == m.Channel && r.ThreadTS == m.TS {
					line(r, "    ")
				}
			}
		}
	}
	return b.String()
}
