package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/atomicfile"
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
	User    string // KindEphemeral: the user who sees it (CHAT_USER_ID)
	// Text is Slack mrkdwn, escaped by the caller; for KindUpload the comment shown with
	// the file (may be empty).
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
	Seq      int    `json:"seq"`
	Kind     Kind   `json:"kind"`
	Name     string `json:"name,omitempty"`
	Channel  string `json:"channel"`
	User     string `json:"user,omitempty"`
	Text     string `json:"text,omitempty"`
	ThreadOf string `json:"thread_of,omitempty"`
	Target   string `json:"target,omitempty"`
	Filename string `json:"filename,omitempty"`
	Title    string `json:"title,omitempty"`
	Size     int64  `json:"size,omitempty"`

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

func (o *op) final() bool { return o.State != StatePending && o.State != StateInFlight }

// Outbox is the durable queue of chat messages under <state_dir>/outbox/, one directory per
// job. Every message goes through it, also when Slack is up: writing it down first is what
// lets a later process finish a sequence this one started. See the package doc for the
// delivery guarantee.
type Outbox struct {
	dir    string
	poster Poster
	opt    Options
}

// Open returns the outbox under stateDir. p may be nil for read-only use (Status); then
// delivering leaves every message waiting.
func Open(stateDir string, p Poster, opt Options) *Outbox {
	return &Outbox{dir: filepath.Join(stateDir, "outbox"), poster: p, opt: opt.withDefaults()}
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

// Enqueue writes msgs to the job's queue, in order, without sending anything. A reference
// (ThreadOf, Target) must name an earlier post of this job: check with Has first when the
// earlier message is optional (no start message when slack.ack is off).
func (j *Job) Enqueue(msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	var unlock func()
	for try := 0; ; try++ {
		if err := os.MkdirAll(j.dir, 0o700); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		var err error
		unlock, err = lock(context.Background(), filepath.Join(j.dir, appendLock), true)
		if errors.Is(err, fs.ErrNotExist) && try < 3 {
			continue // swept between MkdirAll and the lock: make it again
		}
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		break
	}
	defer unlock()
	ops, err := j.read()
	if err != nil {
		return err
	}
	names := map[string]Kind{}
	next := 1
	for _, o := range ops {
		if o.Name != "" {
			names[o.Name] = o.Kind
		}
		next = o.Seq + 1
	}
	// All or nothing, as far as validation goes: a bad message must not leave the ones
	// before it queued without it.
	seen := maps.Clone(names)
	for i, m := range msgs {
		if err := validate(m, seen); err != nil {
			return fmt.Errorf("outbox: message %d of job %s: %w", i+1, j.id, err)
		}
		if m.Name != "" {
			seen[m.Name] = m.Kind
		}
	}
	now := j.ob.opt.Clock.Now().UTC()
	for i, m := range msgs {
		o := op{Seq: next, Kind: m.Kind, Name: m.Name, Channel: m.Channel, User: m.User, Text: m.Text,
			ThreadOf: m.ThreadOf, Target: m.Target, Filename: m.Filename, Title: m.Title,
			Queued: now, Since: now, State: StatePending}
		if m.Kind == KindUpload {
			// The data lands under its final name before the op that points at it exists, so
			// a sender never sees an upload without its content.
			n, err := atomicfile.WriteFrom(j.dataPath(next), m.Content, 0o600)
			if err != nil {
				return fmt.Errorf("outbox: %w", err)
			}
			if n == 0 {
				os.Remove(j.dataPath(next))
				return fmt.Errorf("outbox: message %d of job %s: empty file upload", i+1, j.id)
			}
			o.Size = n
		}
		if err := j.write(&o); err != nil {
			return err
		}
		next++
	}
	return nil
}

func validate(m Message, names map[string]Kind) error {
	if m.Channel == "" {
		return errors.New("no channel")
	}
	if m.Name != "" {
		if !jobIDRe.MatchString(m.Name) {
			return fmt.Errorf("invalid name %q", m.Name)
		}
		if _, dup := names[m.Name]; dup {
			return fmt.Errorf("name %q is already used", m.Name)
		}
	}
	ref := func(field, name string) error {
		if name == "" {
			return nil
		}
		if k, ok := names[name]; !ok || k != KindPost {
			return fmt.Errorf("%s %q does not name an earlier post of this job", field, name)
		}
		return nil
	}
	switch m.Kind {
	case KindPost:
		if m.Text == "" {
			return errors.New("post without text")
		}
		return ref("thread_of", m.ThreadOf)
	case KindUpdate:
		if m.Text == "" {
			return errors.New("update without text")
		}
		if m.Target == "" {
			return errors.New("update without target")
		}
		return ref("target", m.Target)
	case KindEphemeral:
		if m.User == "" || m.Text == "" {
			return errors.New("ephemeral message needs a user and text")
		}
		return nil
	case KindUpload:
		if m.Filename == "" || m.Content == nil {
			return errors.New("upload needs a file name and content")
		}
		return ref("thread_of", m.ThreadOf)
	}
	return fmt.Errorf("unknown kind %q", m.Kind)
}

// Has reports whether the job has queued a message called name (at any state).
func (j *Job) Has(name string) bool {
	ops, err := j.read()
	if err != nil {
		return false
	}
	for _, o := range ops {
		if o.Name == name {
			return true
		}
	}
	return false
}

// Send queues msgs and delivers the job's queue within budget (0: Options.Budget). Slack
// being down is not an error: the Report says what is still waiting. The error is for the
// outbox itself (disk full, permissions).
func (j *Job) Send(ctx context.Context, budget time.Duration, msgs ...Message) (Report, error) {
	if err := j.Enqueue(msgs...); err != nil {
		return Report{Job: j.id}, err
	}
	return j.Deliver(ctx, budget)
}

// Deliver sends what is waiting in the job's queue, in order, within budget (0:
// Options.Budget). When another process is delivering this job it waits for it, within the
// same budget, and then finds the work done.
func (j *Job) Deliver(ctx context.Context, budget time.Duration) (Report, error) {
	return j.deliver(ctx, budget, true)
}

func (j *Job) deliver(ctx context.Context, budget time.Duration, wait bool) (Report, error) {
	if budget <= 0 {
		budget = j.ob.opt.Budget
	}
	rep := Report{Job: j.id}
	deadline := j.ob.opt.Clock.Now().Add(budget)
	lctx, cancel := context.WithTimeout(ctx, budget)
	unlock, err := j.lockSend(lctx, wait)
	cancel()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return rep, nil // nothing was ever queued, or it was delivered and removed
	case errors.Is(err, errBusy):
		rep.Busy = true
		return j.status(rep)
	case err != nil:
		return rep, fmt.Errorf("outbox: job %s: %w", j.id, err)
	}
	defer unlock()
	delivered, err := j.run(ctx, deadline)
	rep.Delivered = delivered
	if err != nil {
		return rep, err
	}
	return j.finish(rep)
}

