package emulator

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// ANSI sequences of helpers/ansi_colors.go used in runner-written lines.
const (
	ansiBoldRed   = "\x1b[31;1m"
	ansiBoldGreen = "\x1b[32;1m"
	ansiBoldCyan  = "\x1b[36;1m"
	ansiYellow    = "\x1b[0;33m"
	ansiReset     = "\x1b[0;m"
	ansiClear     = "\x1b[0K"
)

// Stream numbers of common/buildlogger: executor-level output (config,
// prepare, the runner's own lines) and work-level output (run_exec).
const (
	streamExecutor uint8 = 0
	streamWork     uint8 = 1
)

// jobLog collects the job log twice: raw (what the runner and the executor
// wrote, in order) and as GitLab receives it, after common/buildlogger's
// per-stream filters: masking of masked variables and token prefixes, then
// (with FF_TIMESTAMPS) the timestamper's "<time> <stream><type><flag>"
// line headers. It also collects the runner's own log.
type jobLog struct {
	mu        sync.Mutex
	raw       bytes.Buffer
	trace     bytes.Buffer
	runnerLog bytes.Buffer
	sink      io.Writer

	phrases    []string // longest first
	prefixes   []string // longest first
	timestamps bool
	now        func() time.Time
}

func (l *jobLog) appendRaw(p []byte) {
	l.mu.Lock()
	l.raw.Write(p)
	l.mu.Unlock()
}

func (l *jobLog) appendTrace(p []byte) {
	if len(p) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trace.Write(p)
	if l.sink != nil {
		_, _ = l.sink.Write(p)
	}
}

func (l *jobLog) runnerf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.runnerLog, format, args...)
}

func (l *jobLog) runnerWriter(prefix string) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.runnerLog.WriteString(prefix)
		l.runnerLog.Write(p)
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// setSecrets configures masking like buildlogger.New: phrases and prefixes
// are trimmed, deduplicated and empty ones dropped; only the 15 shortest
// token prefixes take effect (tokensanitizer.New); longer ones are applied
// first, as the runner stacks its writers.
func (l *jobLog) setSecrets(phrases, prefixes []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.phrases = uniqueByLength(phrases)
	p := uniqueByLength(prefixes)
	if len(p) > 15 {
		p = p[:15]
	}
	l.prefixes = p
	slices.Reverse(l.phrases)
	slices.Reverse(l.prefixes)
}

func uniqueByLength(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(out)
}

// stream opens one writer chain, like buildlogger.Logger.Stream. Each chain
// has its own masking hold-back and timestamper line buffer, so partial
// lines of different streams never mix.
func (l *jobLog) stream(id uint8, typ byte) *logStream {
	l.mu.Lock()
	phrases, prefixes, ts := l.phrases, l.prefixes, l.timestamps
	l.mu.Unlock()
	s := &logStream{log: l, phrases: phrases, prefixes: prefixes}
	if ts {
		s.stamp = &stamper{id: id, typ: typ, now: l.now, out: l.appendTrace}
	}
	return s
}

// logStream is safe for concurrent use: the runner writes its own lines to
// the main stream from several goroutines.
type logStream struct {
	mu       sync.Mutex
	log      *jobLog
	phrases  []string
	prefixes []string
	pending  []byte
	stamp    *stamper
	closed   bool
}

func (s *logStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("write job log: stream closed")
	}
	s.log.appendRaw(p)
	buf := append(s.pending, p...)
	buf = []byte(s.maskPhrases(string(buf)))
	hold := s.holdBack(buf)
	out := buf[:len(buf)-hold]
	s.pending = append([]byte(nil), buf[len(buf)-hold:]...)
	s.emit([]byte(s.maskTokens(string(out))))
	return len(p), nil
}

func (s *logStream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.emit([]byte(s.maskTokens(s.maskPhrases(string(s.pending)))))
	s.pending = nil
	if s.stamp != nil {
		s.stamp.close()
	}
	return nil
}

func (s *logStream) emit(p []byte) {
	if len(p) == 0 {
		return
	}
	if s.stamp != nil {
		s.stamp.write(p)
		return
	}
	s.log.appendTrace(p)
}

const mask = "[MASKED]"

func (s *logStream) maskPhrases(text string) string {
	for _, p := range s.phrases {
		text = strings.ReplaceAll(text, p, mask)
	}
	return text
}

// tokenByte is the token alphabet of buildlogger's tokensanitizer.
func tokenByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		c == '-' || c == '.' || c == '_' || c == '='
}

// maskTokens replaces the alphabet run after each token prefix with
// [MASKED], keeping the prefix, as tokensanitizer does.
func (s *logStream) maskTokens(text string) string {
	for _, prefix := range s.prefixes {
		var b strings.Builder
		rest := text
		for {
			i := strings.Index(rest, prefix)
			if i < 0 {
				b.WriteString(rest)
				break
			}
			b.WriteString(rest[:i+len(prefix)])
			rest = rest[i+len(prefix):]
			j := 0
			for j < len(rest) && tokenByte(rest[j]) {
				j++
			}
			if j > 0 {
				b.WriteString(mask)
			}
			rest = rest[j:]
		}
		text = b.String()
	}
	return text
}

