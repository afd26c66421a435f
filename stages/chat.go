package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/replies"
)

// Time budgets for chat delivery within a stage are slack.prepare_budget, cleanup_budget
// and flush_budget. What does not get through in time waits in the outbox for a later
// stage, cleanup or `flush`; a stage never fails because of chat.

// NewPoster makes the Slack client. It is a variable of Stages so tests can count calls;
// the default is delivery.NewSlack.
type NewPoster func(token, apiURL string) (delivery.Poster, error)

func defaultPoster(token, apiURL string) (delivery.Poster, error) {
	return delivery.NewSlack(token, apiURL)
}

// chat is a job's way to the channel: its outbox queue, the channel, and what a reply
// says about it.
type chat struct {
	poster  delivery.Poster // behind the host's rate budget
	outbox  *delivery.Outbox
	queue   *delivery.Job
	channel string
	user    string
	job     replies.Job
	secrets replies.Secrets
}

// openChat opens the job's chat, or returns nil (with the reason in the log) when replies
// are off: no Slack token, or a CHAT_CHANNEL that is not a channel id.
func (s *Stages) openChat(j *job.Response, log io.Writer) *chat {
	token, err := s.Cfg.SlackToken(s.Getenv)
	if err != nil {
		fmt.Fprintf(log, "%s: chat replies are off: %v\n", DriverName, err)
		return nil
	}
	if token == "" {
		fmt.Fprintf(log, "%s: chat replies are off: no slack.token_file or SLACK_BOT_TOKEN\n", DriverName)
		return nil
	}
	c := j.Chat()
	if !replies.ValidChannel(c.Channel) {
		fmt.Fprintf(log, "%s: no chat reply: CHAT_CHANNEL %q is not a Slack channel id\n", DriverName, oneLineForLog(c.Channel))
		return nil
	}
	newPoster := s.NewPoster
	if newPoster == nil {
		newPoster = defaultPoster
	}
	p, err := newPoster(token, s.Cfg.Slack.APIURL)
	if err == nil {
		// Every executor process on the host spends one Slack rate budget.
		p, err = delivery.HostBudget(p, s.Cfg.Executor.StateDir, s.Cfg.Slack.RateShare)
	}
	if err != nil {
		fmt.Fprintf(log, "%s: chat replies are off: %v\n", DriverName, err)
		return nil
	}
	ob := delivery.Open(s.Cfg.Executor.StateDir, p, DeliveryOptions(Metrics(s.Cfg), delivery.Options{}, log))
	q, err := ob.Job(j.IDString())
	if err != nil {
		fmt.Fprintf(log, "%s: chat replies are off: %v\n", DriverName, err)
		return nil
	}
	secrets := replies.SecretsOf(j, s.Getenv)
	return &chat{
		poster: p, outbox: ob, queue: q, channel: c.Channel, user: c.UserID, secrets: secrets,
		job: replies.Job{
			ID: j.ID, Name: j.Info.Name, Project: j.ProjectPath(), URL: s.jobURL(j),
			ChatUser: c.UserID, Input: c.Input, Secrets: secrets,
		},
	}
}

// trustedJobURL is the job's page built only from what the job cannot set: gitlab.url and
// the runner's job_info.project_full_path; "" when either is missing.
func (s *Stages) trustedJobURL(j *job.Response) string {
	base := strings.TrimRight(s.Cfg.GitLab.URL, "/")
	if base == "" || j.Info.ProjectFullPath == "" {
		return ""
	}
	return fmt.Sprintf("%s/%s/-/jobs/%d", base, j.Info.ProjectFullPath, j.ID)
}

// jobURL is the link to the job's page. CI_JOB_URL is a job variable and could point
// anywhere, so with gitlab.url configured the link is built from it; otherwise
// CI_JOB_URL is used only when it is a plain http(s) URL.
func (s *Stages) jobURL(j *job.Response) string {
	if base := strings.TrimRight(s.Cfg.GitLab.URL, "/"); base != "" && j.ProjectPath() != "" {
		return fmt.Sprintf("%s/%s/-/jobs/%d", base, j.ProjectPath(), j.ID)
	}
	u := j.Get("CI_JOB_URL")
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return u
	}
	return ""
}

// send queues msgs and delivers within budget, reporting the result in log.
func (c *chat) send(ctx context.Context, log io.Writer, budget time.Duration, msgs ...delivery.Message) {
	if len(msgs) == 0 {
		return
	}
	rep, err := c.queue.Send(ctx, budget, msgs...)
	if err != nil {
		fmt.Fprintf(log, "%s: chat reply not queued: %v\n", DriverName, err)
		return
	}
	if !rep.Clear() {
		fmt.Fprintf(log, "%s: chat: %s (run '%s flush' to retry)\n", DriverName, rep.String(), DriverName)
	}
}

