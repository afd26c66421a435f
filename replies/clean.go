package replies

import (
	"bytes"
	"io"
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
	opts   CleanOptions
	ts     tsStripper
	scan   markerScanner
	term   term
	red    *Redactor
	esc    slackEscaper
	lbuf   []byte // the line being written, with its separator
	fix    []byte // a line with invalid UTF-8 replaced
	began  bool   // a line has been written
	blanks int    // blank lines not yet written: only between text
	err    error
	closed bool
}

// NewCleaner returns a Cleaner writing reply text to w. Close it to flush.
func NewCleaner(w io.Writer, opts CleanOptions) *Cleaner {
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	opts.MaxLineBytes = max(opts.MaxLineBytes, minMaxLineBytes)
	c := &Cleaner{opts: opts}
	c.esc.w = w
	if opts.Plain {
		c.red = NewRedactor(w, opts.Secrets)
	} else {
		c.red = NewRedactor(&c.esc, opts.Secrets)
	}
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

// Write cleans p. It returns an error only when the destination failed.
func (c *Cleaner) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.closed {
		return 0, io.ErrClosedPipe
	}
	c.ts.write(p)
	if c.err != nil {
		return 0, c.err
	}
	return len(p), nil
}

// Close flushes what the Cleaner holds (an unterminated last line included)
// and returns the first destination error. It does not close the
// destination.
func (c *Cleaner) Close() error {
	if c.closed {
		return c.err
	}
	c.closed = true
	c.ts.flush()
	c.scan.flush()
	c.term.finish()
	if err := c.red.Close(); err != nil && c.err == nil {
		c.err = err
	}
	return c.err
}

// emitLine receives one finished line of visible text.
func (c *Cleaner) emitLine(vis []byte) {
	if c.err != nil {
		return
	}
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
	b := c.lbuf[:0]
	if c.began {
		for i := 0; i <= c.blanks; i++ {
			b = append(b, '\n')
		}
	}
	c.blanks = 0
	c.began = true
	c.lbuf = append(b, vis...)
	c.write(c.lbuf)
}

func (c *Cleaner) write(b []byte) {
	if c.err == nil {
		_, c.err = c.red.Write(b)
	}
}

// cleanSink feeds the marker scanner's verdicts to the terminal model.
type cleanSink Cleaner

func (s *cleanSink) content(p []byte) { s.term.write(p) }

func (s *cleanSink) marker(start bool, name, _ []byte) {
	t := &s.term
	t.marked = true
	if s.opts.DropCommands && isStepSection(name) {
		t.dropSection = start
	}
}

// isStepSection matches the sections the runner wraps a multi-line command
// echo in (shells/abstract.go writeMultilineCommand: "section_" + prefix +
// "_" + index, prefixes "script_step" and "after_script_step").
func isStepSection(name []byte) bool {
	return bytes.HasPrefix(name, []byte("section_script_step_")) ||
		bytes.HasPrefix(name, []byte("section_after_script_step_"))
}

// tsStripper removes the runner's timestamp headers
// (common/buildlogger/internal/timestamper: "2006-01-02T15:04:05.000000Z "
// then two hex digits of stream number, 'O' or 'E', and ' ' or '+'), found
// at line starts when FF_USE_TIMESTAMPS is on. A '+' header continues the
// previous line: the timestamper ended it early (at a `\r` or 8 KiB), so
// the newline before it is dropped. The run stage sees the script's bytes
// before the runner adds headers; they appear only in job-log text.
type tsStripper struct {
	next      *markerScanner
	hdr       [tsLen]byte
	n         int
	atStart   bool
	nlPending bool
}

const tsLen = 32

