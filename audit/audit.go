// Package audit appends one JSON line per policy decision to the executor's audit log.
//
// Many jobs run at once (the runner's `concurrent`), each in its own executor process, and
// all of them append to the same file. Each record is therefore written with a single
// write(2) on a file opened with O_APPEND, under an exclusive flock(2): O_APPEND keeps
// writers from overwriting each other, and the lock keeps a long line from being interleaved
// with another on file systems that split large writes.
//
// The log is read by people who must not see secrets, so every string in a record passes
// through a Redactor before it is written: a requester can paste a token into CHAT_INPUT.
package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// MaxField bounds each string field of a record, so that one huge CHAT_INPUT cannot make a
// record that is slow to write, hard to read, or larger than a single atomic append.
const MaxField = 4096

// Masked replaces every secret in a record, the same marker GitLab uses in job logs.
const Masked = "[MASKED]"

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
	Decision string `json:"decision"` // "allow" or "deny"
	Reason   string `json:"reason"`

	// The chain (see chain.go), filled in by Append: the host that wrote the record, its
	// sequence number in the host's log, and the SHA-256 of the line before it.
	Host string `json:"host"`
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
}

// Redactor replaces secrets in text with Masked: exact values (masked variables, the job
// token) and tokens recognised by prefix (glpat-…), as the runner masks job logs.
type Redactor struct {
	secrets  []string // longest first, so a secret containing another is masked whole
	prefixes []string
}

// DefaultTokenPrefixes are GitLab's token prefixes, masked even when the job response does
// not list them in features.token_mask_prefixes.
var DefaultTokenPrefixes = []string{
	"glpat-", "gloas-", "gldt-", "glrt-", "glcbt-", "glptt-", "glft-", "glimt-",
	"glagent-", "glsoat-", "glffct-", "glrtr-", "GR1348941",
}

// NewRedactor returns a Redactor for the given exact secrets and token prefixes (in
// addition to DefaultTokenPrefixes). Empty strings are ignored.
func NewRedactor(secrets, prefixes []string) *Redactor {
	r := &Redactor{}
	seen := map[string]bool{}
	for _, s := range secrets {
		if s != "" && !seen[s] {
			seen[s] = true
			r.secrets = append(r.secrets, s)
		}
	}
	sort.SliceStable(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	seen = map[string]bool{}
	for _, p := range append(append([]string{}, DefaultTokenPrefixes...), prefixes...) {
		if p != "" && !seen[p] {
			seen[p] = true
			r.prefixes = append(r.prefixes, p)
		}
	}
	return r
}

// Redact returns s with every secret and every prefixed token replaced by Masked.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, Masked)
	}
	for _, p := range r.prefixes {
		s = maskPrefixed(s, p)
	}
	return s
}

// maskPrefixed masks prefix and the token characters following it.
func maskPrefixed(s, prefix string) string {
	if !strings.Contains(s, prefix) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, prefix)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		j := i + len(prefix)
		for j < len(s) && isTokenByte(s[j]) {
			j++
		}
		b.WriteString(Masked)
		s = s[j:]
	}
}

func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// Redacted returns rec with every string field redacted and cut to MaxField bytes.
// Redaction comes first, so a cut can never leave part of a secret behind.
func (rec Record) Redacted(r *Redactor) Record {
	for _, f := range []*string{
		&rec.JobName, &rec.Project, &rec.PipelineSource, &rec.User.Username,
		&rec.ChatUser, &rec.Channel, &rec.Input, &rec.Rule, &rec.Decision, &rec.Reason,
	} {
		*f = truncate(r.Redact(*f), MaxField)
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

// Append redacts rec with r, chains it to the record before it and appends it as one JSON
// line, then copies it to syslog when configured. The chain lock (an flock on the chain
// file, whose path survives rotation) makes reading the last record and writing the next
// one a single step for every process on the host.
func (l *Log) Append(rec Record, r *Redactor) error {
	rec = rec.Redacted(r)
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