// announce posts the start message (with ack) or tells a denied requester (d) that the
// job did not run — only when the policy says the requester may be told: a job that is not
// a verified chat job chose CHAT_USER_ID and CHAT_CHANNEL itself.
func (s *Stages) announce(ctx context.Context, j *job.Response, d *Decision) {
	denied := d != nil
	if !denied && !s.Cfg.Slack.Ack {
		return
	}
	if denied && !d.TellRequester {
		fmt.Fprintf(s.Stderr, "%s: the denial is not told in chat: the job is not a chat job whose requester checked out\n", DriverName)
		return
	}
	c := s.openChat(j, s.Stderr)
	if c == nil {
		return
	}
	if denied {
		if !replies.ValidUser(c.user) {
			fmt.Fprintf(s.Stderr, "%s: cannot tell the requester in chat: CHAT_USER_ID %q is not a Slack user id\n", DriverName, oneLineForLog(c.user))
			return
		}
		if c.queue.Has("denied") {
			c.deliver(ctx, s.Stderr, s.Cfg.Slack.PrepareBudget.D())
			return
		}
		c.send(ctx, s.Stderr, s.Cfg.Slack.PrepareBudget.D(), delivery.Message{
			Kind: delivery.KindEphemeral, Name: "denied", Channel: c.channel, User: c.user, Text: replies.DeniedText(j.ID, d.Rule, s.trustedJobURL(j)),
		})
		return
	}
	if c.queue.Has("start") {
		// A retried prepare: the first attempt queued it; deliver what may still wait.
		c.deliver(ctx, s.Stderr, s.Cfg.Slack.PrepareBudget.D())
		return
	}
	c.send(ctx, s.Stderr, s.Cfg.Slack.PrepareBudget.D(), delivery.Message{
		Kind: delivery.KindPost, Name: "start", Channel: c.channel, Text: replies.StartText(c.job),
	})
}

// progressTimeout bounds one progress edit, so the end of a stage never waits long for one.
const progressTimeout = 5 * time.Second

// progress edits the start message every progress_interval while a user-script stage
// runs, until ctx ends (the stage is over; an edit in flight is abandoned).
func (s *Stages) progress(ctx context.Context, j *job.Response, rec JobRecord, rc *ReplyCapture) {
	every := s.Cfg.Slack.ProgressInterval.D()
	if every <= 0 || !s.Cfg.Slack.Ack {
		return
	}
	c := s.openChat(j, io.Discard)
	if c == nil || !c.queue.Has("start") {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// The raw line was cut at lastLineMax bytes: what may be the start of a secret
			// whose rest was cut off is dropped after cleaning and masking.
			raw, clean := rc.LastLine(), replies.CleanString
			if len(raw) >= lastLineMax {
				clean = replies.CleanCutString
			}
			last := clean(raw, replies.CleanOptions{Plain: true, Secrets: c.secrets})
			text := replies.ProgressText(c.job, s.now().Sub(rec.PreparedAt), last)
			tctx, cancel := context.WithTimeout(ctx, min(every, progressTimeout))
			_ = c.queue.Progress(tctx, "start", text) // best effort: the next tick tries again
			cancel()
		}
	}
}

