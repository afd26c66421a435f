package replies

import (
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// This file is format.go for Mattermost, whose posts are Markdown, not Slack's mrkdwn. The
// dangers differ: a plain "@channel", "@all", "@here" or "@someone" in a post notifies
// people, "[text](url)" makes a link and "![](url)" an image the client fetches, and
// * _ ` ~ # > | shape the text. So every string from the job is escaped character by
// character where Markdown applies, backticks are kept out of code spans and runs of
// three out of code blocks, and every @ that could start a mention — in code too, where
// no client should act on it but the guard costs nothing — is followed by a zero-width
// space, which ends the name Mattermost would look up.

// MattermostMaxRunes is the longest message a Mattermost post may have
// (model.PostMessageMaxRunesV2).
const MattermostMaxRunes = 16383

// Markdown renders replies for Mattermost. Username is the requester's Mattermost
// username, looked up from CHAT_USER_ID by the caller; empty: no mention.
type Markdown struct {
	Username string
}

var mmUsernameRe = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)

// mention is "@username " for a username Mattermost could have issued: anything else
// could be markup, and is dropped.
func (m Markdown) mention() string {
	if mmUsernameRe.MatchString(m.Username) {
		return "@" + m.Username + " "
	}
	return ""
}

// EscapeMarkdown makes s plain text in a Mattermost post: Markdown's punctuation is
// backslash-escaped and mentions are broken.
func EscapeMarkdown(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_{}[]()#+-.!|<>~:&\"'=$^%", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return breakMentions(b.String())
}

// breakMentions puts a zero-width space after every @ that is not inside a word (an
// e-mail address's @ is left alone: Mattermost does not read it as a mention either).
func breakMentions(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	var b strings.Builder
	prev := rune(0)
	for _, r := range s {
		b.WriteRune(r)
		if r == '@' && !isWordRune(prev) {
			b.WriteString("\u200b")
		}
		prev = r
	}
	return b.String()
}

func isWordRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' || r > 0x7f
}

// mdCodeBlock fences plain text; inside a code block only a run of three backticks (or
// tildes at a line start) could end it, and mentions are broken anyway.
func mdCodeBlock(plain string) string {
	return "```\n" + breakFences(breakTildeFences(breakMentions(plain))) + "\n```"
}

// breakTildeFences keeps a "~~~" line from being read as a fence.
func breakTildeFences(s string) string {
	if !strings.Contains(s, "~~~") {
		return s
	}
	return strings.ReplaceAll(s, "~~~", "~\u200b~~")
}

func mdInlineCode(plain string) string {
	return "`" + breakMentions(strings.ReplaceAll(plain, "`", "'")) + "`"
}

// mdLink is [job #N](url), or the plain label when the URL could break out of the link.
func mdLink(j Job) string {
	label := "job \\#" + strconv.FormatInt(j.ID, 10)
	if j.URL == "" || strings.ContainsAny(j.URL, "()[]<> \n\\`") {
		return label
	}
	return "[" + label + "](" + j.URL + ")"
}

func (m Markdown) what(j Job) string {
	s := "**" + EscapeMarkdown(j.clip(j.Name, 100)) + "**"
	if j.Project != "" {
		s += " in " + EscapeMarkdown(j.clip(j.Project, 200))
	}
	return s
}

// StartText is StartText in Markdown.
func (m Markdown) StartText(j Job) string {
	s := ":arrow_forward: " + m.mention() + "started " + m.what(j)
	if in := j.clip(j.Input, 200); in != "" {
		s += " with " + mdInlineCode(in)
	}
	return s + " · " + mdLink(j)
}

// ProgressText is ProgressText in Markdown.
func (m Markdown) ProgressText(j Job, elapsed time.Duration, lastLine string) string {
	s := ":hourglass_flowing_sand: " + m.mention() + m.what(j) + " running for " + EscapeMarkdown(roundDuration(elapsed)) + " · " + mdLink(j)
	if l := oneLine(lastLine, 300); l != "" {
		s += "\n> " + EscapeMarkdown(l)
	}
	return s
}

// StatusText is StatusText in Markdown.
func (m Markdown) StatusText(j Job, s Status) string {
	emoji := statusEmoji[s.State]
	if emoji == "" {
		emoji = ":grey_question:"
	}
	b := emoji + " " + m.mention() + m.what(j) + " " + s.State
	switch {
	case s.State == "failed" && s.ExitCode > 0:
		b += " with exit code " + strconv.Itoa(s.ExitCode)
	case s.State == "denied" && s.Reason != "":
		b += ": " + EscapeMarkdown(j.clip(s.Reason, 500))
	case (s.State == "failed" || s.State == "stopped") && s.Reason != "":
		b += ": " + EscapeMarkdown(j.clip(s.Reason, 300))
	}
	if s.Elapsed > 0 && s.State != "denied" {
		b += " after " + EscapeMarkdown(roundDuration(s.Elapsed))
	}
	return b + " · " + mdLink(j)
}

// DeniedText is DeniedText in Markdown: nothing the job controls appears.
func (Markdown) DeniedText(id int64, rule, url string) string {
	return ":lock: The runner's policy denied your chat command (rule " + mdInlineCode(oneLine(rule, 100)) + "); the job's log says why · " + mdLink(Job{ID: id, URL: url})
}

// ApprovalDeniedText is ApprovalDeniedText in Markdown: why is the executor's text, with
// ids and rule names in it, escaped all the same.
func (Markdown) ApprovalDeniedText(id int64, url, why string) string {
	return ":lock: Your chat command did not run: " + EscapeMarkdown(oneLine(why, 500)) + " · " + mdLink(Job{ID: id, URL: url})
}

// FormatOutput is FormatOutput in Markdown. limit is at most MattermostMaxRunes.
func (Markdown) FormatOutput(src io.ReadSeeker, size int64, s Status, limit int) (Output, error) {
	return formatOutput(src, size, s, min(limit, MattermostMaxRunes), mdCodeBlock)
}

// markdownMentionRe matches Mattermost's mentions that notify a whole channel: @all,
// @channel and @here, not followed by a character that would make them a username.
var markdownMentionRe = regexp.MustCompile(`(?i)(^|[^a-z0-9_.\-])@(all|channel|here)\b`)

// NeutraliseMarkdownMentions makes Mattermost's channel-wide mentions in s show as text: a
// zero-width space goes after their @. Mentions of one user (@alice) stay, as <@U…> does in
// Slack.
func NeutraliseMarkdownMentions(s string) string {
	return markdownMentionRe.ReplaceAllString(s, "$1@\u200b$2")
}

// ReplyMarkdown is a job's message.md as it is posted to Mattermost: masked, and with
// channel-wide mentions neutralised unless allowMentions. The job wrote Markdown on
// purpose, so it is not escaped.
func ReplyMarkdown(s string, m *Masker, allowMentions bool) string {
	s = m.Redact(strings.ToValidUTF8(s, "\uFFFD"))
	if !allowMentions {
		s = NeutraliseMarkdownMentions(s)
	}
	return strings.TrimSpace(s)
}
