// Package mattermosttest is the fake Mattermost REST API v4 of the tests: a
// mattermostrecorder.Server tied to a test, closed when the test ends. Recording, limits
// and faults are mattermostrecorder's; the names here are aliases.
package mattermosttest

import (
	"testing"

	"github.com/chatops-executor/chatops-executor/delivery/mattermostrecorder"
)

// The recorder's types, under the names tests use.
type (
	// Server is a fake Mattermost; see mattermostrecorder.Server.
	Server = mattermostrecorder.Server
	// Call is one request as the fake received it.
	Call = mattermostrecorder.Call
	// Post is a post as the channel shows it.
	Post = mattermostrecorder.Post
	// File is an uploaded file.
	File = mattermostrecorder.File
	// Fault is one misbehaviour for one call.
	Fault = mattermostrecorder.Fault
)

// The recorder's limits and bot account.
const (
	MaxMessageRunes = mattermostrecorder.MaxMessageRunes
	MaxFileSize     = mattermostrecorder.MaxFileSize
	BotID           = mattermostrecorder.BotID
	BotName         = mattermostrecorder.BotName
)

// Faults and helpers, as in mattermostrecorder.
var (
	RateLimited   = mattermostrecorder.RateLimited
	HTTPError     = mattermostrecorder.HTTPError
	DirectChannel = mattermostrecorder.DirectChannel
)

// New starts a fake Mattermost that accepts token, closed when the test ends.
func New(t testing.TB, token string) *Server {
	t.Helper()
	if token == "" {
		t.Fatal("mattermosttest.New: empty token")
	}
	s, err := mattermostrecorder.Start(token)
	if err != nil {
		t.Fatal(err)
	}
	s.SetFatal(t.Fatalf)
	t.Cleanup(s.Close)
	return s
}