// run works through the queue under the send lock until it is done or out of time, and
// returns what it delivered.
func (j *Job) run(ctx context.Context, deadline time.Time) ([]OpStatus, error) {
	var delivered []OpStatus
	r := &retrier{opt: j.ob.opt, deadline: deadline}
	for {
		// Read again every time: the queue may have grown (cleanup queues while a flush
		// delivers prepare's message) and only what is on disk is true.
		ops, err := j.read()
		if err != nil {
			return delivered, err
		}
		byName := map[string]*op{}
		var cur *op
		for i := range ops {
			if ops[i].Name != "" {
				byName[ops[i].Name] = &ops[i]
			}
			if !ops[i].final() {
				cur = &ops[i]
				break
			}
		}
		if cur == nil || j.ob.poster == nil {
			return delivered, nil
		}
		now := j.ob.opt.Clock.Now()
		switch {
		case cur.State == StateInFlight && !cur.idempotent():
			// A sender died between "in flight" and Slack's answer: Slack may have it.
			cur.State = StateUnknown
			cur.LastErr = "the delivering process stopped before Slack's answer was recorded: " + cur.LastErr
			if err := j.write(cur); err != nil {
				return delivered, err
			}
			continue
		case now.Sub(cur.Since) > j.ob.opt.MaxAge:
			cur.State = StateExpired
			cur.Note = fmt.Sprintf("not delivered within %s", j.ob.opt.MaxAge)
			if err := j.write(cur); err != nil {
				return delivered, err
			}
			continue
		}
		res, err := j.attempt(ctx, r, cur, byName)
		if err != nil {
			return delivered, err
		}
		if res == postponed {
			return delivered, nil
		}
		if res == sent {
			delivered = append(delivered, cur.status(now))
		}
	}
}

