package stages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/jobuser"
	"github.com/chatops-executor/chatops-executor/replies"
	"github.com/chatops-executor/chatops-executor/replydir"
)

// ReplyDirEnv names the variable that tells the job's scripts where to put a rich reply.
const ReplyDirEnv = "CHATOPS_REPLY_DIR"

// The job's reply directory is <builds_dir>/<job id>.reply: beside its build directory, in
// the directory only the executor may write, so the job can fill it but cannot replace it
// with a link. Prepare makes it fresh and empty, owned by the job's user with mode 0700;
// cleanup reads it (package replydir) and removes it with the build directory.

func (s *Stages) replyDir(jobID int64) string {
	return filepath.Join(s.Cfg.Executor.BuildsDir, replyDirName(jobID))
}

func replyDirName(jobID int64) string { return strconv.FormatInt(jobID, 10) + ".reply" }

// makeReplyDir creates the job's reply directory in builds (builds_dir, opened without
// following links), owned by u.
func makeReplyDir(builds *os.File, j *job.Response, u jobUser) error {
	if err := jobuser.FreshDir(builds, replyDirName(j.ID), int(u.UID), int(u.GID)); err != nil {
		return fmt.Errorf("reply dir: %w", err)
	}
	return nil
}

// replyEnv is the script's CHATOPS_REPLY_DIR, when prepare made the directory (a job
// prepared by a release without rich replies has none).
func (s *Stages) replyEnv(jobID int64) []string {
	dir := s.replyDir(jobID)
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return nil
	}
	return []string{ReplyDirEnv + "=" + dir}
}

// removeReplyDir removes the job's reply directory, never through a link it holds.
func (s *Stages) removeReplyDir(jobID int64) error {
	return replydir.Remove(s.replyDir(jobID))
}

// replyOptions are the reading options for the job of rec; spool "" only checks.
func (s *Stages) replyOptions(rec JobRecord, secrets replies.Secrets, spool string) replydir.Options {
	sl := s.Cfg.Slack
	m := replies.NewMasker(secrets)
	return replydir.Options{
		Limits: replydir.Limits{MaxFiles: sl.ReplyMaxFiles, MaxFile: int64(sl.ReplyMaxFileSize),
			MaxTotal: int64(sl.ReplyMaxTotalSize), Binary: sl.ReplyFiles == config.ReplyFilesAll},
		// The job's user: what it made is its own; anything else got there by a trick.
		Owner: int(rec.UID),
		Spool: spool,
		Redact: func(w io.Writer) io.WriteCloser {
			return m.NewRedactor(w)
		},
		RedactName: m.Redact,
	}
}

// allowMentions reports whether the rule that let the job run — allowed, or approved in
// chat — lets it notify a channel, as the policy decided in prepare.
func (s *Stages) allowMentions(rec JobRecord) bool { return rec.AllowMentions && !rec.Denied }

// richReply is what the job's reply directory makes of the reply.
type richReply struct {
	text    string          // message.md, posted instead of the output
	hasText bool            //
	blocks  json.RawMessage // valid, redacted blocks; nil: none or not used
	files   []replydir.File
	notes   []string // redacted; what was not used and why
	read    *replydir.Reply
	opened  []*os.File // the spooled copies being queued
	// mattermost: the reply is for Mattermost, whose posts are Markdown and have no blocks.
	mattermost bool
}

func (r *richReply) close() {
	if r == nil {
		return
	}
	for _, f := range r.opened {
		f.Close()
	}
	if r.read != nil {
		r.read.Close()
	}
}

