// Package slacktest is the fake Slack Web API of the tests: a slackrecorder.Server tied to
// a test, which closes it when the test ends and fails the test when the server cannot come
// up again. Everything else — recording, faults, the channels' view — is slackrecorder's;
// the names here are aliases, so tests read as they always have.
//
// Production code (try's preview) uses slackrecorder directly: no non-test code imports
// this package.
package slacktest

import (
	"testing"

	"github.com/chatops-executor/chatops-executor/delivery/slackrecorder"
)

// The recorder's types, under the names tests use.
type (
	// Server is a fake Slack Web API; see slackrecorder.Server.
	Server = slackrecorder.Server
	// Fault is a way for a method to fail; see slackrecorder.Fault.
	Fault = slackrecorder.Fault
	// Call is one request as the fake received it.
	Call = slackrecorder.Call
	// Event is one effect Slack accepted.
	Event = slackrecorder.Event
	// Message is a message as the channel shows it.
	Message = slackrecorder.Message
	// File is a file shared with a message.
	File = slackrecorder.File
	// TokenCheck says how a request's credential compared to the server's token.
	TokenCheck = slackrecorder.TokenCheck
	// Bot is the bot user auth.test names.
	Bot = slackrecorder.Bot
	// Team is the workspace auth.test names.
	Team = slackrecorder.Team
	// Channel is a channel conversations.info knows.
	Channel = slackrecorder.Channel
	// Limit is a rate limit the fake enforces on a method; see slackrecorder.Limit.
	Limit = slackrecorder.Limit
)

// Method names and token checks, as in slackrecorder.
const (
	UploadMethod = slackrecorder.UploadMethod
	AnyMethod    = slackrecorder.AnyMethod
	TokenAbsent  = slackrecorder.TokenAbsent
	TokenValid   = slackrecorder.TokenValid
	TokenWrong   = slackrecorder.TokenWrong
)

// Faults and defaults, as in slackrecorder.
var (
	DefaultScopes = slackrecorder.DefaultScopes

	RateLimited = slackrecorder.RateLimited
	HTTPError   = slackrecorder.HTTPError
	SlackError  = slackrecorder.SlackError
	Slow        = slackrecorder.Slow
)

// New starts a fake Slack on 127.0.0.1 (a free port) that accepts token, and closes it when
// the test ends.
func New(t testing.TB, token string) *Server {
	t.Helper()
	if token == "" {
		t.Fatal("slacktest.New: empty token")
	}
	s, err := slackrecorder.Start(token)
	if err != nil {
		t.Fatal(err)
	}
	s.SetFatal(t.Fatalf)
	t.Cleanup(s.Close)
	return s
}

// Start starts a fake Slack outside any test; see slackrecorder.Start.
func Start(token string) (*Server, error) { return slackrecorder.Start(token) }
