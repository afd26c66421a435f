package stages

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/atomicfile"
	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/replies"
)

// One runner serves chat jobs from Slack and from Mattermost: the shape of CHAT_CHANNEL
// says which (delivery.BackendOf), and picks the Poster, the markup of the reply and its
// limits. Everything else — the outbox, the order of messages, redaction, what a reply
// says — is the same code for both.

// renderer is a chat's markup for the texts a job's reply is made of.
type renderer interface {
	StartText(j replies.Job) string
	ProgressText(j replies.Job, elapsed time.Duration, lastLine string) string
	StatusText(j replies.Job, s replies.Status) string
	DeniedText(id int64, rule, url string) string
	// ApprovalDeniedText tells the requester why a job that needed an approval did not run.
	ApprovalDeniedText(id int64, url, why string) string
	FormatOutput(src io.ReadSeeker, size int64, s replies.Status, limit int) (replies.Output, error)
}

// slackMrkdwn is the renderer for Slack: replies' own functions.
type slackMrkdwn struct{}

func (slackMrkdwn) StartText(j replies.Job) string { return replies.StartText(j) }
func (slackMrkdwn) ProgressText(j replies.Job, d time.Duration, l string) string {
	return replies.ProgressText(j, d, l)
}
func (slackMrkdwn) StatusText(j replies.Job, s replies.Status) string {
	return replies.StatusText(j, s)
}
func (slackMrkdwn) DeniedText(id int64, rule, url string) string {
	return replies.DeniedText(id, rule, url)
}
func (slackMrkdwn) ApprovalDeniedText(id int64, url, why string) string {
	return replies.ApprovalDeniedText(id, url, why)
}
func (slackMrkdwn) FormatOutput(src io.ReadSeeker, size int64, s replies.Status, limit int) (replies.Output, error) {
	return replies.FormatOutput(src, size, s, limit)
}

// MattermostPoster is what the stages need of a Mattermost client: a Poster that can name
// a user for the reply's @mention.
type MattermostPoster interface {
	delivery.Poster
	Username(ctx context.Context, id string) (string, error)
}

// NewMattermostPoster makes the Mattermost client; a variable of Stages so tests can
// replace it. The default is delivery.NewMattermost.
type NewMattermostPoster func(token, url string) (MattermostPoster, error)

func defaultMattermost(token, url string) (MattermostPoster, error) {
	return delivery.NewMattermost(token, url)
}

// chatKind is what a job's CHAT_CHANNEL says about its chat.
type chatKind struct {
	backend delivery.Backend
	// validUser says whether CHAT_USER_ID is a user id of this chat.
	validUser func(string) bool
}

// kindOf returns the chat of a CHAT_CHANNEL, false for one that is no channel id at all.
func kindOf(channel string) (chatKind, bool) {
	b, ok := delivery.BackendOf(channel)
	switch {
	case !ok:
		return chatKind{}, false
	case b == delivery.BackendMattermost:
		return chatKind{backend: b, validUser: config.IsMattermostID}, true
	}
	return chatKind{backend: b, validUser: replies.ValidUser}, true
}

// chatConfigured reports, without reading a token, whether replies to channel can be
// configured at all: a Slack token source for a Slack channel, [mattermost] for a
// Mattermost one.
func (s *Stages) chatConfigured(channel string) bool {
	k, ok := kindOf(channel)
	switch {
	case !ok:
		return false
	case k.backend == delivery.BackendMattermost:
		return s.Cfg.MattermostEnabled()
	}
	return s.Cfg.Slack.TokenFile != "" || strings.TrimSpace(s.Getenv("SLACK_BOT_TOKEN")) != ""
}