// readReply reads the job's reply directory at cleanup for the job's chat c; nil when it
// is missing or empty. What cannot be used is in notes, and in the runner's log.
func (s *Stages) readReply(j *job.Response, st State, c *chat) *richReply {
	secrets := c.secrets
	dir := s.replyDir(j.ID)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	rec, err := st.ReadJob()
	if err != nil || rec.Isolation == "" {
		fmt.Fprintf(s.Stderr, "%s: job %d: the reply directory is not read: the job's user is not known (%v)\n", DriverName, j.ID, err)
		return nil
	}
	m := replies.NewMasker(secrets)
	rd, err := replydir.Read(dir, s.replyOptions(rec, secrets, st.Dir))
	if err != nil {
		fmt.Fprintf(s.Stderr, "%s: job %d: reply directory: %v\n", DriverName, j.ID, err)
		return &richReply{notes: []string{m.Redact("the reply directory was not read: " + err.Error())}}
	}
	allow := s.allowMentions(rec)
	r := &richReply{read: rd, files: rd.Files, mattermost: c.backend == delivery.BackendMattermost}
	if rd.HasMessage {
		if r.mattermost {
			r.text = replies.ReplyMarkdown(rd.Message, m, allow)
			r.text = cutRunes(r.text, maxMattermostText, "\n_[… message.md was cut: a Mattermost post holds at most 16,383 characters …]_")
		} else {
			r.text = replies.ReplyText(rd.Message, m, allow)
			r.text = cutRunes(r.text, maxReplyText, "\n_[… message.md was cut: Slack shows at most 39,000 characters …]_")
		}
		r.hasText = true
		if r.text == "" {
			r.hasText = false
			rd.Notes = append(rd.Notes, replydir.MessageName+" was not used: it is empty")
		}
	}
	switch {
	case rd.Blocks != nil && r.mattermost:
		rd.Notes = append(rd.Notes, replydir.BlocksName+" was not used: Mattermost has no Block Kit (message.md is the way to shape a Mattermost reply)")
	case rd.Blocks != nil:
		b, err := replies.ReplyBlocks(rd.Blocks, m, allow)
		if err != nil {
			rd.Notes = append(rd.Notes, replydir.BlocksName+" was not used: "+err.Error())
		} else {
			r.blocks = b
		}
	}
	for _, n := range rd.Notes {
		n = m.Redact(n)
		r.notes = append(r.notes, n)
		fmt.Fprintf(s.Stderr, "%s: job %d: reply directory: %s\n", DriverName, j.ID, n)
	}
	if !r.hasText && r.blocks == nil && len(r.files) == 0 && len(r.notes) == 0 {
		rd.Close()
		return nil // an empty directory: the reply is the output, as without one
	}
	return r
}

// maxReplyText leaves room within Slack's 40,000 characters for the status line, and
// maxMattermostText within Mattermost's 16,383 for it and the cut note.
const (
	maxReplyText      = 39000
	maxMattermostText = 15800
)

func cutRunes(s string, n int, note string) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for k := range s {
		if i == n {
			return s[:k] + note
		}
		i++
	}
	return s
}

// notesText is the notes as a line of the reply, escaped for the chat's markup (Slack's
// mrkdwn, or Mattermost's Markdown when mattermost).
func notesText(notes []string, mattermost bool) string {
	if len(notes) == 0 {
		return ""
	}
	if mattermost {
		return "_" + replies.EscapeMarkdown(strings.Join(notes, "; ")) + "_"
	}
	return "_" + replies.EscapeSlack(strings.Join(notes, "; ")) + "_"
}

// richMessages turns the rich reply into the thread's messages: the answer (message.md or
// the output, with the blocks when they are valid) and one upload per file. body is the
// text the reply would have had without it; upload, when not nil, the output's upload.
// prefix, when not empty, is the status line that must lead the answer (there is no start
// message to carry it).
func (s *Stages) richMessages(c *chat, r *richReply, j *job.Response, thread, prefix, body string, upload *delivery.Message) []delivery.Message {
	var msgs []delivery.Message
	if r.hasText {
		body, upload = strings.TrimSpace(prefix+"\n"+r.text), nil
	}
	blocks := r.blocks
	if blocks != nil {
		var extra []json.RawMessage
		if prefix != "" {
			extra = append(extra, contextBlock(prefix))
		}
		var err error
		if blocks, err = withBlocks(blocks, extra, nil); err != nil {
			r.notes = append(r.notes, replydir.BlocksName+" was not used: "+err.Error())
			blocks = nil
		}
	}
	notes := notesText(r.notes, r.mattermost)
	if blocks != nil && notes != "" {
		// Text is not shown with blocks: the notes need a block of their own.
		if b, err := withBlocks(blocks, nil, []json.RawMessage{contextBlock(notes)}); err == nil {
			blocks, notes = b, ""
		}
	}
	if notes != "" && blocks == nil {
		body, notes = strings.TrimSpace(body+"\n"+notes), ""
	}
	switch {
	case upload != nil && blocks == nil:
		// The output's upload carries the text, as without a reply directory.
		upload.Text = body
		msgs = append(msgs, *upload)
	default:
		if body != "" || blocks != nil {
			text := body
			if text == "" {
				text = strings.TrimSpace(prefix) // the blocks' notification text
			}
			if text == "" {
				text = fmt.Sprintf("Reply of job #%d", j.ID)
			}
			msgs = append(msgs, delivery.Message{Kind: delivery.KindPost, ThreadOf: thread, Channel: c.channel, Text: text, Blocks: blocks})
		}
		if notes != "" {
			// The blocks are full (50): the notes go in a message of their own.
			msgs = append(msgs, delivery.Message{Kind: delivery.KindPost, ThreadOf: thread, Channel: c.channel, Text: notes})
		}
		if upload != nil {
			upload.Text = "" // the answer above shows the preview
			msgs = append(msgs, *upload)
		}
	}
	for _, f := range r.files {
		content, err := os.Open(f.Path)
		if err != nil {
			fmt.Fprintf(s.Stderr, "%s: job %d: reply file %s: %v\n", DriverName, j.ID, f.Name, err)
			continue
		}
		// The outbox copies the content when it queues; the file is closed with the reply.
		r.opened = append(r.opened, content)
		// f.Name is masked, then made safe: a long secret is masked before any cut.
		msgs = append(msgs, delivery.Message{Kind: delivery.KindUpload, ThreadOf: thread, Channel: c.channel,
			Filename: f.Name, Title: f.Name, Content: content})
	}
	return msgs
}

