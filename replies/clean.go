package replies

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// DefaultMaxLineBytes is the longest line the Cleaner keeps whole; a longer
// one is split. Chat replies gain nothing from longer lines, and the bound
// is what keeps cleaning a 1 GiB capture in constant memory.
const DefaultMaxLineBytes = 16 << 10

// minMaxLineBytes keeps room for the echo prefix and a few runes.
const minMaxLineBytes = 64

// echoPrefix starts every command line the runner's bash shell echoes
// (shells/bash.go Noticef: ANSI_BOLD_GREEN + "$ " + command + ANSI_RESET),
// including the "# collapsed multi-line command" variant.
const echoPrefix = "\x1b[32;1m$ "

// buildScriptWarning starts the line the runner's custom executor writes
// into the job log for every user script (executors/custom/custom.go).
const buildScriptWarning = "WARNING: Starting with version 17.0 the 'build_script' stage will be replaced with 'step_script'"

// CleanOptions tune a Cleaner.
type CleanOptions struct {
	// DropCommands removes what the runner's script prints about the
	// commands it runs: echoed command lines ("$ cmd", and "$ cmd #
	// collapsed multi-line command"), and the script_step sections
	// FF_SCRIPT_SECTIONS wraps multi-line commands in. Set it for the
	// fallback reply; a chat_reply section is the job's own words.
	DropCommands bool
	// MaxLineBytes bounds a line; 0 means DefaultMaxLineBytes.
	MaxLineBytes int
	// Plain skips the Slack escaping of & < >: for text that leaves as a file
	// rather than a message. Escape it later with EscapeSlack where it is shown
	// inline.
	Plain bool
	// Secrets are masked after cleaning, before escaping: a second pass
	// behind the one the caller runs on raw output, for secrets that only
	// appear once escapes and redraws are gone.
	Secrets Secrets
	// DropFirstLine drops everything up to and including the first "\n" of
	// the raw input, as GitLab's Gitlab::Chat::Output#without_executed_command_line
	// does to the chat_reply section: the rest of the start marker's line.
	DropFirstLine bool
}

// Cleaner turns raw job output into reply text, streaming: runner
// timestamps and section markers are removed, ANSI escapes stripped, `\r`
// redraws collapsed to what the terminal finally showed, invalid UTF-8
// replaced with U+FFFD, secrets masked and Slack's control characters
// (& < >) escaped. Lines are joined with "\n"; leading and trailing blank
// lines and trailing white space are dropped.
//
// Memory is bounded whatever the input: two line buffers of MaxLineBytes
// (the current redraw and the previous one), MaxMarkerLen for a pending
// marker, 32 bytes for a pending timestamp, and the Redactor's longest
// secret. An over-long line is split, never buffered whole. A Cleaner is
// not safe for concurrent use.
type Cleaner struct {
	opts  CleanOptions
	ts    tsStripper
	scan  markerScanner
	term  term
	red   *Redactor
	split lineSplitter
	esc   slackEscaper
	open  []string // sections started and not yet ended, outermost first
	// dropRest: the split line being written is the runner's build_script
	// warning, dropped whole.
	dropRest bool
	lbuf     []byte // the line being written, with its separator
	fix      []byte // a line with invalid UTF-8 replaced
	began    bool   // a line has been written
	cont     bool   // the line being written was split: more of it follows
	blanks   int    // blank lines not yet written: only between text
	skip     bool   // DropFirstLine: still inside the first raw line
	err      error
	closed   bool
}

// NewCleaner returns a Cleaner writing reply text to w. Close it to flush.
func NewCleaner(w io.Writer, opts CleanOptions) *Cleaner {
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	opts.MaxLineBytes = max(opts.MaxLineBytes, minMaxLineBytes)
	c := &Cleaner{opts: opts, skip: opts.DropFirstLine}
	c.esc.w = w
	// A long line is split after masking, never before: a secret across the
	// split would otherwise reach chat in two unmasked halves.
	c.split.max = opts.MaxLineBytes
	c.split.w = w
	if !opts.Plain {
		c.split.w = &c.esc
	}
	c.red = NewRedactor(&c.split, opts.Secrets)
	c.term.c = c
	c.scan.sink = (*cleanSink)(c)
	c.ts.next = &c.scan
	c.ts.atStart = true
	return c
}

