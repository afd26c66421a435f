package replies

import "bytes"

// MaxMarkerLen caps how many bytes a section marker candidate may span before
// the scanners give up on it and treat it as ordinary output. GitLab's regex
// has no such cap (`\d+` and the name are unbounded), but a real marker is a
// few dozen bytes; the cap is what keeps the scanners' memory independent of
// the job's output.
const MaxMarkerLen = 4096

// ChatReplySection is the section name GitLab's ChatOps reply looks for.
const ChatReplySection = "chat_reply"

var sectionLit = []byte("section_")

// Matcher states. The grammar is GitLab's build_trace_section_regex
// (lib/gitlab/regex.rb):
//
//	section_(start|end):(\d+):([a-zA-Z0-9_.-]+)(\[\w+=\w+(, ?\w+=\w+)*\])?\r\e\[0K
//
// It is deterministic (no character class overlaps its follower), so one
// byte of lookahead decides every transition and no backtracking is needed.
const (
	mLit    = iota // "section_" at m.i
	mAct           // "start:" or "end:" at m.i
	mDigit1        // first digit of the timestamp
	mDigits        // more digits, or ':'
	mName1         // first name byte
	mName          // more name bytes, '[' or '\r'
	mKey1          // first byte of an option key
	mKey           // more key bytes or '='
	mVal1          // first byte of an option value
	mVal           // more value bytes, ',' or ']'
	mSep           // after ',': optional ' ' then a key
	mCR            // '\r' after the options
	mTail          // "\x1b[0K" at m.i
)

const tailLit = "\x1b[0K"

type matchResult uint8

const (
	needMore matchResult = iota
	accepted
	failed
)

// markerMatcher recognises one marker incrementally, one byte at a time, so a
// marker split over any number of writes is still found.
type markerMatcher struct {
	st        uint8
	i         int  // index into the current literal
	n         int  // bytes consumed so far
	start     bool // section_start (true) or section_end
	nameStart int
	nameEnd   int
}

func (m *markerMatcher) reset() { *m = markerMatcher{} }

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

// isWordByte is Ruby's ASCII \w.
func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (m *markerMatcher) step(c byte) matchResult {
	pos := m.n
	m.n++
	switch m.st {
	case mLit:
		if c != sectionLit[m.i] {
			return failed
		}
		m.i++
		if m.i == len(sectionLit) {
			m.st, m.i = mAct, 0
		}
	case mAct:
		if m.i == 0 {
			switch c {
			case 's':
				m.start = true
			case 'e':
				m.start = false
			default:
				return failed
			}
			m.i = 1
			return needMore
		}
		lit := "end:"
		if m.start {
			lit = "start:"
		}
		if c != lit[m.i] {
			return failed
		}
		m.i++
		if m.i == len(lit) {
			m.st = mDigit1
		}
	case mDigit1:
		if !isDigit(c) {
			return failed
		}
		m.st = mDigits
	case mDigits:
		switch {
		case isDigit(c):
		case c == ':':
			m.st = mName1
		default:
			return failed
		}
	case mName1:
		if !isNameByte(c) {
			return failed
		}
		m.nameStart = pos
		m.st = mName
	case mName:
		switch {
		case isNameByte(c):
		case c == '[':
			m.nameEnd = pos
			m.st = mKey1
		case c == '\r':
			m.nameEnd = pos
			m.st, m.i = mTail, 0
		default:
			return failed
		}
	case mKey1:
		if !isWordByte(c) {
			return failed
		}
		m.st = mKey
	case mKey:
		switch {
		case isWordByte(c):
		case c == '=':
			m.st = mVal1
		default:
			return failed
		}
	case mVal1:
		if !isWordByte(c) {
			return failed
		}
		m.st = mVal
	case mVal:
		switch {
		case isWordByte(c):
		case c == ',':
			m.st = mSep
		case c == ']':
			m.st = mCR
		default:
			return failed
		}
	case mSep:
		switch {
		case c == ' ':
			m.st = mKey1
		case isWordByte(c):
			m.st = mKey
		default:
			return failed
		}
	case mCR:
		if c != '\r' {
			return failed
		}
		m.st, m.i = mTail, 0
	case mTail:
		if c != tailLit[m.i] {
			return failed
		}
		m.i++
		if m.i == len(tailLit) {
			return accepted
		}
	}
	return needMore
}

// run feeds b from a fresh state and reports how far it got: the result and
// the number of bytes consumed (the failing or accepting byte included).
func (m *markerMatcher) run(b []byte) (matchResult, int) {
	m.reset()
	for i, c := range b {
		if r := m.step(c); r != needMore {
			return r, i + 1
		}
	}
	return needMore, len(b)
}