// attempt delivers one op with retries and records the outcome.
func (j *Job) attempt(ctx context.Context, r *retrier, o *op, byName map[string]*op) (outcome, error) {
	p := j.ob.poster
	// Resolve references now, not at queue time: the post they name may have been
	// delivered by another process since. An earlier op is always final here (we go in
	// order); if it did not end up in the channel with a known ts, degrade rather than
	// lose this message.
	refTS := func(name string) (string, bool) {
		if name == "" {
			return "", true
		}
		if t := byName[name]; t != nil && t.State == StateDone && t.TS != "" {
			return t.TS, true
		}
		return "", false
	}
	thread, okThread := refTS(o.ThreadOf)
	target, okTarget := refTS(o.Target)
	var call func(ctx context.Context) error
	timeout := j.ob.opt.AttemptTimeout
	idempotent := o.idempotent()
	switch {
	case o.Kind == KindUpdate && (!okTarget || o.TargetGone):
		why := byName[o.Target].stateOr()
		if o.TargetGone {
			why = "deleted from the channel"
		}
		o.Note = fmt.Sprintf("message %q it edits is not in the channel (%s): posted as a new message", o.Target, why)
		o.AsPost, idempotent = true, false
		call = func(ctx context.Context) error {
			ts, err := p.PostMessage(ctx, o.Channel, "", o.Text)
			o.TS = ts
			return err
		}
	case o.Kind == KindUpdate:
		// An earlier degraded attempt never left this host (else it would be final), and
		// its target has since arrived (requeued by an admin): edit after all.
		o.AsPost, idempotent = false, true
		call = func(ctx context.Context) error { return p.UpdateMessage(ctx, o.Channel, target, o.Text) }
	case o.Kind == KindPost:
		call = func(ctx context.Context) error {
			ts, err := p.PostMessage(ctx, o.Channel, thread, o.Text)
			o.TS = ts
			return err
		}
	case o.Kind == KindEphemeral:
		call = func(ctx context.Context) error { return p.PostEphemeral(ctx, o.Channel, o.User, o.Text) }
	case o.Kind == KindUpload:
		timeout = j.ob.opt.UploadTimeout
		call = func(ctx context.Context) error {
			f, err := os.Open(j.dataPath(o.Seq))
			if err != nil {
				return &Error{Method: "files.upload", Class: Permanent, msg: "outbox copy of the file: " + err.Error()}
			}
			defer f.Close()
			return p.UploadFile(ctx, FileUpload{Channel: o.Channel, ThreadTS: thread, Filename: o.Filename,
				Title: o.Title, Comment: o.Text, Size: o.Size, Content: f})
		}
	default:
		o.State, o.LastErr = StateFailed, fmt.Sprintf("unknown kind %q", o.Kind)
		return failed, j.write(o)
	}
	if (o.Kind == KindPost || o.Kind == KindUpload) && !okThread {
		o.Note = fmt.Sprintf("thread parent %q is not in the channel (%s): posted in the channel instead", o.ThreadOf, byName[o.ThreadOf].stateOr())
	}
	before := func() error {
		o.State = StateInFlight
		o.Attempts++
		o.LastTry = j.ob.opt.Clock.Now().UTC()
		return j.write(o)
	}
	after := func(e *Error) error {
		o.State, o.LastErr, o.Hint = StatePending, e.Error(), e.Hint
		return j.write(o)
	}
	res, e, err := r.do(ctx, idempotent, timeout, before, after, call)
	if err != nil {
		return res, err
	}
	switch res {
	case sent:
		o.State, o.LastErr, o.Hint = StateDone, "", ""
	case failed:
		if o.Kind == KindUpdate && !o.AsPost && goneCodes[e.Code] {
			// Someone deleted the start message: the final status is posted instead, on
			// the next pass of the loop.
			o.TargetGone, o.State, o.LastErr = true, StatePending, e.Error()
			return again, j.write(o)
		}
		o.State, o.LastErr, o.Hint = StateFailed, e.Error(), e.Hint
	case unknown:
		o.State, o.LastErr, o.Hint = StateUnknown, e.Error(),
			"check the channel; if the message is missing, 'chatops-executor flush --retry-failed' sends it again"
	case postponed:
		o.State = StatePending
		if e != nil {
			o.LastErr, o.Hint = e.Error(), e.Hint
		}
	}
	return res, j.write(o)
}

