package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Poster is the chat platform as the executor needs it: four calls, nothing more. The
// outbox drives a Poster; tests drive the outbox with fakes instead of a network mock, and a
// second chat platform would be a second implementation, not a change to the stages.
//
// Implementations return *Error (see Classify) so the outbox knows whether a failed call may
// be repeated without posting twice. Text is in the chat's markup — Slack mrkdwn for Slack,
// Markdown for Mattermost — already escaped by the caller; the timestamps ("ts") are
// whatever id the chat gives a message (a Mattermost post id for Mattermost).
type Poster interface {
	// PostMessage posts text to channel, as a reply in the thread of threadTS when it is
	// not empty, and returns the new message's timestamp (its id for later edits).
	PostMessage(ctx context.Context, channel, threadTS, text string) (ts string, err error)
	// UpdateMessage replaces the text of the message ts in channel. It is idempotent.
	UpdateMessage(ctx context.Context, channel, ts, text string) error
	// PostEphemeral shows text to user only, in channel.
	PostEphemeral(ctx context.Context, channel, user, text string) error
	// UploadFile shares a file in a channel or thread.
	UploadFile(ctx context.Context, f FileUpload) error
}

// FileUpload is a file to share. Content is read once per attempt; the outbox reopens its
// spooled copy for each attempt, so a Poster never has to buffer or rewind it.
type FileUpload struct {
	Channel  string
	ThreadTS string // reply in this thread when not empty
	Filename string // required by Slack
	Title    string
	Comment  string // posted with the file (mrkdwn)
	Size     int64  // exact length of Content; Slack refuses 0
	Content  io.Reader
}

// Class says what a failed call means for trying it again. The distinction that matters is
// not "transient or not" but "could Slack have acted on it": a retried chat.update is
// harmless, a retried chat.postMessage that had in fact arrived is a duplicate reply.
type Class int

const (
	// Retryable: Slack certainly did not act (the request never left this host, Slack
	// refused it with a rate limit or answered with a server error status, or said it is
	// unavailable). Any call may be repeated.
	Retryable Class = iota + 1
	// Uncertain: the request reached Slack and no answer came back (timeout, connection
	// reset, an unreadable answer, Slack's own "internal_error"). Only idempotent calls are
	// repeated; a message post is recorded as "outcome unknown" instead.
	Uncertain
	// Permanent: Slack answered and repeating the call cannot help (channel_not_found,
	// not_in_channel, invalid_auth, msg_too_long…). Someone has to change something.
	Permanent
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "retryable"
	case Uncertain:
		return "uncertain"
	case Permanent:
		return "permanent"
	}
	return "unclassified"
}

// Error is a failed chat call, classified once where the library's error types are known.
// Its text never contains the bot token: the cause is kept only as scrubbed text.
type Error struct {
	// Method is the Web API method, e.g. "chat.postMessage".
	Method string
	// Code is Slack's error code ("not_in_channel"), "http_503", "rate_limited", or empty for
	// a network failure.
	Code  string
	Class Class
	// RetryAfter is how long Slack asked us to wait (rate limits).
	RetryAfter time.Duration
	// Hint tells an admin what to do, when we know.
	Hint  string
	msg   string
	cause error
}

func (e *Error) Error() string {
	if e.msg == "" {
		return e.Method + ": " + e.Code
	}
	return e.Method + ": " + e.msg
}

// Unwrap gives errors.Is access to context errors. The cause's own text is never shown.
func (e *Error) Unwrap() error { return e.cause }

// Classify returns err as an *Error. An error from a Poster that did not classify it (a fake,
// a future platform) is Uncertain: the safe reading of "something went wrong" is that it may
// have arrived.
func Classify(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Method: "chat", Class: Uncertain, msg: err.Error(), cause: err}
}

// hints for the Slack error codes an admin can act on.
var hints = map[string]string{
	"not_in_channel":      "invite the bot to the channel (/invite @your-bot in that channel), then run 'chatops-executor flush --retry-failed'",
	"channel_not_found":   "the channel id does not exist or the bot cannot see it (private channel: invite the bot)",
	"is_archived":         "the channel is archived",
	"invalid_auth":        "the bot token is not valid: check slack.token_file or SLACK_BOT_TOKEN",
	"not_authed":          "no bot token was sent: check slack.token_file or SLACK_BOT_TOKEN",
	"token_revoked":       "the bot token was revoked: install the app again and update slack.token_file",
	"token_expired":       "the bot token expired: update slack.token_file",
	"account_inactive":    "the bot's account is deactivated",
	"missing_scope":       "the bot token lacks a scope: it needs chat:write and files:write",
	"msg_too_long":        "the message is longer than Slack accepts: lower slack.inline_limit",
	"message_not_found":   "the message to edit was deleted",
	"user_not_in_channel": "the requester is not in the channel, so an ephemeral message cannot reach them",
}

// retryableCodes are ok:false answers where Slack did not act.
var retryableCodes = map[string]bool{
	"ratelimited": true, "rate_limited": true, "service_unavailable": true, "request_timeout": true,
	"team_added_to_org": true,
}

// uncertainCodes are ok:false answers after which Slack says part of the operation may have
// succeeded.
var uncertainCodes = map[string]bool{"internal_error": true, "fatal_error": true}

func codeClass(code string) Class {
	switch {
	case retryableCodes[code]:
		return Retryable
	case uncertainCodes[code]:
		return Uncertain
	}
	return Permanent
}

// tokenRe catches anything shaped like a Slack token, in case one reaches an error text by a
// path we did not foresee (a proxy echoing the request, a library change).
var tokenRe = regexp.MustCompile(`xox[a-z]-[0-9A-Za-z-]+`)

// scrub removes the token, and anything shaped like one, from s.
func scrub(s, token string) string {
	if token != "" {
		s = strings.ReplaceAll(s, token, "[MASKED]")
	}
	return tokenRe.ReplaceAllString(s, "[MASKED]")
}

func errorf(method string, class Class, format string, args ...any) *Error {
	return &Error{Method: method, Class: class, msg: fmt.Sprintf(format, args...)}
}
