package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/replies"
)

// Time budgets for chat delivery within a stage are slack.prepare_budget, cleanup_budget
// and flush_budget (for a Mattermost job, [mattermost]'s when it sets them). What does not
// get through in time waits in the outbox for a later stage, cleanup or `flush`; a stage
// never fails because of chat.

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
	// backend, render and inlineLimit are the chat's: Slack's or Mattermost's (chatmm.go).
	backend     delivery.Backend
	render      renderer
	inlineLimit int
	validUser   func(string) bool
	// cfg is how replies behave in this chat: [slack]'s keys, or [mattermost]'s over them.
	cfg config.Slack
}

// openChat opens the job's chat, or returns nil (with the reason in the log) when replies
// are off: no token for the job's chat, or a CHAT_CHANNEL that is not a channel id.
func (s *Stages) openChat(j *job.Response, log io.Writer) *chat {
	c := j.Chat()
	k, ok := kindOf(c.Channel)
	if !ok {
		fmt.Fprintf(log, "%s: no chat reply: CHAT_CHANNEL %q is not a Slack or Mattermost channel id\n", DriverName, oneLineForLog(c.Channel))
		return nil
	}
	if k.backend == delivery.BackendMattermost {
		return s.openMattermost(j, log)
	}
	token, err := s.Cfg.SlackToken(s.Getenv)
	if err != nil {
		fmt.Fprintf(log, "%s: chat replies are off: %v\n", DriverName, err)
		return nil
	}
	if token == "" {
		fmt.Fprintf(log, "%s: chat replies are off: no slack.token_file or SLACK_BOT_TOKEN\n", DriverName)
		return nil
	}
	p := s.slackPoster(log)
	if p == nil {
		return nil
	}
	ob := delivery.Open(s.Cfg.Executor.StateDir, p, DeliveryOptions(Metrics(s.Cfg), delivery.Options{}, log))
	if mp := s.mattermostForFlush(); mp != nil {
		ob.Use(delivery.BackendMattermost, mp) // other jobs' waiting Mattermost replies
	}
	return s.newChat(j, ob, p, log)
}