func (o *op) stateOr() string {
	if o == nil {
		return "missing"
	}
	return string(o.State)
}

// Progress edits the post named target to text, best effort, within
// Options.ProgressBudget. It is never queued — the next edit supersedes it — and it never
// overtakes the queue: while any message of the job waits, or another process is delivering
// it, Progress does nothing. The error is for the caller's log only.
func (j *Job) Progress(ctx context.Context, target, text string) error {
	if j.ob.poster == nil {
		return nil
	}
	unlock, err := j.lockSend(ctx, false)
	if errors.Is(err, errBusy) || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("outbox: job %s: %w", j.id, err)
	}
	defer unlock()
	ops, err := j.read()
	if err != nil {
		return err
	}
	var t *op
	for i := range ops {
		if !ops[i].final() {
			return nil
		}
		if ops[i].Name == target {
			t = &ops[i]
		}
	}
	if t == nil || t.State != StateDone || t.TS == "" {
		return nil
	}
	r := &retrier{opt: j.ob.opt, deadline: j.ob.opt.Clock.Now().Add(j.ob.opt.ProgressBudget)}
	nop := func() error { return nil }
	res, e, _ := r.do(ctx, true, j.ob.opt.AttemptTimeout, nop, func(*Error) error { return nil },
		func(ctx context.Context) error { return j.ob.poster.UpdateMessage(ctx, t.Channel, t.TS, text) })
	if res != sent && e != nil {
		return fmt.Errorf("progress edit: %w", e)
	}
	return nil
}