// candidateIndex returns where the next possible marker starts in b: the
// index of "section_", or of a proper prefix of it that ends b, or len(b).
func candidateIndex(b []byte) int {
	if i := indexSection(b); i >= 0 {
		return i
	}
	// "section_" has no border (no proper prefix is also a suffix), so only
	// the longest partial suffix matters.
	for k := min(len(sectionLit)-1, len(b)); k > 0; k-- {
		if bytes.Equal(b[len(b)-k:], sectionLit[:k]) {
			return len(b) - k
		}
	}
	return len(b)
}

// indexSection is bytes.Index(b, "section_"), faster on job output. bytes.Index jumps to
// each 's' and, in text full of them (most logs), soon falls back to comparing at every
// position; '_' is rarer, so this jumps to each '_' with the vectorised IndexByte and
// looks back for "section". Text with too many underscores gets bytes.Index from there,
// as bytes.Index itself bounds its own false starts.
func indexSection(b []byte) int {
	const back = len("section")
	fails := 0
	for i := back; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '_')
		if j < 0 {
			return -1
		}
		i += j
		if string(b[i-back:i+1]) == "section_" {
			return i - back
		}
		if fails++; fails > 16+i>>5 {
			// A match ends at an '_' after i, so it starts after i-back.
			if k := bytes.Index(b[i-back+1:], sectionLit); k >= 0 {
				return i - back + 1 + k
			}
			return -1
		}
	}
	return -1
}

// markerSink receives the scanner's verdicts in stream order.
type markerSink interface {
	// content is output that is not part of a complete marker.
	content(p []byte)
	// marker is a complete marker; raw is its exact text.
	marker(start bool, name, raw []byte)
}

// markerScanner splits a byte stream into content and section markers with
// GitLab's semantics: markers may sit anywhere in a line (GitLab's
// SectionParser scans each line with StringScanner for "section_", not only
// at line start), and after a failed candidate the search resumes 8 bytes
// ("section_") after its start, so a real marker that begins inside a
// malformed one is still found. It holds back at most MaxMarkerLen bytes:
// only a candidate that could still become a marker.
type markerScanner struct {
	sink markerSink
	m    markerMatcher
	pend []byte // the current candidate; empty when none
}

func (s *markerScanner) write(p []byte) {
	for len(p) > 0 {
		if len(s.pend) == 0 {
			i := candidateIndex(p)
			if i > 0 {
				s.sink.content(p[:i])
			}
			if i == len(p) {
				return
			}
			// Take the literal (or what there is of it) in one go.
			n := min(len(p)-i, len(sectionLit))
			s.pend = append(s.pend, p[i:i+n]...)
			p = p[i+n:]
			if r, _ := s.m.run(s.pend); r != needMore {
				// A partial literal cannot fail when it is what ends p, and a
				// whole literal needs more; but be safe.
				s.settle()
			}
			continue
		}
		c := p[0]
		p = p[1:]
		s.pend = append(s.pend, c)
		switch s.m.step(c) {
		case needMore:
			if len(s.pend) >= MaxMarkerLen {
				s.settle()
			}
		default:
			s.settle()
		}
	}
}

// settle resolves s.pend after the matcher accepted, failed or overflowed,
// rescanning the leftover bytes until pend is empty or holds one live
// candidate.
func (s *markerScanner) settle() {
	for len(s.pend) > 0 {
		r, n := s.m.run(s.pend)
		if r == needMore && len(s.pend) < MaxMarkerLen {
			return
		}
		var rest []byte
		switch r {
		case accepted:
			s.sink.marker(s.m.start, s.pend[s.m.nameStart:s.m.nameEnd], s.pend[:n])
			rest = s.pend[n:]
		default: // failed, or too long
			skip := len(sectionLit)
			if r == failed && n-1 < skip {
				skip = max(1, n-1) // failed inside the literal: rescan the failing byte
			}
			s.sink.content(s.pend[:skip])
			rest = s.pend[skip:]
		}
		i := candidateIndex(rest)
		if i > 0 {
			s.sink.content(rest[:i])
		}
		s.pend = s.pend[:copy(s.pend, rest[i:])]
	}
}

// flush ends the stream: a candidate still pending at the end is content.
func (s *markerScanner) flush() {
	for len(s.pend) > 0 {
		// Force resolution: whatever is pending cannot complete any more.
		r, n := s.m.run(s.pend)
		if r == accepted {
			s.settle()
			continue
		}
		skip := len(sectionLit)
		if r == failed && n-1 < skip {
			skip = n - 1
		}
		skip = max(1, min(skip, len(s.pend)))
		s.sink.content(s.pend[:skip])
		rest := s.pend[skip:]
		i := candidateIndex(rest)
		if i > 0 {
			s.sink.content(rest[:i])
		}
		s.pend = s.pend[:copy(s.pend, rest[i:])]
	}
	s.m.reset()
}
