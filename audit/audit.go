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
	// Control is set on the records of approvals and cancels from chat (control.go).
	Control *Control `json:"control,omitempty"`

	// The chain (see chain.go), filled in by Append: the host that wrote the record, its
	// sequence number in the host's log, and the SHA-256 of the line before it.
	Host string `json:"host"`
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
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
	// Host names this host in every record; empty: os.Hostname.
	Host string
	// Syslog is the local syslog socket (/dev/log) that gets a copy of every record, for
	// shipping off the host; empty: none.
	Syslog string
}

// Append masks secrets in rec, chains it to the record before it and appends it as one
// JSON line, then copies it to syslog when configured. The chain lock (an flock on the chain
// file, whose path survives rotation) makes reading the last record and writing the next
// one a single step for every process on the host.
func (l *Log) Append(rec Record, secrets replies.Secrets) error {
	rec = rec.Redacted(secrets)
	if err := os.MkdirAll(filepath.Dir(l.Path), 0o700); err != nil {
		return fmt.Errorf("audit log %s: create directory: %w", l.Path, err)
	}
	cf, err := os.OpenFile(ChainPath(l.Path), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer cf.Close()
	if err := lockFile(cf); err != nil {
		return fmt.Errorf("audit log %s: lock: %w", l.Path, err)
	}
	f, err := os.OpenFile(l.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	// Also lock the log itself, for readers and writers that know only the file.
	if err := lockFile(f); err != nil {
		return fmt.Errorf("audit log %s: lock: %w", l.Path, err)
	}
	h, err := head(f, cf.Name())
	if err != nil {
		return fmt.Errorf("audit log %s: find the last record: %w", l.Path, err)
	}
	rec.Host, rec.Seq, rec.Prev = l.host(), h.Seq+1, h.Hash
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("audit log %s: encode record: %w", l.Path, err)
	}
	line = append(line, '\n')
	n, err := f.Write(line)
	if err == nil && n != len(line) {
		err = fmt.Errorf("short write (%d of %d bytes)", n, len(line))
	}
	if err != nil {
		return fmt.Errorf("audit log %s: append: %w", l.Path, err)
	}
	if err := writeHead(cf, chainHead{Seq: rec.Seq, Hash: lineHash(line)}); err != nil {
		return fmt.Errorf("audit log %s: chain file: %w", l.Path, err)
	}
	if l.Syslog != "" {
		if err := copyToSyslog(l.Syslog, rec, line); err != nil {
			return fmt.Errorf("audit log: the record is in %s but its syslog copy failed: %w", l.Path, err)
		}
	}
	return nil
}

func (l *Log) host() string {
	if l.Host != "" {
		return l.Host
	}
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

// lockFile takes an exclusive flock on f; closing f releases it.
func lockFile(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			return err
		}
	}
}