// Close records that the job will queue nothing more (cleanup calls it last). Once all its
// messages are delivered the job's directory is removed — by this call when they already
// are, else by the flush that delivers the last one. Failed messages keep it.
func (j *Job) Close() error {
	if _, err := os.Stat(j.dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := atomicfile.WriteFile(filepath.Join(j.dir, closedMark), nil, 0o600); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	unlock, err := j.lockSend(context.Background(), false)
	if err != nil {
		return nil // someone is delivering: they remove it when done
	}
	defer unlock()
	_, err = j.finish(Report{Job: j.id})
	return err
}

// finish fills the report from disk and removes the job's directory when the job is closed
// and everything in it was delivered. Called with the send lock held.
func (j *Job) finish(rep Report) (Report, error) {
	rep, err := j.status(rep)
	if err != nil || len(rep.Waiting) > 0 || len(rep.Failed) > 0 {
		return rep, err
	}
	if _, err := os.Stat(filepath.Join(j.dir, closedMark)); err != nil {
		// Open: a later stage may still edit or thread under what was delivered. A job whose
		// cleanup never came is swept once stale.
		if !j.stale() {
			return rep, nil
		}
	}
	return rep, j.remove(false)
}

// stale reports an open job (cleanup never came: runner crash) with no activity for
// staleAfter.
func (j *Job) stale() bool {
	ops, err := j.read()
	if err != nil {
		return false
	}
	last := time.Time{}
	for _, o := range ops {
		last = maxTime(last, maxTime(o.Queued, o.LastTry))
	}
	return j.ob.opt.Clock.Now().Sub(last) > staleAfter
}

// staleAfter is when an open job with nothing left to send is swept: longer than GitLab's
// longest job timeout (one month), so a running job never loses its start message's ts.
const staleAfter = 32 * 24 * time.Hour

func allDone(ops []op) bool {
	for _, o := range ops {
		if o.State != StateDone {
			return false
		}
	}
	return true
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// remove deletes the job's directory: first renamed away, so that a process that was
// waiting for the lock finds the directory gone rather than half-deleted. Called with the
// send lock held; it also needs the append lock, so that it never sweeps a directory that
// an Enqueue is writing into (if one is, the directory stays for the next delivery).
func (j *Job) remove(force bool) error {
	unlock, err := lock(context.Background(), filepath.Join(j.dir, appendLock), force)
	if errors.Is(err, errBusy) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("outbox: remove delivered job %s: %w", j.id, err)
	}
	defer unlock()
	if ops, err := j.read(); !force && (err != nil || !allDone(ops)) {
		return err // something was queued after the caller looked
	}
	trash := filepath.Join(j.ob.dir, fmt.Sprintf(".removed-%s-%d", j.id, time.Now().UnixNano()))
	if err := os.Rename(j.dir, trash); err != nil {
		return fmt.Errorf("outbox: remove delivered job %s: %w", j.id, err)
	}
	atomicfile.SyncDir(j.ob.dir)
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("outbox: remove delivered job %s: %w", j.id, err)
	}
	return nil
}

// Status reports the job's queue without sending anything.
func (j *Job) Status() (Report, error) { return j.status(Report{Job: j.id}) }

func (j *Job) status(rep Report) (Report, error) {
	ops, err := j.read()
	if err != nil {
		return rep, err
	}
	now := j.ob.opt.Clock.Now()
	for _, o := range ops {
		switch o.State {
		case StatePending, StateInFlight:
			rep.Waiting = append(rep.Waiting, o.status(now))
		case StateFailed, StateUnknown, StateExpired:
			rep.Failed = append(rep.Failed, o.status(now))
		}
	}
	return rep, nil
}

// read returns the job's ops in order; none when the job has no directory.
func (j *Job) read() ([]op, error) {
	names, err := filepath.Glob(filepath.Join(j.dir, "op-*.json"))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	ops := make([]op, 0, len(names))
	for _, n := range names {
		data, err := os.ReadFile(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed under us: the job was delivered and closed
		}
		if err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		var o op
		if err := json.Unmarshal(data, &o); err != nil {
			return nil, fmt.Errorf("outbox: %s is corrupt: %w", n, err)
		}
		ops = append(ops, o)
	}
	sort.Slice(ops, func(a, b int) bool { return ops[a].Seq < ops[b].Seq })
	return ops, nil
}

