package delivery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/chatops-executor/chatops-executor/atomicfile"
)

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
	if err != nil && !errors.Is(err, ErrNewerFormat) {
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
		if cur == nil || j.poster(cur) == nil {
			return delivered, nil
		}
		now := j.ob.opt.Clock.Now()
		switch {
		case cur.State == StateInFlight && !cur.idempotent() && j.settle(ctx, cur, byName):
			// A sender died between "in flight" and Slack's answer, and the channel says
			// whether Slack got it (see find.go).
			if err := j.write(cur); err != nil {
				return delivered, err
			}
			if cur.State == StateDone {
				delivered = append(delivered, cur.status(now))
			}
			continue
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
			j.ob.opt.outcome(string(cur.Kind), "expired")
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
	p := j.poster(o)
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
			ts, err := postMessage(ctx, p, o.Channel, "", o.Text, o.Blocks)
			o.TS = ts
			return err
		}
	case o.Kind == KindUpdate:
		// An earlier degraded attempt never left this host (else it would be final), and
		// its target has since arrived (requeued by an admin): edit after all.
		o.AsPost, idempotent = false, true
		call = func(ctx context.Context) error { return updateMessage(ctx, p, o.Channel, target, o.Text, o.Blocks) }
	case o.Kind == KindPost:
		call = func(ctx context.Context) error {
			ts, err := postMessage(ctx, p, o.Channel, thread, o.Text, o.Blocks)
			o.TS = ts
			return err
		}
	case o.Kind == KindEphemeral:
		call = func(ctx context.Context) error { return p.PostEphemeral(ctx, o.Channel, o.User, o.Text) }
		if n, ok := p.(EphemeralNoter); ok {
			call = func(ctx context.Context) error {
				note, err := n.PostEphemeralNote(ctx, o.Channel, o.User, o.Text)
				if err == nil && note != "" {
					o.Note = note
				}
				return err
			}
		}
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
	if res != again {
		j.ob.opt.outcome(string(o.Kind), res.String())
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

// settle asks the channel about an in-flight post whose sender died: found, the post is
// done (with its ts, so later edits and thread replies find it); certainly absent, it is
// pending again and is sent. It returns false when the channel cannot tell.
func (j *Job) settle(ctx context.Context, o *op, byName map[string]*op) bool {
	f, ok := j.poster(o).(Finder)
	if !ok || o.LastTry.IsZero() || (o.Kind != KindPost && !(o.Kind == KindUpdate && o.AsPost)) {
		return false
	}
	thread := ""
	if o.Kind == KindPost && o.ThreadOf != "" {
		t := byName[o.ThreadOf]
		if t == nil || t.State != StateDone || t.TS == "" {
			return false // it went to the channel instead, or nowhere certain
		}
		thread = t.TS
	}
	fctx, cancel := context.WithTimeout(ctx, j.ob.opt.AttemptTimeout)
	defer cancel()
	ts, found, err := f.FindPost(fctx, o.Channel, thread, o.Text, o.LastTry)
	if err != nil {
		o.LastErr = "the delivering process stopped before Slack's answer was recorded, and the channel could not be checked: " + Classify(err).Error()
		return false
	}
	if found {
		o.State, o.TS, o.LastErr = StateDone, ts, ""
		o.Note = "the delivering process stopped before Slack's answer was recorded; found in the channel"
		return true
	}
	o.State = StatePending
	o.Note = "the delivering process stopped before Slack got it (not in the channel): sent again"
	return true
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
	if len(j.ob.posters) == 0 {
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
	if t == nil || t.State != StateDone || t.TS == "" || j.poster(t) == nil {
		return nil
	}
	p := j.poster(t)
	r := &retrier{opt: j.ob.opt, deadline: j.ob.opt.Clock.Now().Add(j.ob.opt.ProgressBudget)}
	ctx = asProgress(ctx) // a RateBudget may skip it when final replies need the budget
	nop := func() error { return nil }
	res, e, _ := r.do(ctx, true, j.ob.opt.AttemptTimeout, nop, func(*Error) error { return nil },
		func(ctx context.Context) error { return p.UpdateMessage(ctx, t.Channel, t.TS, text) })
	j.ob.opt.outcome("progress", progressOutcome(res, e))
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
	if err != nil || !rep.Clear() {
		return rep, err // a quarantined file keeps the job for an admin too
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
