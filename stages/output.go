package stages

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/chatops-executor/chatops-executor/delivery"

	"github.com/chatops-executor/chatops-executor/replies"
)

// buildOutput cleans the captured reply source into a plain-text file in the job's state
// and formats it. The returned file (nil when there is none) is the upload's content.
// withStatus says the output shares its post with the status line, which then counts
// against the chat's post limit.
func (s *Stages) buildOutput(st State, c *chat, status replies.Status, withStatus bool) (replies.Output, *os.File, error) {
	secrets := c.secrets
	counts, err := readCounts(st)
	if err != nil {
		return replies.Output{}, nil, err
	}
	source := replies.Decide(counts)
	path := filepath.Join(st.Dir, outputSpool)
	if source == replies.FromChatReply {
		path = filepath.Join(st.Dir, sectionSpool)
	}
	raw, err := ReadSpool(path)
	if err != nil {
		return replies.Output{}, nil, err
	}
	defer raw.Close()
	f, err := os.OpenFile(filepath.Join(st.Dir, "reply.txt"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return replies.Output{}, nil, fmt.Errorf("write reply: %w", err)
	}
	w := bufio.NewWriter(f)
	// Echoed commands are dropped from a chat_reply section too: a section that spans
	// several commands would otherwise carry the runner's "$ command" lines, which GitLab
	// keeps and nobody wants in chat.
	// GitLab drops the first line of the chat_reply section (the rest of the start
	// marker's line; Gitlab::Chat::Output#without_executed_command_line): so do we.
	cleaner := replies.NewCleaner(w, replies.CleanOptions{Plain: true, Secrets: secrets, DropCommands: true,
		DropFirstLine: source == replies.FromChatReply})
	err = copySpool(cleaner, raw)
	if cerr := cleaner.Close(); err == nil {
		err = cerr
	}
	if note := readLossNote(st); note != "" && err == nil {
		_, err = fmt.Fprintf(w, "\n[… the executor could not capture all of the output; the reply is incomplete: %s …]\n", noteText(note))
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		f.Close()
		return replies.Output{}, nil, fmt.Errorf("clean reply: %w", err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return replies.Output{}, nil, fmt.Errorf("read reply: %w", err)
	}
	limit := c.inlineLimit
	if c.backend == delivery.BackendMattermost && withStatus {
		// Mattermost refuses a longer post rather than cutting it: the status line and its
		// newline must fit beside the output.
		limit = min(limit, replies.MattermostMaxRunes-utf8.RuneCountInString(c.render.StatusText(c.job, status))-1)
	}
	out, err := c.render.FormatOutput(f, size, status, limit)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return replies.Output{}, nil, err
	}
	return out, f, nil
}

// copySpool copies a spool into w. Where bytes are missing — left out to keep the spool's
// bound, or never captured — the partial lines on both sides of the cut are dropped (a
// secret cut in half would no longer match its mask) and a line says how much is missing.
func copySpool(w io.Writer, r *SpoolReader) error {
	if len(r.Cuts) == 0 {
		_, err := io.Copy(w, r)
		return err
	}
	br := bufio.NewReader(r)
	var pos int64
	for i, c := range r.Cuts {
		if i > 0 {
			// The partial first line after the previous cut, however long.
			n, err := skipLine(br, c.At-pos)
			if err != nil {
				return err
			}
			pos += n
		}
		if _, err := io.Copy(&uptoLastNewline{w: w}, io.LimitReader(br, c.At-pos)); err != nil {
			return err
		}
		if _, err := io.WriteString(w, c.note()); err != nil {
			return err
		}
		pos = c.At
	}
	if _, err := skipLine(br, -1); err != nil {
		return err
	}
	_, err := io.Copy(w, br)
	return err
}

// note is the line that stands for the missing bytes in the reply.
func (c SpoolCut) note() string {
	switch {
	case c.Lost == 0:
		return fmt.Sprintf("\n[… %d bytes of output left out …]\n", c.Omitted)
	case c.Omitted == 0:
		return fmt.Sprintf("\n[… %d bytes of output missing: the reply capture fell behind the job …]\n", c.Lost)
	default:
		return fmt.Sprintf("\n[… %d bytes of output left out, %d more missing: the reply capture fell behind the job …]\n", c.Omitted, c.Lost)
	}
}

// skipLine discards br up to and including its first newline, or to its end, reading at
// most limit bytes (no limit when negative). It returns how many bytes it discarded.
func skipLine(br *bufio.Reader, limit int64) (int64, error) {
	var skipped int64
	for limit < 0 || skipped < limit {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err == io.EOF {
				return skipped, nil
			} else if err != nil {
				return skipped, err
			}
		}
		n := int64(br.Buffered())
		if limit >= 0 {
			n = min(n, limit-skipped)
		}
		buf, _ := br.Peek(int(n))
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			_, _ = br.Discard(i + 1)
			return skipped + int64(i) + 1, nil
		}
		_, _ = br.Discard(int(n))
		skipped += n
	}
	return skipped, nil
}

// uptoLastNewline passes whole lines through and drops a partial last line. A partial
// line longer than pendingMax is dropped whole rather than held in memory.
type uptoLastNewline struct {
	w        io.Writer
	pending  []byte
	overflow bool
}

const pendingMax = 64 << 10

func (u *uptoLastNewline) Write(p []byte) (int, error) {
	n := len(p)
	first := bytes.IndexByte(p, '\n')
	if first < 0 {
		u.hold(p)
		return n, nil
	}
	// The line that was pending ends here.
	if !u.overflow {
		if _, err := u.w.Write(u.pending); err != nil {
			return 0, err
		}
		if _, err := u.w.Write(p[:first+1]); err != nil {
			return 0, err
		}
	}
	u.pending, u.overflow = u.pending[:0], false
	rest := p[first+1:]
	last := bytes.LastIndexByte(rest, '\n')
	if last >= 0 {
		if _, err := u.w.Write(rest[:last+1]); err != nil {
			return 0, err
		}
		rest = rest[last+1:]
	}
	u.hold(rest)
	return n, nil
}

func (u *uptoLastNewline) hold(p []byte) {
	if u.overflow || len(u.pending)+len(p) > pendingMax {
		u.pending, u.overflow = u.pending[:0], true
		return
	}
	u.pending = append(u.pending, p...)
}