func tsByteOK(i int, c byte) bool {
	switch i {
	case 4, 7:
		return c == '-'
	case 5:
		return c == '0' || c == '1'
	case 8:
		return c >= '0' && c <= '3'
	case 10:
		return c == 'T'
	case 11:
		return c >= '0' && c <= '2'
	case 13, 16:
		return c == ':'
	case 14, 17:
		return c >= '0' && c <= '5'
	case 19:
		return c == '.'
	case 26:
		return c == 'Z'
	case 27:
		return c == ' '
	case 28, 29:
		return isDigit(c) || c >= 'a' && c <= 'f'
	case 30:
		return c == 'O' || c == 'E'
	case 31:
		return c == ' ' || c == '+'
	default:
		return isDigit(c)
	}
}

var (
	newline = []byte{'\n'}
	tab     = []byte{'\t'}
)

func (t *tsStripper) write(p []byte) {
	for len(p) > 0 {
		if t.atStart {
			c := p[0]
			if tsByteOK(t.n, c) {
				t.hdr[t.n] = c
				t.n++
				p = p[1:]
				if t.n == tsLen {
					if t.nlPending && c != '+' {
						t.next.write(newline)
					}
					t.nlPending, t.n, t.atStart = false, 0, false
				}
				continue
			}
			t.release()
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.next.write(p)
			return
		}
		t.next.write(p[:i])
		t.nlPending, t.atStart = true, true
		p = p[i+1:]
	}
}

// release gives up on a header: the pending newline and the bytes that
// looked like a header are ordinary output.
func (t *tsStripper) release() {
	if t.nlPending {
		t.next.write(newline)
	}
	if t.n > 0 {
		t.next.write(t.hdr[:t.n])
	}
	t.nlPending, t.n, t.atStart = false, 0, false
}

func (t *tsStripper) flush() {
	if t.atStart {
		t.release()
	}
}

// Terminal-model states.
const (
	tGround = iota
	tEsc
	tEscInter
	tCSI
	tOSC
	tOSCEsc
)

// term models one terminal line well enough to know what it finally showed:
// escape sequences are parsed and dropped (CSI, OSC incl. OSC-8 hyperlinks
// ended by BEL or ESC \, DCS/SOS/PM/APC strings, two-byte sequences such as
// ESC 7 / ESC 8, charset designations), `\r` starts a redraw, an erase-line
// after `\r` blanks the line, backspace removes a rune. It works on bytes in
// any chunking because it is a state machine; a newline always ends an
// escape, so a stray ESC never swallows more than its line.
type term struct {
	c           *Cleaner
	st          uint8
	param       [4]byte
	paramN      int
	seg         []byte // visible text since the last \r
	last        []byte // the last non-empty redraw before seg
	head        [len(echoPrefix)]byte
	headN       int
	raw         bool // the line has bytes other than markers
	marked      bool // the line had a section marker
	dropLine    bool // the line is an echoed command
	dropSection bool // inside a script_step section
}

func (t *term) write(p []byte) {
	if t.dropSection {
		return
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.line(p)
			return
		}
		t.line(p[:i])
		t.newline()
		p = p[i+1:]
	}
}