// openMattermost opens the chat of a job from Mattermost, nil when replies are off.
func (s *Stages) openMattermost(j *job.Response, log io.Writer) *chat {
	if !s.Cfg.MattermostEnabled() {
		fmt.Fprintf(log, "%s: chat replies are off: CHAT_CHANNEL is a Mattermost channel id and [mattermost] url and token_file are not set\n", DriverName)
		return nil
	}
	token, err := s.Cfg.MattermostToken()
	if err != nil {
		fmt.Fprintf(log, "%s: chat replies are off: %v\n", DriverName, err)
		return nil
	}
	newPoster := s.NewMattermost
	if newPoster == nil {
		newPoster = defaultMattermost
	}
	p, err := newPoster(token, s.Cfg.Mattermost.URL)
	if err != nil {
		fmt.Fprintf(log, "%s: chat replies are off: %v\n", DriverName, err)
		return nil
	}
	ob := delivery.Open(s.Cfg.Executor.StateDir, nil, DeliveryOptions(Metrics(s.Cfg), delivery.Options{}, log)).
		Use(delivery.BackendMattermost, p)
	// Other jobs' waiting Slack replies go too when this process flushes the outbox.
	if sp := s.slackPoster(io.Discard); sp != nil {
		ob.Use(delivery.BackendSlack, sp)
	}
	c := s.newChat(j, ob, p, log)
	if c == nil {
		return nil
	}
	c.backend, c.inlineLimit = delivery.BackendMattermost, c.cfg.InlineLimit
	// The lookup waits no longer than prepare may for its start message.
	c.render = replies.Markdown{Username: s.mattermostUsername(j, p, log, c.cfg.PrepareBudget.D())}
	return c
}

// usernameFile keeps the requester's Mattermost username in the job's state, so that it is
// looked up once per job rather than by every stage.
const usernameFile = "chat-username"

// mattermostUsername is the requester's username for the @mention: from the job's state,
// else asked of Mattermost (GET /api/v4/users/{id}) and kept there. "" (no mention) when
// CHAT_USER_ID is not a user id or Mattermost cannot say: the reply goes out without it.
func (s *Stages) mattermostUsername(j *job.Response, p MattermostPoster, log io.Writer, timeout time.Duration) string {
	id := j.Chat().UserID
	if !config.IsMattermostID(id) {
		return ""
	}
	path := filepath.Join(s.Cfg.Executor.StateDir, j.IDString(), usernameFile)
	if data, err := os.ReadFile(path); err == nil {
		if user, name, ok := strings.Cut(strings.TrimSpace(string(data)), " "); ok && user == id {
			return name
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	name, err := p.Username(ctx, id)
	if err != nil {
		fmt.Fprintf(log, "%s: chat: the reply does not mention the requester: %v\n", DriverName, err)
		return ""
	}
	if _, err := os.Stat(filepath.Dir(path)); err == nil {
		_ = atomicfile.WriteFile(path, []byte(id+" "+name+"\n"), 0o600)
	}
	return name
}

// slackPoster is the Slack client with the host's rate budget, nil (reason in log) when
// there is no token.
func (s *Stages) slackPoster(log io.Writer) delivery.Poster {
	token, err := s.Cfg.SlackToken(s.Getenv)
	if err != nil || token == "" {
		if err != nil {
			fmt.Fprintf(log, "%s: chat replies are off: %v\n", DriverName, err)
		}
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
	return p
}

// mattermostForFlush is the Mattermost client for delivering other jobs' waiting replies
// from a Slack job's process; nil when Mattermost is not configured.
func (s *Stages) mattermostForFlush() delivery.Poster {
	token, err := s.Cfg.MattermostToken()
	if err != nil || token == "" {
		return nil
	}
	newPoster := s.NewMattermost
	if newPoster == nil {
		newPoster = defaultMattermost
	}
	p, err := newPoster(token, s.Cfg.Mattermost.URL)
	if err != nil {
		return nil
	}
	return p
}

// tag marks msgs as the chat's, so the outbox hands them to its Poster.
func (c *chat) tag(msgs []delivery.Message) []delivery.Message {
	for i := range msgs {
		msgs[i].Backend = c.backend
	}
	return msgs
}

// logNotes says how messages were delivered when not as asked: a denial that went as a
// direct message because the bot may not post ephemeral ones, an edit posted anew.
func logNotes(log io.Writer, rep delivery.Report) {
	for _, d := range rep.Delivered {
		if d.Note != "" {
			fmt.Fprintf(log, "%s: chat: %s %s: %s\n", DriverName, d.Kind, d.Name, d.Note)
		}
	}
}

// replyCfg is how replies behave for the job's chat: [slack]'s reply keys, or for a
// Mattermost job those with [mattermost]'s over them.
func (s *Stages) replyCfg(j *job.Response) config.Slack {
	if k, ok := kindOf(j.Chat().Channel); ok && k.backend == delivery.BackendMattermost {
		return s.Cfg.MattermostReplies()
	}
	return s.Cfg.Slack
}
