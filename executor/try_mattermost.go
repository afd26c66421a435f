package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery"
	"github.com/chatops-executor/chatops-executor/delivery/mattermostrecorder"
	"github.com/chatops-executor/chatops-executor/delivery/slackrecorder"
	"github.com/chatops-executor/chatops-executor/replies"
	"github.com/chatops-executor/chatops-executor/tryjob"
)

// try --channel with a Mattermost channel id runs the job as one started from Mattermost:
// the executor replies to an in-process fake Mattermost (or, with --post and --config, the
// configured server), in Mattermost's Markdown, and try shows what the channel would.

// tryMattermostUser is --chat-user's default for a Mattermost channel: a Mattermost id.
const tryMattermostUser = "localtryuserlocaltryuser01"

// startFakeMattermost starts the loopback Mattermost with channel and the requester in it,
// and writes its throwaway token where [mattermost] token_file will say.
func (a *app) startFakeMattermost(s *trySetup, dir string, req tryRequest) error {
	tok, err := randomToken("")
	if err != nil {
		return err
	}
	tok = (tok + strings.Repeat("0", 26))[:26] // a Mattermost token's shape
	fake, err := mattermostrecorder.Start(tok)
	if err != nil {
		return fmt.Errorf("try: start the local Mattermost: %w", err)
	}
	fake.AddChannel(req.channel)
	fake.AddUser(req.chatUser, mattermostName(req.user))
	s.mm, s.mmURL, s.mmTokenFile = fake, fake.URL(), filepath.Join(dir, "mattermost-token")
	if err := os.WriteFile(s.mmTokenFile, []byte(tok+"\n"), 0o600); err != nil {
		fake.Close()
		return fmt.Errorf("try: %w", err)
	}
	return nil
}

var notInUsername = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// mattermostName is the GitLab login as a Mattermost username could be.
func mattermostName(login string) string {
	n := strings.ToLower(notInUsername.ReplaceAllString(login, ""))
	if n == "" || n[0] < 'a' || n[0] > 'z' {
		n = "u" + n
	}
	return n
}

// mattermostTOML is the [mattermost] table of try's default config.
func mattermostTOML(s *trySetup) string {
	return fmt.Sprintf("\n[mattermost]\nurl = %q\ntoken_file = %q\n", s.mmURL, s.mmTokenFile)
}

// renderMattermost shows the fake Mattermost's posts as try shows Slack's: the Markdown's
// escapes undone and the zero-width spaces that break mentions dropped, for reading.
func renderMattermost(w io.Writer, fake *mattermostrecorder.Server, users map[string]string) error {
	var msgs []slackrecorder.Message
	for _, p := range fake.Posts("") {
		m := slackrecorder.Message{Channel: p.ChannelID, TS: p.ID, ThreadTS: p.RootID, Text: unMarkdown(p.Message),
			Ephemeral: p.Ephemeral, User: p.ForUser}
		for range p.Edits + 1 {
			m.History = append(m.History, m.Text)
		}
		for _, f := range p.Files {
			m.Files = append(m.Files, slackrecorder.File{ID: f.ID, Filename: f.Name, Title: f.Name, Content: f.Content})
		}
		msgs = append(msgs, m)
	}
	return tryjob.Render(w, msgs, users)
}

var mdEscape = regexp.MustCompile("\\\\([!-/:-@\\[-`{-~])")

// unMarkdown undoes EscapeMarkdown outside code blocks, and drops zero-width spaces.
func unMarkdown(s string) string {
	parts := strings.Split(s, "```")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = mdEscape.ReplaceAllString(parts[i], "$1")
	}
	return strings.ReplaceAll(strings.Join(parts, "```"), "\u200b", "")
}

// showMattermostDenial is showDenial for a Mattermost channel.
func (a *app) showMattermostDenial(ctx context.Context, s *trySetup, chat tryjob.Chat, job *tryjob.Job, de *deniedError) error {
	if s.mm != nil {
		defer s.mm.Close()
	}
	token, err := config.ReadSecret(s.mmTokenFile)
	if err != nil {
		return fmt.Errorf("try: read mattermost.token_file: %w", err)
	}
	url := fmt.Sprintf("%s/%s/-/jobs/%d", chat.ServerURL, chat.Project, chat.JobID)
	text := replies.Markdown{}.DeniedText(chat.JobID, de.d.Rule, url)
	note := ""
	poster, err := delivery.NewMattermost(token, s.mmURL)
	if err == nil {
		note, err = poster.PostEphemeralNote(ctx, chat.Channel, chat.UserID, text)
	}
	switch {
	case s.mm != nil:
		fmt.Fprintf(a.stdout, "\n── what the requester would see (nothing was posted to Mattermost; --post posts it) ──\n")
		if rerr := renderMattermost(a.stdout, s.mm, map[string]string{chat.UserID: chat.User}); rerr != nil {
			return rerr
		}
	case err != nil:
		fmt.Fprintf(a.stdout, "\n── the denial could not be posted to Mattermost: %v ──\n", err)
	case note != "":
		fmt.Fprintf(a.stdout, "\n── the denial was posted to Mattermost: %s ──\n", note)
	default:
		fmt.Fprintf(a.stdout, "\n── the denial was posted to Mattermost, channel %s, for %s only ──\n", chat.Channel, chat.UserID)
	}
	return fmt.Errorf("job %s was refused by the policy: %s", job.Name, de.d.Reason)
}