// Clean copies src to dst through a Cleaner.
func Clean(dst io.Writer, src io.Reader, opts CleanOptions) error {
	c := NewCleaner(dst, opts)
	if _, err := io.Copy(c, src); err != nil {
		return err
	}
	return c.Close()
}

// CleanString cleans a whole string; a convenience for short output.
func CleanString(s string, opts CleanOptions) string {
	var b strings.Builder
	_ = Clean(&b, strings.NewReader(s), opts)
	return b.String()
}

// CleanCutString cleans s, the first bytes of output that went on (a line cut
// to a bound before it was cleaned), with Cleaner.CloseCut.
func CleanCutString(s string, opts CleanOptions) string {
	var b strings.Builder
	c := NewCleaner(&b, opts)
	_, _ = c.Write([]byte(s))
	_ = c.CloseCut()
	return strings.TrimRight(b.String(), " \t")
}

// Write cleans p. It returns an error only when the destination failed.
func (c *Cleaner) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.closed {
		return 0, io.ErrClosedPipe
	}
	n := len(p)
	if c.skip {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return n, nil
		}
		c.skip, p = false, p[i+1:]
	}
	c.ts.write(p)
	if c.err != nil {
		return 0, c.err
	}
	return n, nil
}

// Close flushes what the Cleaner holds (an unterminated last line included)
// and returns the first destination error. It does not close the
// destination.
func (c *Cleaner) Close() error { return c.close(false) }

// CloseCut is Close for input that was cut short (the first bytes of a long
// line): what may be the first part of a secret whose rest was cut off is
// dropped, not written (Redactor.CloseCut). Mask first, then cut: a cut
// never lets part of a secret through.
func (c *Cleaner) CloseCut() error { return c.close(true) }

func (c *Cleaner) close(cut bool) error {
	if c.closed {
		return c.err
	}
	c.closed = true
	c.ts.flush()
	c.scan.flush()
	c.term.finish()
	closeRed := c.red.Close
	if cut {
		closeRed = c.red.CloseCut
	}
	if err := closeRed(); err != nil && c.err == nil {
		c.err = err
	}
	return c.err
}

// emitPart receives the first MaxLineBytes of a line that goes on: it is
// written without a line break after it, so the Redactor sees the whole line.
func (c *Cleaner) emitPart(vis []byte) {
	if c.err != nil {
		return
	}
	vis = c.validUTF8(vis)
	if !c.cont {
		if bytes.HasPrefix(vis, []byte(buildScriptWarning)) {
			// Drop the rest of the line too.
			c.cont, c.dropRest = true, true
			return
		}
		c.lbuf = c.separator(c.lbuf[:0])
	} else {
		c.lbuf = c.lbuf[:0]
	}
	c.cont = true
	if c.dropRest {
		return
	}
	c.lbuf = append(c.lbuf, vis...)
	c.write(c.lbuf)
}

// separator appends the line breaks that go before a new non-blank line.
func (c *Cleaner) separator(b []byte) []byte {
	if c.began {
		for i := 0; i <= c.blanks; i++ {
			b = append(b, '\n')
		}
	}
	c.blanks = 0
	c.began = true
	return b
}

func (c *Cleaner) validUTF8(vis []byte) []byte {
	if !utf8.Valid(vis) {
		b := c.fix[:0]
		for len(vis) > 0 {
			r, n := utf8.DecodeRune(vis)
			if r == utf8.RuneError && n == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, vis[:n]...)
			}
			vis = vis[n:]
		}
		c.fix, vis = b, b
	}
	return vis
}

// emitLine receives one finished line of visible text (the end of it, when
// emitPart had its start).
func (c *Cleaner) emitLine(vis []byte) {
	if c.err != nil {
		return
	}
	if c.cont {
		c.cont = false
		if c.dropRest {
			c.dropRest = false
			return
		}
		vis = bytes.TrimRight(c.validUTF8(vis), " \t")
		c.write(vis)
		return
	}
	vis = c.validUTF8(vis)
	if bytes.HasPrefix(vis, []byte(buildScriptWarning)) {
		return
	}
	vis = bytes.TrimRight(vis, " \t")
	if len(vis) == 0 {
		if c.began {
			c.blanks++
		}
		return
	}
	c.lbuf = append(c.separator(c.lbuf[:0]), vis...)
	c.write(c.lbuf)
}

