package slackrecorder

import (
	"slices"
)

// DefaultScopes are the scopes auth.test reports until SetScopes: the ones
// slack-app-manifest.yml grants.
var DefaultScopes = []string{"chat:write", "files:write", "channels:read", "groups:read", "channels:history", "groups:history", "reactions:read", "usergroups:read"}

// Bot is the bot user auth.test names.
type Bot struct{ ID, Name, BotID string }

// Team is the workspace auth.test names.
type Team struct{ ID, Name, Domain string }

// Channel is a channel conversations.info knows.
type Channel struct {
	Name     string
	Private  bool
	Member   bool // the bot is in it
	Archived bool
}

// SetScopes sets the scopes auth.test reports for the token (and conversations.info checks).
func (s *Server) SetScopes(scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scopes = slices.Clone(scopes)
}

// SetIdentity sets the bot user and workspace auth.test answers with.
func (s *Server) SetIdentity(bot Bot, team Team) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bot, s.team = bot, team
}

// AddChannel makes channel id known to conversations.info.
func (s *Server) AddChannel(id string, ch Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[id] = ch
}