// holdBack is how many trailing bytes must wait for the next write because
// they could still become a masked phrase or a token: a proper prefix of a
// phrase or token prefix, or a token whose alphabet run reaches the end.
func (s *logStream) holdBack(buf []byte) int {
	hold := 0
	partial := func(needle string) {
		for n := min(len(needle)-1, len(buf)); n > hold; n-- {
			if bytes.HasSuffix(buf, []byte(needle[:n])) {
				hold = n
				return
			}
		}
	}
	for _, p := range s.phrases {
		partial(p)
	}
	for _, p := range s.prefixes {
		partial(p)
		if i := bytes.LastIndex(buf, []byte(p)); i >= 0 {
			j := i + len(p)
			for j < len(buf) && tokenByte(buf[j]) {
				j++
			}
			if j == len(buf) && len(buf)-i > hold {
				hold = len(buf) - i
			}
		}
	}
	return hold
}

// stamper reproduces buildlogger's timestamper: every line gets a header
// "YYYY-MM-DDTHH:MM:SS.UUUUUUZ <2 hex stream id><O|E><' '|'+'>"; a write
// holding \r but no \n is flushed at once with an added \n, and whatever
// follows it is flagged '+' (continuation); a partial line is buffered
// until its \n (or 8 KiB, or Close).
type stamper struct {
	id   uint8
	typ  byte
	cont bool
	buf  []byte
	now  func() time.Time
	out  func([]byte)
}

const stampBufSize = 8 * 1024

func (t *stamper) header() []byte {
	const hex = "0123456789abcdef"
	ts := t.now().UTC()
	h := make([]byte, 0, 32)
	h = ts.AppendFormat(h, "2006-01-02T15:04:05.000000Z ")
	flag := byte(' ')
	if t.cont {
		flag = '+'
	}
	t.cont = false
	return append(h, hex[t.id>>4], hex[t.id&0x0f], t.typ, flag)
}

func (t *stamper) write(p []byte) {
	n := 0
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		if len(t.buf) > 0 {
			t.out(t.buf)
			t.buf = nil
			t.out(p[:i+1])
			n = i + 1
		}
		for {
			i := bytes.IndexByte(p[n:], '\n')
			if i < 0 {
				break
			}
			t.out(t.header())
			t.out(p[n : n+i+1])
			n += i + 1
		}
	}
	rest := p[n:]
	if bytes.IndexByte(rest, '\r') >= 0 {
		if len(t.buf) > 0 {
			t.out(t.buf)
			t.buf = nil
		} else {
			t.out(t.header())
		}
		t.out(rest)
		t.out([]byte("\n"))
		t.cont = true
		return
	}
	if len(rest) == 0 {
		return
	}
	if len(rest)+len(t.buf) > stampBufSize {
		if len(t.buf) == 0 {
			t.out(t.header())
		}
		t.out(t.buf)
		t.buf = nil
		t.cont = true
		t.out(rest)
		t.out([]byte("\n"))
		return
	}
	if len(t.buf) == 0 {
		t.buf = t.header()
	}
	t.buf = append(t.buf, rest...)
}

func (t *stamper) close() {
	if len(t.buf) == 0 {
		return
	}
	t.out(append(t.buf, '\n'))
	t.buf = nil
}

// logger is the runner's build logger (buildlogger.Logger + internal.Tee):
// raw section markers and formatted lines on one stream.
type logger struct {
	s *logStream
}

func (l logger) raw(s string) { _, _ = l.s.Write([]byte(s)) }

// line is Tee.log: arguments joined like fmt.Sprintln, then a reset before
// the newline, after a level-specific prefix.
func (l logger) line(prefix string, args ...any) {
	text := fmt.Sprintln(args...)
	l.raw(prefix + text[:len(text)-1] + ansiReset + "\n")
}

func (l logger) println(args ...any)     { l.line(ansiClear, args...) }
func (l logger) infoln(args ...any)      { l.line(ansiBoldGreen, args...) }
func (l logger) warningln(args ...any)   { l.line(ansiYellow+"WARNING: ", args...) }
func (l logger) softErrorln(args ...any) { l.line(ansiBoldRed+"ERROR: ", args...) }
func (l logger) errorln(args ...any)     { l.line(ansiBoldRed+"ERROR: ", args...) }

// sectionStart/End are helpers.BuildSection's markers, written raw.
func (l logger) sectionStart(name string, unix int64) {
	l.raw(fmt.Sprintf("section_start:%d:%s\r%s", unix, name, ansiClear))
}

func (l logger) sectionEnd(name string, unix int64) {
	l.raw(fmt.Sprintf("section_end:%d:%s\r%s", unix, name, ansiClear))
}
