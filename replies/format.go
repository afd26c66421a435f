package replies

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// This file turns a job and its cleaned output into Slack message text (mrkdwn). Every
// string from the job — its name, its input, its output — is escaped here or arrives
// escaped, so a job cannot make the executor post a link, a mention or an @channel.

// Job is what a reply says about the job. Fields come from the runner's job response and
// the executor's config; Input must already be redacted.
type Job struct {
	ID       int64
	Name     string
	Project  string
	URL      string // the job's web page; empty when no trustworthy URL is known
	ChatUser string // CHAT_USER_ID, mentioned when it looks like a Slack user id
	Input    string // CHAT_INPUT
	// Secrets are masked in every text made from the job (its name, project, input and
	// any reason quoted), before it is cut or escaped: the same masking as the output's.
	Secrets Secrets
}

// clip masks the job's secrets in s, then shortens it to one line of at most n characters.
// Masking comes first, so the cut can never leave part of a secret.
func (j Job) clip(s string, n int) string { return oneLine(Redact(s, j.Secrets), n) }

// Status is how the job ended.
type Status struct {
	State    string // "succeeded", "failed", "cancelled", "timed out", "stopped" or "denied"
	ExitCode int
	Elapsed  time.Duration
	Reason   string // for "denied", and failures of the executor itself
	// CancelledBy is the Slack user who cancelled the job from chat; the state is then
	// "failed", which is what GitLab shows of such a job.
	CancelledBy string
}

// Failed reports whether the status is anything but success.
func (s Status) Failed() bool { return s.State != "succeeded" }

var (
	userIDRe    = regexp.MustCompile(`^[UW][A-Z0-9]{2,30}$`)
	channelIDRe = regexp.MustCompile(`^[CGD][A-Z0-9]{2,30}$`)
)

// ValidChannel reports whether id looks like a Slack channel id. CHAT_CHANNEL is a job
// variable: anything else is not posted to.
func ValidChannel(id string) bool { return channelIDRe.MatchString(id) }

// ValidUser reports whether id looks like a Slack user id.
func ValidUser(id string) bool { return userIDRe.MatchString(id) }

func mention(j Job) string {
	if ValidUser(j.ChatUser) {
		return "<@" + j.ChatUser + "> "
	}
	return ""
}

// link renders the job link, or just its name when no URL is known.
func link(j Job) string {
	label := fmt.Sprintf("job #%d", j.ID)
	if j.URL == "" || strings.ContainsAny(j.URL, "|<> \n") {
		return label
	}
	return "<" + j.URL + "|" + label + ">"
}

// what names the job: *deploy* in ops/infra.
func what(j Job) string {
	s := "*" + EscapeSlack(j.clip(j.Name, 100)) + "*"
	if j.Project != "" {
		s += " in " + EscapeSlack(j.clip(j.Project, 200))
	}
	return s
}

// StartText is the message posted when a job starts.
func StartText(j Job) string {
	s := ":arrow_forward: " + mention(j) + "started " + what(j)
	if in := j.clip(j.Input, 200); in != "" {
		s += " with " + inlineCode(in)
	}
	return s + " · " + link(j)
}

// ProgressText is the start message while the job runs: elapsed time and the last line
// of output (already cleaned and redacted).
func ProgressText(j Job, elapsed time.Duration, lastLine string) string {
	s := ":hourglass_flowing_sand: " + mention(j) + what(j) + " running for " + EscapeSlack(roundDuration(elapsed)) + " · " + link(j)
	if l := oneLine(lastLine, 300); l != "" {
		s += "\n> " + EscapeSlack(l)
	}
	return s
}

var statusEmoji = map[string]string{
	"succeeded": ":white_check_mark:",
	"failed":    ":x:",
	"cancelled": ":no_entry_sign:",
	"timed out": ":alarm_clock:",
	"denied":    ":lock:",
	"stopped":   ":octagonal_sign:",
}

// StatusText is the one-line final status: who, what, how it ended, how long, where.
func StatusText(j Job, s Status) string {
	emoji := statusEmoji[s.State]
	if emoji == "" {
		emoji = ":grey_question:"
	}
	b := emoji + " " + mention(j) + what(j) + " " + s.State
	switch {
	case s.State == "failed" && s.CancelledBy != "":
		b += ": cancelled " + CancelledBy(s.CancelledBy)
	case s.State == "failed" && s.ExitCode > 0:
		b += fmt.Sprintf(" with exit code %d", s.ExitCode)
	case s.State == "denied" && s.Reason != "":
		b += ": " + EscapeSlack(j.clip(s.Reason, 500))
	case (s.State == "failed" || s.State == "stopped") && s.Reason != "":
		b += ": " + EscapeSlack(j.clip(s.Reason, 300))
	}
	if s.Elapsed > 0 && s.State != "denied" {
		b += " after " + EscapeSlack(roundDuration(s.Elapsed))
	}
	return b + " · " + link(j)
}

