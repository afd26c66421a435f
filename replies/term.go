package replies

import (
	"bytes"
	"unicode/utf8"
)

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
	head        [echoHeadMax]byte
	headN       int
	headDone    bool // the echo verdict for this line is in
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
	if !t.headDone && t.c.opts.DropCommands {
		n := copy(t.head[t.headN:], p)
		t.headN += n
		var echo bool
		echo, t.headDone = echoVerdict(t.head[:t.headN])
		t.dropLine = echo
		if t.headN == len(t.head) {
			t.headDone = true
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
		t.c.emitPart(t.seg[:cut])
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

// breakLine ends the current line where a section marker stands in it: what
// came before the marker is a line of its own (when there was any), and what
// follows starts a new one.
func (t *term) breakLine() {
	if t.dropSection {
		return
	}
	out := t.seg
	if len(out) == 0 {
		out = t.last
	}
	if !t.dropLine && (len(out) > 0 || t.c.cont) {
		t.c.emitLine(out)
	}
	t.reset()
}

func (t *term) reset() {
	t.st, t.headN, t.headDone = tGround, 0, false
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

// echoColour starts echoPrefix: not a reset to skip.
const echoColour = "\x1b[32;1m"

// echoHeadMax bounds how much of a line's start is looked at for the echo
// prefix: a few colour resets and the prefix itself.
const echoHeadMax = 64

// echoVerdict decides from a line's first bytes whether it is a command echo:
// echoPrefix, after any number of complete SGR or erase-line sequences
// ("\e[0;m", "\e[0m", "\e[0K"), which older runners and some shells write
// first. done is false while more bytes could still change the answer.
func echoVerdict(h []byte) (echo, done bool) {
	for {
		n, complete := leadingReset(h)
		if n == 0 {
			break
		}
		if !complete {
			return false, false
		}
		h = h[n:]
	}
	if len(h) >= len(echoPrefix) {
		return string(h[:len(echoPrefix)]) == echoPrefix, true
	}
	if string(h) == echoPrefix[:len(h)] {
		return false, false
	}
	return false, true
}

// leadingReset measures an SGR ("\e[…m") or erase-line ("\e[…K") sequence at
// the start of h, other than the echo prefix's own colour: n is 0 when h does
// not start with one, and complete is false when h ends inside it.
func leadingReset(h []byte) (n int, complete bool) {
	if len(h) == 0 || h[0] != 0x1b {
		return 0, false
	}
	if len(h) < 2 {
		return 1, false
	}
	if h[1] != '[' {
		return 0, false
	}
	for i := 2; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= '0' && c <= '9' || c == ';':
		case c == 'm' || c == 'K':
			if string(h[:i+1]) == echoColour {
				return 0, false
			}
			return i + 1, true
		default:
			return 0, false
		}
	}
	// Still inside the parameters: it may be a reset or the echo's own colour.
	return len(h), false
}
