package delivery

import (
	"context"
	"fmt"
	"regexp"
)

// Backend is the chat platform a message is for. One runner serves jobs from Slack and
// from Mattermost; each message records which, so that a flush (a different process, after
// an upgrade perhaps) hands it to the right Poster.
type Backend string

// The backends. An op without a backend was queued before there was a choice: Slack.
const (
	BackendSlack      Backend = "slack"
	BackendMattermost Backend = "mattermost"
)

var (
	slackChannelRe      = regexp.MustCompile(`^[CGD][A-Z0-9]{2,30}$`)
	mattermostChannelRe = regexp.MustCompile(`^[a-z0-9]{26}$`)
)

// BackendOf tells a chat job's platform from the shape of its CHAT_CHANNEL: a Slack id
// starts with C, G or D and is upper case; a Mattermost id is 26 lower-case letters and
// digits. The shapes cannot overlap. ok is false for anything else, which is not posted
// to: CHAT_CHANNEL is a job variable.
func BackendOf(channel string) (Backend, bool) {
	switch {
	case slackChannelRe.MatchString(channel):
		return BackendSlack, true
	case mattermostChannelRe.MatchString(channel):
		return BackendMattermost, true
	}
	return "", false
}

// orSlack is b, or Slack for an op queued before backends were recorded.
func (b Backend) orSlack() Backend {
	if b == "" {
		return BackendSlack
	}
	return b
}

func (b Backend) valid() error {
	switch b {
	case "", BackendSlack, BackendMattermost:
		return nil
	}
	return fmt.Errorf("unknown chat backend %q", b)
}

// format is the queue format an op for b needs: Slack ops keep format 1, which every
// earlier binary reads the same way (a downgrade still delivers them); a Mattermost op is
// format 2, so a binary that knows only Slack leaves its job alone instead of posting a
// Mattermost channel id to Slack.
func (b Backend) format() int {
	if b == BackendMattermost {
		return 2
	}
	return 1
}

// Use makes p the Poster for messages of backend b (Open's Poster is Slack's), and returns
// the outbox. A message whose backend has no Poster waits, like every message when the
// outbox was opened without one.
func (o *Outbox) Use(b Backend, p Poster) *Outbox {
	if o.posters == nil {
		o.posters = map[Backend]Poster{}
	}
	o.posters[b.orSlack()] = p
	return o
}

// posterFor returns the Poster for backend b, nil when there is none.
func (o *Outbox) posterFor(b Backend) Poster {
	p := o.posters[b.orSlack()]
	if p == nil {
		return nil // a typed nil would pass for a Poster
	}
	return p
}

// EphemeralNoter is a Poster whose ephemeral message may reach the user another way (a
// direct message on Mattermost, when the bot may not post ephemeral ones). The note says
// which way it went, empty for as asked; the outbox records it with the message, so the
// admin reading the report sees which was used.
type EphemeralNoter interface {
	PostEphemeralNote(ctx context.Context, channel, user, text string) (note string, err error)
}