// line handles bytes of the current line (no '\n').
func (t *term) line(p []byte) {
	if len(p) == 0 {
		return
	}
	t.raw = true
	if t.headN < len(t.head) {
		n := copy(t.head[t.headN:], p)
		t.headN += n
		if t.headN == len(t.head) && t.c.opts.DropCommands && string(t.head[:]) == echoPrefix {
			t.dropLine = true
		}
	}
	for i := 0; i < len(p); {
		c := p[i]
		switch t.st {
		case tGround:
			j := i
			for j < len(p) && p[j] >= 0x20 && p[j] != 0x7f {
				j++
			}
			if j > i {
				t.visible(p[i:j])
				i = j
				continue
			}
			t.control(c)
		case tEsc:
			switch {
			case c == '[':
				t.st, t.paramN = tCSI, 0
			case c == ']', c == 'P', c == 'X', c == '^', c == '_':
				t.st = tOSC
			case c >= 0x20 && c <= 0x2f:
				t.st = tEscInter
			case c >= 0x30 && c <= 0x7e:
				t.st = tGround
			case c == 0x1b:
			case c < 0x20:
				t.control(c)
			default:
				t.st = tGround
				continue // reprocess as text
			}
		case tEscInter:
			switch {
			case c >= 0x20 && c <= 0x2f:
			case c >= 0x30 && c <= 0x7e:
				t.st = tGround
			case c < 0x20:
				t.control(c)
			default:
				t.st = tGround
				continue
			}
		case tCSI:
			switch {
			case c >= 0x30 && c <= 0x3f:
				if t.paramN < len(t.param) {
					t.param[t.paramN] = c
				}
				t.paramN++
			case c >= 0x20 && c <= 0x2f:
			case c >= 0x40 && c <= 0x7e:
				t.st = tGround
				if c == 'K' {
					t.eraseLine()
				}
			case c < 0x20:
				t.control(c)
			default:
				t.st = tGround
				continue
			}
		case tOSC:
			switch c {
			case 0x07:
				t.st = tGround
			case 0x1b:
				t.st = tOSCEsc
			}
		case tOSCEsc:
			if c == '\\' {
				t.st = tGround
			} else {
				t.st = tEsc
				continue
			}
		}
		i++
	}
}

// control handles a C0 control byte other than '\n'. Inside CSI and escape
// sequences these execute without ending the sequence, as on a VT100.
func (t *term) control(c byte) {
	switch c {
	case 0x1b:
		t.st = tEsc
	case '\r':
		if len(t.seg) > 0 {
			t.last, t.seg = t.seg, t.last[:0]
		}
	case '\b':
		if len(t.seg) > 0 {
			_, n := utf8.DecodeLastRune(t.seg)
			t.seg = t.seg[:len(t.seg)-n]
		}
	case '\t':
		t.visible(tab)
	}
	// Other controls (BEL, NUL, DEL...) show nothing.
}

func (t *term) eraseLine() {
	p := string(t.param[:min(t.paramN, len(t.param))])
	switch p {
	case "", "0":
		// Erase to the end of the line: after a \r the cursor is at the
		// start, so the whole line goes; after text, nothing follows it.
		if len(t.seg) == 0 {
			t.last = t.last[:0]
		}
	case "1", "2":
		t.seg, t.last = t.seg[:0], t.last[:0]
	}
}

func (t *term) visible(b []byte) {
	max := t.c.opts.MaxLineBytes
	for len(b) > 0 {
		room := max - len(t.seg)
		if room >= len(b) {
			t.seg = append(t.seg, b...)
			return
		}
		t.seg = append(t.seg, b[:room]...)
		b = b[room:]
		t.split()
	}
}

// split emits a full segment as a line of its own, cutting at a rune
// boundary, and keeps the rest.
func (t *term) split() {
	cut := len(t.seg)
	// Back off an incomplete UTF-8 sequence at the end.
	for k := 1; k <= utf8.UTFMax-1 && k <= len(t.seg); k++ {
		c := t.seg[len(t.seg)-k]
		if c < 0x80 {
			break
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(t.seg[len(t.seg)-k:]) {
				cut = len(t.seg) - k
			}
			break
		}
	}
	if !t.dropLine {
		t.c.emitLine(t.seg[:cut])
	}
	n := copy(t.seg, t.seg[cut:])
	t.seg = t.seg[:n]
	t.last = t.last[:0]
}

func (t *term) newline() {
	t.st = tGround
	if !t.dropLine && (t.raw || !t.marked) {
		out := t.seg
		if len(out) == 0 {
			out = t.last
		}
		t.c.emitLine(out)
	}
	t.reset()
}

func (t *term) reset() {
	t.st, t.headN = tGround, 0
	t.seg, t.last = t.seg[:0], t.last[:0]
	t.raw, t.marked, t.dropLine = false, false, false
}

// finish ends an unterminated last line.
func (t *term) finish() {
	if t.raw {
		t.newline()
	}
	t.reset()
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