// queueReply builds the job's reply from what the run stages captured and queues it whole,
// in one atomic step, before any of it is sent: a process killed at any point leaves
// either no reply queued (and the state, from which the next sweeper builds it) or all
// of it. A reply already queued by an earlier, killed, cleanup is not queued again. It
// returns the job's chat, nil when replies are off, and an error when the reply could not
// be queued (the caller keeps the state, so that a later sweeper tries again). Problems
// with the reply's content go to the log; none fails the job.
func (s *Stages) queueReply(j *job.Response, st State, o Outcome) (*chat, error) {
	c := s.openChat(j, s.Stderr)
	if c == nil {
		return nil, nil
	}
	status := replies.Status{State: string(o.Status), ExitCode: o.ExitCode, Elapsed: o.Elapsed, Reason: o.Reason, CancelledBy: o.CancelledBy}
	if o.Status == Denied || c.queue.Has(finalName) {
		// The requester was told in prepare, or the reply is already queued.
		return c, c.close()
	}
	haveStart := s.Cfg.Slack.Ack && c.queue.Has("start")
	var msgs []delivery.Message
	if haveStart {
		msgs = append(msgs, delivery.Message{Kind: delivery.KindUpdate, Target: "start", Channel: c.channel, Text: replies.StatusText(c.job, status)})
	}
	if s.wantsOutput(j) {
		out, text, err := s.buildOutput(st, c.secrets, status)
		if err != nil {
			fmt.Fprintf(s.Stderr, "%s: chat reply: %v\n", DriverName, err)
		}
		if text != nil {
			defer text.Close()
		}
		thread := ""
		if haveStart && s.Cfg.Slack.Thread {
			thread = "start"
		}
		body := out.Text
		if !haveStart {
			body = strings.TrimSpace(replies.StatusText(c.job, status) + "\n" + out.Text)
		}
		switch {
		case out.Upload:
			msgs = append(msgs, delivery.Message{
				Kind: delivery.KindUpload, ThreadOf: thread, Channel: c.channel, Text: body,
				Filename: fmt.Sprintf("%s-%d.txt", safeName(replies.Redact(j.Info.Name, c.secrets)), j.ID),
				Title:    fmt.Sprintf("Output of %s (job #%d)", replies.Redact(j.Info.Name, c.secrets), j.ID), Content: text,
			})
		case body != "":
			msgs = append(msgs, delivery.Message{Kind: delivery.KindPost, ThreadOf: thread, Channel: c.channel, Text: body})
		}
	}
	if len(msgs) == 0 {
		return c, c.close()
	}
	msgs[0].Name = finalName
	if err := c.queue.Enqueue(msgs...); err != nil {
		// Most likely the disk is full (the job's own output may have filled it): the raw
		// output goes to make room, and the status alone is queued, saying why.
		fmt.Fprintf(s.Stderr, "%s: chat reply not queued: %v; queueing its status alone\n", DriverName, err)
		freeCapture(st)
		why := "an error on the runner"
		if errors.Is(err, syscall.ENOSPC) {
			why = "the runner's disk is full"
		}
		text := replies.StatusText(c.job, status) + "\n_(the output could not be kept for chat: " + why + ")_"
		short := delivery.Message{Kind: delivery.KindPost, Name: finalName, Channel: c.channel, Text: text}
		if haveStart {
			short = delivery.Message{Kind: delivery.KindUpdate, Name: finalName, Target: "start", Channel: c.channel, Text: text}
		}
		if err := c.queue.Enqueue(short); err != nil {
			return c, fmt.Errorf("chat reply not queued: %w", err)
		}
	}
	return c, c.close()
}

// close records that nothing more will be queued for the job: whoever delivers its last
// message removes its queue, even if this process dies before it delivers anything.
func (c *chat) close() error {
	if err := c.queue.Close(); err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	return nil
}

// deliverReply sends what the job's queue holds within cleanup's budget.
func (s *Stages) deliverReply(ctx context.Context, c *chat) {
	c.deliver(ctx, s.Stderr, s.Cfg.Slack.CleanupBudget.D())
}

// flushOthers delivers what other jobs left waiting, within slack.flush_budget: Slack is
// evidently up.
func (s *Stages) flushOthers(ctx context.Context, j *job.Response, c *chat) {
	fb := s.Cfg.Slack.FlushBudget.D()
	reps, err := c.outbox.Flush(ctx, delivery.FlushOptions{Skip: j.IDString(), JobBudget: fb / 2, Total: fb})
	if err != nil {
		fmt.Fprintf(s.Stderr, "%s: chat: flushing the outbox: %v\n", DriverName, err)
	}
	for _, r := range reps {
		if r.Newer != nil {
			// After a downgrade: the admin must hear of it, it will not go away by itself.
			fmt.Fprintf(s.Stderr, "%s: chat: left alone: %v\n", DriverName, r.Newer)
		}
	}
}

// deliver sends what waits in the job's queue within budget, reporting in log.
func (c *chat) deliver(ctx context.Context, log io.Writer, budget time.Duration) {
	rep, err := c.queue.Deliver(ctx, budget)
	if err != nil {
		fmt.Fprintf(log, "%s: chat: %v\n", DriverName, err)
		return
	}
	if !rep.Clear() {
		fmt.Fprintf(log, "%s: chat: %s (run '%s flush' to retry)\n", DriverName, rep.String(), DriverName)
	}
}

// wantsOutput applies slack.reply: "always", "never", or "after-window" — only when
// GitLab's own reply cannot arrive, because the job ended more than reply_window after the
// slash command created the pipeline. When the creation time is unknown, we reply: a
// duplicate is better than silence.
func (s *Stages) wantsOutput(j *job.Response) bool {
	switch s.Cfg.Slack.Reply {
	case "never":
		return false
	case "after-window":
		created, err := time.Parse(time.RFC3339, j.Get("CI_PIPELINE_CREATED_AT"))
		if err != nil {
			return true
		}
		return s.now().Sub(created) > s.Cfg.Slack.ReplyWindow.D()
	default:
		return true
	}
}

func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || len(b) > 64 {
		return "job"
	}
	return string(b)
}

func oneLineForLog(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(strings.NewReplacer("\n", " ", "\r", " ").Replace(s), "?")
}

// noteText is the capture's loss note for the reply: one line, at most 400 bytes.
func noteText(note string) string {
	note = strings.ReplaceAll(strings.ReplaceAll(note, "\r", " "), "\n", "; ")
	if len(note) > 400 {
		note = note[:400] + "…"
	}
	return strings.ToValidUTF8(note, "?")
}