// DeniedText is the ephemeral message that tells the requester their job did not run. It
// quotes nothing the job controls — no job name, input or reason built from them: the
// bot's voice must not relay a job's text. Only the job id, the policy's rule name (the
// admin's) and the job's page on the configured GitLab (url, "" for none) appear; the
// reason is in the job log.
func DeniedText(id int64, rule, url string) string {
	return ":lock: The runner's policy denied your chat command (rule " + inlineCode(oneLine(rule, 100)) + "); the job's log says why · " + link(Job{ID: id, URL: url})
}

// Output is the output part of a reply.
type Output struct {
	// Text is the message text: a code block with the output, or a preview of it. Empty
	// when there is nothing to show (success with no output).
	Text string
	// Upload is set when the whole output goes along as a file, because it is longer than
	// the inline limit.
	Upload bool
}

// Preview sizes: the head and tail shown for a long successful output, and the tail shown
// for a failure.
const (
	previewHead = 10
	previewTail = 10
	failureTail = 25
)

// FormatOutput builds the output part of a reply from the cleaned, plain (unescaped)
// output, read from src of size bytes. Within limit characters the whole output is shown;
// beyond it the output is uploaded as a file and the message shows a preview: head and
// tail on success, the last lines on failure, where the error usually is.
func FormatOutput(src io.ReadSeeker, size int64, s Status, limit int) (Output, error) {
	return formatOutput(src, size, s, limit, codeBlock)
}

// formatOutput is FormatOutput in a chat's markup: fence renders plain text as a code
// block, italics are "_…_" in both.
func formatOutput(src io.ReadSeeker, size int64, s Status, limit int, fence func(string) string) (Output, error) {
	if size == 0 {
		if s.Failed() && s.State != "denied" {
			return Output{Text: "_The job printed nothing._"}, nil
		}
		return Output{}, nil
	}
	// Escaping and the code fence can only grow the text; measure what will be shown.
	if size <= int64(limit)*utf8.UTFMax {
		all, err := io.ReadAll(src)
		if err != nil {
			return Output{}, fmt.Errorf("read output: %w", err)
		}
		if text := fence(string(all)); utf8.RuneCountInString(text) <= limit {
			return Output{Text: text}, nil
		}
		if _, err := src.Seek(0, io.SeekStart); err != nil {
			return Output{}, fmt.Errorf("read output: %w", err)
		}
	}
	var preview, note string
	if s.Failed() {
		lines, err := LastLines(src, failureTail, DefaultPreviewLineBytes)
		if err != nil {
			return Output{}, fmt.Errorf("read output: %w", err)
		}
		preview = strings.Join(lines, "\n")
		note = fmt.Sprintf("_Last %d lines; the whole output is attached._", len(lines))
	} else {
		ex, err := HeadTail(src, previewHead, previewTail, DefaultPreviewLineBytes)
		if err != nil {
			return Output{}, fmt.Errorf("read output: %w", err)
		}
		preview = ex.String()
		note = "_Output is long; the whole of it is attached._"
	}
	text := note + "\n" + fence(preview)
	// A preview of long lines can itself exceed the limit: cut it, keeping the end.
	if n := utf8.RuneCountInString(text); n > limit {
		text = note + "\n" + fence(keepEnd(preview, limit-utf8.RuneCountInString(note)-16))
	}
	return Output{Text: text, Upload: true}, nil
}

// codeBlock escapes plain text and fences it. Three backticks in a row inside the output
// would end the block early, so a zero-width space follows every second backtick of a
// longer run: no run of three is left, however long the run was.
func codeBlock(plain string) string {
	return "```\n" + breakFences(EscapeSlack(plain)) + "\n```"
}

func breakFences(s string) string {
	if !strings.Contains(s, "```") {
		return s
	}
	var b strings.Builder
	run := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '`' {
			run = 0
		} else if run == 2 {
			b.WriteString("\u200b")
			run = 0
		}
		if s[i] == '`' {
			run++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func inlineCode(plain string) string {
	return "`" + strings.ReplaceAll(EscapeSlack(plain), "`", "'") + "`"
}

// oneLine shortens s to its first line and at most n characters.
func oneLine(s string, n int) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i] + " …"
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) > n {
		r := []rune(s)
		s = string(r[:n]) + "…"
	}
	return s
}

// keepEnd keeps the last n characters of s, from a line start where it can.
func keepEnd(s string, n int) string {
	r := []rune(s)
	if n <= 0 {
		return ""
	}
	if len(r) <= n {
		return s
	}
	tail := string(r[len(r)-n:])
	if i := strings.IndexByte(tail, '\n'); i >= 0 && i < len(tail)-1 {
		tail = tail[i+1:]
	}
	return tail
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "<1s"
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}
