// Package audit appends one JSON line per policy decision to the executor's audit log.
//
// Many jobs run at once (the runner's `concurrent`), each in its own executor process, and
// all of them append to the same file. Each record is therefore written with a single
// write(2) on a file opened with O_APPEND, under an exclusive flock(2): O_APPEND keeps
// writers from overwriting each other, and the lock keeps a long line from being interleaved
// with another on file systems that split large writes.
//
// The log is read by people who must not see secrets, so every string in a record passes
// through the replies redactor before it is written: a requester can paste a token into CHAT_INPUT.
package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/chatops-executor/chatops-executor/replies"
)

// MaxField bounds each string field of a record, so that one huge CHAT_INPUT cannot make a
// record that is slow to write, hard to read, or larger than a single atomic append.
const MaxField = 4096

// Masked replaces every secret in a record, the same marker GitLab uses in job logs.
const Masked = replies.Mask

// User is the GitLab user a record is about.
type User struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
}

// Record is one decision. Field names are the audit log's contract with whoever reads it.
type Record struct {
	Time           time.Time `json:"time"`
	JobID          int64     `json:"job_id"`
	JobName        string    `json:"job_name"`
	Project        string    `json:"project"`
	PipelineSource string    `json:"pipeline_source"`
	User           User      `json:"user"`
	// Verified says whether User was confirmed by GitLab (true) or only claimed by the
	// job's variables (false).
	Verified bool   `json:"verified"`
	ChatUser string `json:"chat_user"`
	Channel  string `json:"channel"`
	Input    string `json:"input"`
	Rule     string `json:"rule"`
	Decision string `json:"decision"` // "allow" or "deny"; "retry" notes a retried prepare of a decided job
	Reason   string `json:"reason"`
}

// Redact masks secrets in s the way every other text that leaves the host is masked
// (replies.Redact): one redactor for replies, uploads, previews and the audit log, so a
// secret the reply hides is never readable here.
func Redact(s string, secrets replies.Secrets) string { return replies.Redact(s, secrets) }

// Redacted returns rec with every string field redacted and cut to MaxField bytes.
// Redaction comes first, so a cut can never leave part of a secret behind.
func (rec Record) Redacted(secrets replies.Secrets) Record {
	m := replies.NewMasker(secrets)
	for _, f := range []*string{
		&rec.JobName, &rec.Project, &rec.PipelineSource, &rec.User.Username,
		&rec.ChatUser, &rec.Channel, &rec.Input, &rec.Rule, &rec.Decision, &rec.Reason,
	} {
		*f = truncate(m.Redact(*f), MaxField)
	}
	return rec
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("…[%d bytes cut]", len(s)-cut)
}

// Log is an append-only audit log file.
type Log struct {
	// Path is the file. Its directory is created (mode 0700) when missing, and the file
	// itself with mode 0600: decisions name people and what they asked for.
	Path string
}

// Append masks secrets in rec and appends it as one JSON line.
func (l *Log) Append(rec Record, secrets replies.Secrets) error {
	line, err := json.Marshal(rec.Redacted(secrets))
	if err != nil {
		return fmt.Errorf("audit log %s: encode record: %w", l.Path, err)
	}
	line = append(line, '\n')
	if err := os.MkdirAll(filepath.Dir(l.Path), 0o700); err != nil {
		return fmt.Errorf("audit log %s: create directory: %w", l.Path, err)
	}
	f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	fd := int(f.Fd())
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("audit log %s: lock: %w", l.Path, err)
	}
	defer unix.Flock(fd, unix.LOCK_UN) //nolint:errcheck // closing the file releases it anyway
	n, err := f.Write(line)
	if err == nil && n != len(line) {
		err = fmt.Errorf("short write (%d of %d bytes)", n, len(line))
	}
	if err != nil {
		return fmt.Errorf("audit log %s: append: %w", l.Path, err)
	}
	return nil
}