// contextBlock is a context block of one mrkdwn line, cut to Slack's 3,000 characters.
func contextBlock(text string) json.RawMessage {
	b, _ := marshal(map[string]any{"type": "context", "elements": []any{
		map[string]any{"type": "mrkdwn", "text": cutRunes(text, 2990, "…")}}})
	return b
}

// marshal is json.Marshal without HTML escaping: the blocks stay as validated, byte for
// byte ("&lt;" of a neutralised mention is not re-escaped).
func marshal(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// withBlocks puts before and after around blocks, within Slack's 50.
func withBlocks(blocks json.RawMessage, before, after []json.RawMessage) (json.RawMessage, error) {
	var bs []json.RawMessage
	if err := json.Unmarshal(blocks, &bs); err != nil {
		return nil, err
	}
	all := append(append(before, bs...), after...)
	if len(all) > replies.MaxBlocksPerMessage {
		return nil, fmt.Errorf("with the executor's %d blocks it holds more than Slack's %d", len(before)+len(after), replies.MaxBlocksPerMessage)
	}
	return marshal(all)
}

// previewReply tells the job log, at the end of a stage that ran the job's commands, what
// cleanup will make of the reply directory as it is now: cleanup's own output reaches
// only the runner's log, and the job's author must see why a blocks.json is not used.
func (s *Stages) previewReply(j *job.Response, rec JobRecord) {
	dir := s.replyDir(j.ID)
	if _, err := os.Lstat(dir); err != nil {
		return
	}
	secrets := replies.SecretsOf(j, s.Getenv)
	rd, err := replydir.Read(dir, s.replyOptions(rec, secrets, ""))
	if err != nil {
		fmt.Fprintf(s.Stdout, "%s: reply directory: %v\n", DriverName, err)
		return
	}
	m := replies.NewMasker(secrets)
	if rd.HasMessage {
		fmt.Fprintf(s.Stdout, "%s: reply directory: %s (%d bytes) replaces the output in the chat reply\n", DriverName, replydir.MessageName, len(rd.Message))
	}
	if rd.Blocks != nil {
		if _, err := replies.ReplyBlocks(rd.Blocks, m, s.allowMentions(rec)); err != nil {
			rd.Notes = append(rd.Notes, replydir.BlocksName+" was not used: "+err.Error())
		} else {
			fmt.Fprintf(s.Stdout, "%s: reply directory: %s is valid Block Kit\n", DriverName, replydir.BlocksName)
		}
	}
	for _, f := range rd.Files {
		kind := "text, redacted"
		if !f.Text {
			kind = "binary, not redacted"
		}
		fmt.Fprintf(s.Stdout, "%s: reply directory: %s (%d bytes, %s) will be shared in the thread\n", DriverName, f.Name, f.Size, kind)
	}
	for _, n := range rd.Notes {
		fmt.Fprintf(s.Stdout, "%s: reply directory: %s\n", DriverName, m.Redact(n))
	}
}