func (j *Job) write(o *op) error {
	data, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := atomicfile.WriteFile(j.opPath(o.Seq), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// lockSend takes the job's send lock. The directory is never created here: a job with no
// directory has nothing to send.
func (j *Job) lockSend(ctx context.Context, wait bool) (func(), error) {
	if _, err := os.Stat(j.dir); err != nil {
		return nil, err
	}
	return lock(ctx, filepath.Join(j.dir, sendLock), wait)
}

// Report is what a delivery left behind for one job.
type Report struct {
	Job string
	// Delivered lists what this call delivered.
	Delivered []OpStatus
	// Waiting lists messages that will be tried again (Slack down, rate limited, out of
	// time).
	Waiting []OpStatus
	// Failed lists messages that will not be tried again without an admin: refused by
	// Slack, outcome unknown, or expired. They stay in the outbox.
	Failed []OpStatus
	// Busy is set when another process was delivering this job.
	Busy bool
}

// Clear reports that nothing of the job is waiting or failed.
func (r Report) Clear() bool { return len(r.Waiting) == 0 && len(r.Failed) == 0 }

// String is a one-line summary for a runner log, e.g. "2 delivered, 1 waiting (Slack
// unreachable: …)".
func (r Report) String() string {
	var parts []string
	if n := len(r.Delivered); n > 0 {
		parts = append(parts, fmt.Sprintf("%d delivered", n))
	}
	if n := len(r.Waiting); n > 0 {
		s := fmt.Sprintf("%d waiting in the outbox", n)
		if e := r.Waiting[0].Err; e != "" {
			s += " (" + e + ")"
		}
		parts = append(parts, s)
	}
	if n := len(r.Failed); n > 0 {
		s := fmt.Sprintf("%d failed (%s", n, r.Failed[0].Err)
		if h := r.Failed[0].Hint; h != "" {
			s += "; hint: " + h
		}
		parts = append(parts, s+")")
	}
	if r.Busy {
		parts = append(parts, "another process is delivering it")
	}
	if len(parts) == 0 {
		return "nothing to deliver"
	}
	return strings.Join(parts, ", ")
}

// OpStatus describes one queued message.
type OpStatus struct {
	Seq      int
	Kind     Kind
	Name     string
	Channel  string
	State    State
	Attempts int
	Age      time.Duration // since it was queued
	TS       string
	Err      string // the last error, token-free
	Hint     string
	Note     string // how it was delivered when not as asked (degraded)
}

func (o *op) status(now time.Time) OpStatus {
	return OpStatus{Seq: o.Seq, Kind: o.Kind, Name: o.Name, Channel: o.Channel, State: o.State,
		Attempts: o.Attempts, Age: now.Sub(o.Queued).Round(time.Second), TS: o.TS, Err: o.LastErr,
		Hint: o.Hint, Note: o.Note}
}

// String describes the message for an admin: "#2 post "start" in C0123 (in-flight, 3 attempts)".
func (s OpStatus) String() string {
	b := fmt.Sprintf("#%d %s", s.Seq, s.Kind)
	if s.Name != "" {
		b += fmt.Sprintf(" %q", s.Name)
	}
	b += " in " + s.Channel
	b += fmt.Sprintf(" (%s, %d attempt%s, queued %s ago)", s.State, s.Attempts, plural(s.Attempts), s.Age)
	return b
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// FlushOptions tunes Flush.
type FlushOptions struct {
	// Jobs limits the flush to these job ids; empty means all.
	Jobs []string
	// Skip is a job not to touch (the caller's own, delivered separately).
	Skip string
	// JobBudget bounds each job (0: Options.Budget); Total bounds the whole flush (0: none).
	JobBudget, Total time.Duration
	// Wait makes Flush wait for a job another process is delivering (the flush command)
	// instead of skipping it (opportunistic flushes from stages, which must stay quick).
	Wait bool
}

// Flush delivers what waits in the outbox, job by job, oldest job first. After a job ends
// with Slack unreachable the remaining jobs get no retries in this call: each still gets
// one attempt, but nobody waits out backoffs for an outage.
func (o *Outbox) Flush(ctx context.Context, fo FlushOptions) ([]Report, error) {
	ids, err := o.jobIDs(fo.Jobs)
	if err != nil {
		return nil, err
	}
	if fo.Total > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, fo.Total)
		defer cancel()
	}
	budget := fo.JobBudget
	var reps []Report
	var errs []error
	for _, id := range ids {
		if id == fo.Skip {
			continue
		}
		j, err := o.Job(id)
		if err != nil {
			continue
		}
		if ctx.Err() != nil {
			rep, err := j.Status()
			if err != nil {
				errs = append(errs, err)
			}
			reps = append(reps, rep)
			continue
		}
		rep, err := j.deliver(ctx, budget, fo.Wait)
		if err != nil {
			errs = append(errs, err)
		}
		if len(rep.Waiting) > 0 && len(rep.Delivered) == 0 && !rep.Busy {
			budget = time.Nanosecond // Slack seems down: one attempt each from here on
		}
		if len(rep.Delivered) > 0 || !rep.Clear() || rep.Busy {
			reps = append(reps, rep)
		}
	}
	return reps, errors.Join(errs...)
}

// Status reports every job with something waiting or failed, without sending anything.
func (o *Outbox) Status() ([]Report, error) {
	ids, err := o.jobIDs(nil)
	if err != nil {
		return nil, err
	}
	var reps []Report
	for _, id := range ids {
		j, err := o.Job(id)
		if err != nil {
			continue
		}
		rep, err := j.Status()
		if err != nil {
			return reps, err
		}
		if !rep.Clear() {
			reps = append(reps, rep)
		}
	}
	return reps, nil
}

// Requeue makes the failed, unknown and expired messages of a job pending again, with a
// fresh age limit, so the next delivery sends them — in their original order relative to
// each other. For "unknown" messages that is the admin's decision to risk a duplicate. It
// returns how many were requeued.
func (o *Outbox) Requeue(ctx context.Context, id string) (int, error) {
	j, err := o.Job(id)
	if err != nil {
		return 0, err
	}
	unlock, err := j.lockSend(ctx, true)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("outbox: job %s: %w", id, err)
	}
	defer unlock()
	ops, err := j.read()
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range ops {
		o := &ops[i]
		if o.State != StateFailed && o.State != StateUnknown && o.State != StateExpired {
			continue
		}
		o.Note = fmt.Sprintf("requeued after %s: %s", o.State, o.LastErr)
		o.State, o.Since = StatePending, j.ob.opt.Clock.Now().UTC()
		if err := j.write(o); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Discard deletes a job's queue, delivered or not. It is the only way a message leaves the
// outbox undelivered, and only on an admin's explicit request (`flush --discard`).
func (o *Outbox) Discard(ctx context.Context, id string) (Report, error) {
	j, err := o.Job(id)
	if err != nil {
		return Report{}, err
	}
	unlock, err := j.lockSend(ctx, true)
	if errors.Is(err, fs.ErrNotExist) {
		return Report{Job: id}, nil
	}
	if err != nil {
		return Report{Job: id}, fmt.Errorf("outbox: job %s: %w", id, err)
	}
	defer unlock()
	rep, err := j.Status()
	if err != nil {
		return rep, err
	}
	return rep, j.remove(true)
}

// jobIDs lists job directories, oldest first (numeric job ids grow with time).
func (o *Outbox) jobIDs(only []string) ([]string, error) {
	if len(only) > 0 {
		return only, nil
	}
	ents, err := os.ReadDir(o.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".removed-") {
			os.RemoveAll(filepath.Join(o.dir, e.Name())) // a remover died half-way
			continue
		}
		if e.IsDir() && jobIDRe.MatchString(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Slice(ids, func(a, b int) bool {
		x, errx := strconv.ParseInt(ids[a], 10, 64)
		y, erry := strconv.ParseInt(ids[b], 10, 64)
		if errx == nil && erry == nil {
			return x < y
		}
		return ids[a] < ids[b]
	})
	return ids, nil
}