// lineSplitter breaks lines longer than max bytes at the last rune boundary
// before max. It runs behind the Redactor, so it only ever cuts masked text.
type lineSplitter struct {
	w   io.Writer
	max int
	n   int // bytes since the last '\n'
	buf []byte
}

func (s *lineSplitter) Write(p []byte) (int, error) {
	// Most writes need no break: follow the line lengths from newline to newline, and
	// only go byte by byte when a line is too long.
	n, rest := s.n, p
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			n += len(rest)
			break
		}
		if n+i > s.max {
			n = s.max + 1
			break
		}
		n, rest = 0, rest[i+1:]
	}
	if n <= s.max {
		s.n = n
		return s.w.Write(p)
	}
	b := s.buf[:0]
	for _, c := range p {
		switch {
		case c == '\n':
			s.n = 0
		case s.n > 0 && s.n+runeLen(c) > s.max:
			b = append(b, '\n')
			s.n = 1
		default:
			s.n++
		}
		b = append(b, c)
	}
	s.buf = b[:0]
	if _, err := s.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// runeLen is the length of the UTF-8 sequence c starts (0 for a continuation
// byte); the Cleaner's text is valid UTF-8.
func runeLen(c byte) int {
	switch {
	case c < 0x80:
		return 1
	case c < 0xc0:
		return 0
	case c < 0xe0:
		return 2
	case c < 0xf0:
		return 3
	default:
		return 4
	}
}

func (c *Cleaner) write(b []byte) {
	if c.err == nil {
		_, c.err = c.red.Write(b)
	}
}

// cleanSink feeds the marker scanner's verdicts to the terminal model.
type cleanSink Cleaner

func (s *cleanSink) content(p []byte) { s.term.write(p) }

// marker ends the line at a section marker, as GitLab's log view does
// (Gitlab::Ci::Ansi2json: "Hello" + section_start + "world!" is two lines):
// every start marker, and the end marker of a section that is open; an end
// marker of a section that never started is ignored there, so it does not
// break the line here either.
func (s *cleanSink) marker(start bool, name, _ []byte) {
	t := &s.term
	if start {
		if len(s.open) < maxOpenSections {
			s.open = append(s.open, string(name))
		}
		t.breakLine()
	} else if i := slices.Index(s.open, string(name)); i >= 0 {
		s.open = s.open[:i]
		t.breakLine()
	}
	t.marked = true
	if s.opts.DropCommands && isStepSection(name) {
		t.dropSection = start
	}
}

// maxOpenSections bounds the sections the Cleaner remembers as open; a job
// that opens more only loses line breaks at the surplus end markers.
const maxOpenSections = 64

// isStepSection matches the sections the runner wraps a multi-line command
// echo in (shells/abstract.go writeMultilineCommand: "section_" + prefix +
// "_" + index, prefixes "script_step" and "after_script_step").
func isStepSection(name []byte) bool {
	return bytes.HasPrefix(name, []byte("section_script_step_")) ||
		bytes.HasPrefix(name, []byte("section_after_script_step_"))
}

// slackEscaper escapes the three characters Slack's message format
// reserves (https://api.slack.com/reference/surfaces/formatting#escaping),
// so job output can neither mention nor link.
// EscapeSlack escapes the three characters Slack's message text gives meaning to
// (& < >), so job output cannot form links, mentions or broadcasts such as
// <!channel>.
func EscapeSlack(s string) string {
	var b strings.Builder
	e := slackEscaper{w: &b}
	_, _ = e.Write([]byte(s))
	return b.String()
}

type slackEscaper struct {
	w   io.Writer
	buf []byte
}

func (e *slackEscaper) Write(p []byte) (int, error) {
	b := e.buf[:0]
	for i := 0; i < len(p); {
		j := i
		for j < len(p) && p[j] != '&' && p[j] != '<' && p[j] != '>' {
			j++
		}
		b = append(b, p[i:j]...)
		if j < len(p) {
			switch p[j] {
			case '&':
				b = append(b, "&amp;"...)
			case '<':
				b = append(b, "&lt;"...)
			case '>':
				b = append(b, "&gt;"...)
			}
			j++
		}
		i = j
		if len(b) >= 32<<10 {
			if _, err := e.w.Write(b); err != nil {
				return 0, err
			}
			b = b[:0]
		}
	}
	e.buf = b[:0]
	if len(b) > 0 {
		if _, err := e.w.Write(b); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
