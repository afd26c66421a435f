// Package mattermostrecorder is a Mattermost REST API v4 on 127.0.0.1 that posts nothing
// anywhere: for `try` (what a Mattermost job's reply would look like) and, through package
// mattermosttest, for tests. It
// records every call, checks the bearer token and the documented limits (a post's message
// at most 16383 characters, a root_id that is a root post of the same channel, file_ids
// uploaded to the same channel and not yet attached, the bot a member of the channel),
// and answers as Mattermost does, with its AppError JSON on failure.
//
// Routes, named as delivery.Mattermost names its calls (for Calls and Fail):
//
//	posts.create        POST /api/v4/posts
//	posts.patch         PUT  /api/v4/posts/{id}/patch
//	posts.ephemeral     POST /api/v4/posts/ephemeral (403 unless AllowEphemeral)
//	channels.direct     POST /api/v4/channels/direct
//	files.upload        POST /api/v4/files (multipart: channel_id, files)
//	users.me            GET  /api/v4/users/me
//	users.get           GET  /api/v4/users/{id}
//	channels.members.me GET  /api/v4/channels/{id}/members/me
//	posts.since         GET  /api/v4/channels/{id}/posts?since=
//	posts.thread        GET  /api/v4/posts/{id}/thread
//
// The token is never recorded: a Call says whether the right one came.
package mattermostrecorder

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// MaxMessageRunes is Mattermost's limit on a post's message (model.PostMessageMaxRunesV2).
const MaxMessageRunes = 16383

// MaxFileSize is the fake's file size limit (Mattermost's default is 100 MB).
const MaxFileSize = 100 << 20

// BotID and BotName are the bot account the token belongs to.
const (
	BotID   = "b0tb0tb0tb0tb0tb0tb0tb0tb0"
	BotName = "chatops-bot"
)

// Call is one request as the fake received it.
type Call struct {
	Route string
	Verb  string
	Path  string // with the query
	// Token is true when the request carried "Authorization: Bearer <the token>".
	Token bool
	Body  string // the request body; for files.upload the channel and file name only
	At    time.Time
}

// Post is a post as the channel shows it, edits applied.
type Post struct {
	ID, ChannelID, RootID, UserID, Message string
	Files                                  []File
	Edits                                  int
	Ephemeral                              bool   // shown only to ForUser
	ForUser                                string // Ephemeral's user
	CreateAt                               int64
}

// File is an uploaded file.
type File struct {
	ID, ChannelID, Name string
	Content             []byte
	attached            bool
}

// Fault is one misbehaviour for one call.
type Fault struct {
	// Status is the HTTP status to answer with an AppError (429, 500, 503…).
	Status int
	// Reset is X-RateLimit-Reset for a 429, in seconds.
	Reset int
	// Delay holds the answer back this long (or until the client goes away), after the
	// call took effect: a client with a shorter timeout cannot tell it from a lost call.
	Delay time.Duration
	// AfterEffect makes the call take effect before it fails with Status.
	AfterEffect bool
}

// RateLimited is a 429 with X-RateLimit-Reset: reset seconds.
func RateLimited(reset int) Fault { return Fault{Status: http.StatusTooManyRequests, Reset: reset} }

// HTTPError is an answer with status code.
func HTTPError(code int) Fault { return Fault{Status: code} }

// Server is a fake Mattermost. Its methods are safe for concurrent use.
type Server struct {
	// fatal reports a failure to come up again (Up); nil panics.
	fatal func(format string, args ...any)
	token string
	addr  string

	mu             sync.Mutex
	srv            *http.Server
	ln             net.Listener
	closed         bool
	calls          []Call
	faults         map[string][]Fault
	posts          []*Post
	files          map[string]*File
	users          map[string]string          // id → username
	members        map[string]map[string]bool // channel → user ids
	allowEphemeral bool
	maxFileSize    int
	clock          int64
}

// Start starts a recording Mattermost on 127.0.0.1 (a free port) that accepts token. Call
// Close when done.
func Start(token string) (*Server, error) {
	if token == "" {
		return nil, errors.New("mattermostrecorder: empty token")
	}
	s := &Server{token: token, faults: map[string][]Fault{}, files: map[string]*File{},
		users: map[string]string{BotID: BotName}, members: map[string]map[string]bool{}, clock: time.Now().UnixMilli()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mattermostrecorder: %w", err)
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

// URL is the server's base URL (mattermost.url), the same across Down and Up.
func (s *Server) URL() string { return "http://" + s.addr }

// AddChannel makes a channel with the bot as a member.
func (s *Server) AddChannel(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members[id] = map[string]bool{BotID: true}
}

// AddChannelWithoutBot makes a channel the bot is not a member of.
func (s *Server) AddChannelWithoutBot(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members[id] = map[string]bool{}
}

// AddUser makes a user.
func (s *Server) AddUser(id, username string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id] = username
}

// SetMaxFileSize sets the largest file the server accepts (MaxFileSize by default).
func (s *Server) SetMaxFileSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxFileSize = n
}

// AllowEphemeral gives the bot the create_post_ephemeral permission.
func (s *Server) AllowEphemeral(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowEphemeral = ok
}

// Fail queues faults for route's next calls ("*" for any route), one per call.
func (s *Server) Fail(route string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[route] = append(s.faults[route], faults...)
}

// Calls returns the calls of route ("" for all), in order.
func (s *Server) Calls(route string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if route == "" || c.Route == route {
			out = append(out, c)
		}
	}
	return out
}

// Posts returns the posts of channel ("" for all), in the order made.
func (s *Server) Posts(channel string) []Post {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Post
	for _, p := range s.posts {
		if channel == "" || p.ChannelID == channel {
			out = append(out, *p)
		}
	}
	return out
}

// DirectChannel is the id of the direct channel between the bot and user.
func DirectChannel(user string) string {
	a, b := BotID, user
	if b < a {
		a, b = b, a
	}
	return a[:13] + b[:13]
}

// String describes every post, for failure messages.
func (s *Server) String() string {
	var b strings.Builder
	for _, p := range s.Posts("") {
		fmt.Fprintf(&b, "%s in %s (root %q, %d files, ephemeral %v): %q\n", p.ID, p.ChannelID, p.RootID, len(p.Files), p.Ephemeral, p.Message)
	}
	return b.String()
}

// Close stops the server for good.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.Down()
}

// Down refuses connections until Up.
func (s *Server) Down() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		ln.Close()
		srv.Close()
	}
}

// Up accepts connections again on the same port.
func (s *Server) Up() {
	s.mu.Lock()
	up, closed := s.srv != nil, s.closed
	s.mu.Unlock()
	if up || closed {
		return
	}
	var l net.Listener
	var err error
	for range 50 {
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		if s.fatal == nil {
			panic(fmt.Sprintf("mattermostrecorder: up again on %s: %v", s.addr, err))
		}
		s.fatal("mattermostrecorder: up again on %s: %v", s.addr, err)
	}
	s.serve(l)
}

func (s *Server) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv, s.ln = srv, l
	s.mu.Unlock()
	go srv.Serve(l)
}

func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 26)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
