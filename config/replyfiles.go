package config

import "fmt"

// The [slack] keys for what a job may share from its CHATOPS_REPLY_DIR (see the README's
// "Rich replies"): reply_files says whether binary files may be uploaded, since they
// cannot be redacted; the limits bound what one job can make the executor copy and send.

// Reply files settings.
const (
	ReplyFilesText = "text" // only UTF-8 text files, redacted
	ReplyFilesAll  = "all"  // binary files too, unredacted
)

// maxReplyFile is Slack's own limit on one uploaded file (1 GB).
const maxReplyFile = Size(1 << 30)

func (s Slack) validateReplyFiles() []Problem {
	var ps []Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if s.ReplyFiles != ReplyFilesText && s.ReplyFiles != ReplyFilesAll {
		add("slack.reply_files", `must be "text" (text files only, redacted) or "all" (binary files too, which cannot be redacted), got %q`, s.ReplyFiles)
	}
	if s.ReplyMaxFiles < 0 || s.ReplyMaxFiles > 100 {
		add("slack.reply_max_files", "must be between 0 (no files) and 100, got %d", s.ReplyMaxFiles)
	}
	if s.ReplyMaxFileSize < 1 || s.ReplyMaxFileSize > maxReplyFile {
		add("slack.reply_max_file_size", "must be between 1 byte and 1GiB (Slack's limit for one file), got %s", s.ReplyMaxFileSize)
	}
	if s.ReplyMaxTotalSize < s.ReplyMaxFileSize {
		add("slack.reply_max_total_size", "must be at least reply_max_file_size (%s), got %s", s.ReplyMaxFileSize, s.ReplyMaxTotalSize)
	}
	return ps
}