// newChat is the job's chat on ob, with Slack's markup and limits; p is its chat's Poster
// (approvals and cancels read reactions through it). nil when the job id cannot name a
// queue.
func (s *Stages) newChat(j *job.Response, ob *delivery.Outbox, p delivery.Poster, log io.Writer) *chat {
	c := j.Chat()
	k, _ := kindOf(c.Channel)
	q, err := ob.Job(j.IDString())
	if err != nil {
		fmt.Fprintf(log, "%s: chat replies are off: %v\n", DriverName, err)
		return nil
	}
	secrets := replies.SecretsOf(j, s.Getenv)
	return &chat{
		poster: p, outbox: ob, queue: q, channel: c.Channel, user: c.UserID, secrets: secrets,
		backend: delivery.BackendSlack, render: slackMrkdwn{}, inlineLimit: s.Cfg.Slack.InlineLimit, validUser: k.validUser,
		cfg: s.replyCfg(j),
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
	rep, err := c.queue.Send(ctx, budget, c.tag(msgs)...)
	if err != nil {
		fmt.Fprintf(log, "%s: chat reply not queued: %v\n", DriverName, err)
		return
	}
	logNotes(log, rep)
	if !rep.Clear() {
		fmt.Fprintf(log, "%s: chat: %s (run '%s flush' to retry)\n", DriverName, rep.String(), DriverName)
	}
}

// announce posts the start message (with ack) or tells a denied requester (d) that the
// job did not run — only when the policy says the requester may be told: a job that is not
// a verified chat job chose CHAT_USER_ID and CHAT_CHANNEL itself.
func (s *Stages) announce(ctx context.Context, j *job.Response, d *Decision) {
	denied := d != nil
	if !denied && !s.replyCfg(j).Ack {
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
		if !c.validUser(c.user) {
			fmt.Fprintf(s.Stderr, "%s: cannot tell the requester in chat: CHAT_USER_ID %q is not a user id of the channel's chat\n", DriverName, oneLineForLog(c.user))
			return
		}
		if c.queue.Has("denied") {
			c.deliver(ctx, s.Stderr, c.cfg.PrepareBudget.D())
			return
		}
		c.send(ctx, s.Stderr, c.cfg.PrepareBudget.D(), delivery.Message{
			Kind: delivery.KindEphemeral, Name: "denied", Channel: c.channel, User: c.user, Text: c.render.DeniedText(j.ID, d.Rule, s.trustedJobURL(j)),
		})
		return
	}
	if c.queue.Has("start") {
		// A retried prepare: the first attempt queued it; deliver what may still wait.
		c.deliver(ctx, s.Stderr, c.cfg.PrepareBudget.D())
		return
	}
	c.send(ctx, s.Stderr, c.cfg.PrepareBudget.D(), delivery.Message{
		Kind: delivery.KindPost, Name: "start", Channel: c.channel, Text: c.render.StartText(c.job),
	})
}

// progressTimeout bounds one progress edit, so the end of a stage never waits long for one.
const progressTimeout = 5 * time.Second

// progress edits the start message every progress_interval while a user-script stage
// runs, until ctx ends (the stage is over; an edit in flight is abandoned).
func (s *Stages) progress(ctx context.Context, j *job.Response, rec JobRecord, rc *ReplyCapture) {
	every := s.replyCfg(j).ProgressInterval.D()
	if every <= 0 || !s.replyCfg(j).Ack {
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
			text := c.render.ProgressText(c.job, s.now().Sub(rec.PreparedAt), last)
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
	haveStart := c.cfg.Ack && c.queue.Has("start")
	var msgs []delivery.Message
	if haveStart {
		msgs = append(msgs, delivery.Message{Kind: delivery.KindUpdate, Target: "start", Channel: c.channel, Text: c.render.StatusText(c.job, status)})
	}
	if s.wantsOutput(j) {
		rich := s.readReply(j, st, c)
		defer rich.close() // after Enqueue: the outbox has its own copies by then
		out, text, err := s.buildOutput(st, c, status, !haveStart)
		if err != nil {
			fmt.Fprintf(s.Stderr, "%s: chat reply: %v\n", DriverName, err)
		}
		if text != nil {
			defer text.Close()
		}
		thread := ""
		if haveStart && c.cfg.Thread {
			thread = "start"
		}
		body := out.Text
		if !haveStart {
			body = strings.TrimSpace(c.render.StatusText(c.job, status) + "\n" + out.Text)
		}
		var upload *delivery.Message
		if out.Upload {
			upload = &delivery.Message{
				Kind: delivery.KindUpload, ThreadOf: thread, Channel: c.channel, Text: body,
				Filename: fmt.Sprintf("%s-%d.txt", safeName(replies.Redact(j.Info.Name, c.secrets)), j.ID),
				Title:    fmt.Sprintf("Output of %s (job #%d)", replies.Redact(j.Info.Name, c.secrets), j.ID), Content: text,
			}
		}
		switch {
		case rich != nil:
			// What the job left in CHATOPS_REPLY_DIR shapes the reply (replydir.go).
			prefix := ""
			if !haveStart {
				prefix = c.render.StatusText(c.job, status)
			}
			msgs = append(msgs, s.richMessages(c, rich, j, thread, prefix, body, upload)...)
		case upload != nil:
			msgs = append(msgs, *upload)
		case body != "":
			msgs = append(msgs, delivery.Message{Kind: delivery.KindPost, ThreadOf: thread, Channel: c.channel, Text: body})
		}
	}
	if len(msgs) == 0 {
		return c, c.close()
	}
	msgs[0].Name = finalName
	if err := c.queue.Enqueue(c.tag(msgs)...); err != nil {
		// Most likely the disk is full (the job's own output may have filled it): the raw
		// output goes to make room, and the status alone is queued, saying why.
		fmt.Fprintf(s.Stderr, "%s: chat reply not queued: %v; queueing its status alone\n", DriverName, err)
		freeCapture(st)
		why := "an error on the runner"
		if errors.Is(err, syscall.ENOSPC) {
			why = "the runner's disk is full"
		}
		text := c.render.StatusText(c.job, status) + "\n_(the output could not be kept for chat: " + why + ")_"
		short := delivery.Message{Kind: delivery.KindPost, Name: finalName, Channel: c.channel, Text: text}
		if haveStart {
			short = delivery.Message{Kind: delivery.KindUpdate, Name: finalName, Target: "start", Channel: c.channel, Text: text}
		}
		if err := c.queue.Enqueue(c.tag([]delivery.Message{short})...); err != nil {
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
	c.deliver(ctx, s.Stderr, c.cfg.CleanupBudget.D())
}

// flushOthers delivers what other jobs left waiting, within slack.flush_budget: Slack is
// evidently up.
func (s *Stages) flushOthers(ctx context.Context, j *job.Response, c *chat) {
	fb := c.cfg.FlushBudget.D()
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
	logNotes(log, rep)
	if !rep.Clear() {
		fmt.Fprintf(log, "%s: chat: %s (run '%s flush' to retry)\n", DriverName, rep.String(), DriverName)
	}
}

// wantsOutput applies slack.reply: "always", "never", or "after-window" — only when
// GitLab's own reply cannot arrive, because the job ended more than reply_window after the
// slash command created the pipeline. When the creation time is unknown, we reply: a
// duplicate is better than silence.
func (s *Stages) wantsOutput(j *job.Response) bool {
	rc := s.replyCfg(j)
	switch rc.Reply {
	case "never":
		return false
	case "after-window":
		created, err := time.Parse(time.RFC3339, j.Get("CI_PIPELINE_CREATED_AT"))
		if err != nil {
			return true
		}
		return s.now().Sub(created) > rc.ReplyWindow.D()
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
