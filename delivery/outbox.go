package delivery

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"time"
)

// Kind is what a queued message does.
type Kind string

// The kinds of message a job can queue.
const (
	// KindPost posts a message, in the thread of ThreadOf when set.
	KindPost Kind = "post"
	// KindUpdate edits the earlier post named Target.
	KindUpdate Kind = "update"
	// KindEphemeral shows a message to User only.
	KindEphemeral Kind = "ephemeral"
	// KindUpload shares a file, in the thread of ThreadOf when set.
	KindUpload Kind = "upload"
)

// Message is one thing a job wants said in chat. Messages of a job are delivered in the
// order they were queued, and a later one may refer to an earlier post by its Name — the
// start message from prepare is edited and threaded under by cleanup, a different process,
// possibly after Slack was down for an hour in between.
type Message struct {
	Kind Kind
	// Name, when set, lets later messages of the same job refer to this one ("start").
	// Unique within the job.
	Name    string
	Channel string // channel id (CHAT_CHANNEL)
	// Backend is the chat Channel is in; empty means Slack.
	Backend Backend
	User    string // KindEphemeral: the user who sees it (CHAT_USER_ID)
	// Text is in the chat's markup (Slack mrkdwn, Mattermost Markdown), escaped by the
	// caller; for KindUpload the comment shown with the file (may be empty).
	Text string
	// ThreadOf names an earlier KindPost to reply under (KindPost, KindUpload).
	ThreadOf string
	// Target names the earlier KindPost that KindUpdate edits.
	Target string
	// Filename, Title and Content describe a KindUpload. Content is copied into the outbox
	// when the message is queued, so the caller may delete its file afterwards.
	Filename string
	Title    string
	Content  io.Reader
	// Blocks are Block Kit blocks shown instead of Text (KindPost, KindUpdate), already
	// validated and redacted by the caller; Text stays the notification and the fallback
	// of a Poster without blocks (see BlockPoster).
	Blocks json.RawMessage
}

// State is where a queued message stands.
type State string

// Message states. Only StatePending and StateInFlight are worked on; the others are final
// until an admin runs `flush --retry-failed`.
const (
	StatePending  State = "pending"
	StateInFlight State = "in-flight" // recorded just before each call to Slack
	StateDone     State = "done"
	StateFailed   State = "failed"  // Slack refused it for good
	StateUnknown  State = "unknown" // sent, no answer: may or may not be in the channel
	StateExpired  State = "expired" // waited longer than Options.MaxAge
)

// op is a Message as persisted, with its delivery record. One file per op, rewritten
// atomically on every state change, only by the process that holds the job's send lock.
type op struct {
	Format  int    `json:"format"` // see format.go
	Seq     int    `json:"seq"`
	Kind    Kind   `json:"kind"`
	Name    string `json:"name,omitempty"`
	Channel string `json:"channel"`
	// Backend is the chat the message is for; empty (every file of format 1): Slack.
	Backend  Backend `json:"backend,omitempty"`
	User     string  `json:"user,omitempty"`
	Text     string  `json:"text,omitempty"`
	ThreadOf string  `json:"thread_of,omitempty"`
	Target   string  `json:"target,omitempty"`
	Filename string  `json:"filename,omitempty"`
	Title    string  `json:"title,omitempty"`
	Size     int64   `json:"size,omitempty"`
	// Blocks: an older binary ignores the field and posts Text, which is the whole reply
	// in words; that is a plainer reply, not a misread one, so the format stays as it is.
	Blocks json.RawMessage `json:"blocks,omitempty"`

	Queued time.Time `json:"queued"`
	// Since is when the age limit starts counting: Queued, or the last --retry-failed.
	Since    time.Time `json:"since"`
	State    State     `json:"state"`
	Attempts int       `json:"attempts"`
	LastTry  time.Time `json:"last_try,omitzero"`
	LastErr  string    `json:"last_error,omitempty"`
	Hint     string    `json:"hint,omitempty"`
	TS       string    `json:"ts,omitempty"` // a post's timestamp, once Slack confirmed it
	Note     string    `json:"note,omitempty"`
	// AsPost marks an update whose target never reached the channel, delivered as a new
	// post instead — and so no longer safe to repeat.
	AsPost bool `json:"as_post,omitempty"`
	// TargetGone marks an update whose target Slack no longer has (deleted).
	TargetGone bool `json:"target_gone,omitempty"`
}

// goneCodes are Slack's answers to an edit of a message that cannot be edited any more.
var goneCodes = map[string]bool{"message_not_found": true, "cant_update_message": true, "edit_window_closed": true}

func (o *op) idempotent() bool { return o.Kind == KindUpdate && !o.AsPost }

// poster is the Poster for the op's chat, nil when the outbox has none for it.
func (j *Job) poster(o *op) Poster { return j.ob.posterFor(o.Backend) }

func (o *op) final() bool { return o.State != StatePending && o.State != StateInFlight }

// Outbox is the durable queue of chat messages under <state_dir>/outbox/, one directory per
// job. Every message goes through it, also when Slack is up: writing it down first is what
// lets a later process finish a sequence this one started. See the package doc for the
// delivery guarantee.
type Outbox struct {
	dir     string
	posters map[Backend]Poster // see Use
	opt     Options
}

// Open returns the outbox under stateDir. p may be nil for read-only use (Status); then
// delivering leaves every message waiting.
func Open(stateDir string, p Poster, opt Options) *Outbox {
	o := &Outbox{dir: filepath.Join(stateDir, "outbox"), opt: opt.withDefaults()}
	if p != nil {
		o.Use(BackendSlack, p)
	}
	return o
}

// Dir is the outbox directory, for messages to the admin.
func (o *Outbox) Dir() string { return o.dir }

var jobIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Job returns the queue of one job. id is the trusted job id from JOB_RESPONSE_FILE (any
// other key, e.g. for `try`, must be a plain name: it becomes a directory name).
func (o *Outbox) Job(id string) (*Job, error) {
	if !jobIDRe.MatchString(id) {
		return nil, fmt.Errorf("outbox: invalid job id %q", id)
	}
	return &Job{ob: o, id: id, dir: filepath.Join(o.dir, id)}, nil
}

// Job is one job's ordered queue.
type Job struct {
	ob  *Outbox
	id  string
	dir string
}

// ID is the job's id.
func (j *Job) ID() string { return j.id }

const (
	sendLock   = "lock"        // held while delivering: one sender per job, ever
	appendLock = "append.lock" // held while numbering a new op: never waits for Slack
	closedMark = "closed"      // the job ended; no more messages will come
)

func (j *Job) opPath(seq int) string   { return filepath.Join(j.dir, fmt.Sprintf("op-%06d.json", seq)) }
func (j *Job) dataPath(seq int) string { return filepath.Join(j.dir, fmt.Sprintf("op-%06d.data", seq)) }
