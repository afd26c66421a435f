package stages

import (
	"bytes"
	"sync"
)

// lastLineMax bounds the remembered line; a progress message shows a few hundred
// characters of it at most.
const lastLineMax = 1024

// lastLine remembers the last complete non-blank line written to it, in bounded memory.
// A line counts as blank when its first lastLineMax bytes are white space.
//
// It works per write, not per line: a write that completes lines is searched from its end
// for the last non-blank one, so the cost of a write does not grow with the number of
// lines in it (a job printing millions of short lines pays as little as one printing a
// few long ones).
type lastLine struct {
	mu   sync.Mutex
	cur  []byte // the line being written (its first lastLineMax bytes)
	done []byte // the last complete non-blank line
	// broken says the start of the line being written was lost (the capture fell behind),
	// so that line must not be shown: half a line may hold half a secret, which
	// redaction cannot recognise.
	broken bool
}

func (l *lastLine) Write(p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := lastIndexByte(p, '\n')
	if last < 0 {
		l.extend(p)
		return
	}
	// The lines p completes end at p[last]. Look for the last non-blank one from there
	// backwards, jumping over white space; p[end] is always a newline.
	end := last
	for {
		k := lastNonSpace(p[:end])
		if k < 0 {
			// Nothing but white space before end: the line being written, continued up to
			// p's first newline, is the only candidate left.
			l.offer(p[:bytes.IndexByte(p, '\n')])
			break
		}
		lineEnd := k + bytes.IndexByte(p[k:end+1], '\n')
		start := lastIndexByte(p[:k], '\n') + 1
		if start == 0 {
			l.offer(p[:lineEnd])
			break
		}
		line := p[start:lineEnd]
		if len(line) > lastLineMax {
			line = line[:lastLineMax]
		}
		if len(bytes.TrimSpace(line)) > 0 {
			l.done = append(l.done[:0], line...)
			break
		}
		// Blank after all (Unicode white space, or white space up to lastLineMax): go on
		// with the lines before it.
		end = start - 1
	}
	l.cur, l.broken = l.cur[:0], false
	l.extend(p[last+1:])
}

// offer ends the line being written with p (which holds no newline) and keeps it when it
// is not blank and was captured whole.
func (l *lastLine) offer(p []byte) {
	if l.broken {
		return
	}
	l.extend(p)
	if len(bytes.TrimSpace(l.cur)) > 0 {
		l.done = append(l.done[:0], l.cur...)
	}
}

// extend adds p, which holds no newline, to the line being written, up to lastLineMax.
func (l *lastLine) extend(p []byte) {
	if room := lastLineMax - len(l.cur); room > 0 {
		l.cur = append(l.cur, p[:min(room, len(p))]...)
	}
}

// lose says that output was lost at this point: the line being written is incomplete and
// is never shown.
func (l *lastLine) lose() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur, l.broken = l.cur[:0], true
}

func (l *lastLine) get() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.done)
}

// lastIndexByte is bytes.LastIndexByte that skips blocks without c at the speed of
// bytes.IndexByte, which is vectorised where LastIndexByte is a byte loop: on a long
// stretch without a newline it costs a fraction of a nanosecond per byte.
func lastIndexByte(p []byte, c byte) int {
	const block = 4 << 10
	for end := len(p); end > 0; end -= block {
		start := max(0, end-block)
		if bytes.IndexByte(p[start:end], c) >= 0 {
			return start + bytes.LastIndexByte(p[start:end], c)
		}
	}
	return -1
}

// lastNonSpace returns the index of the last byte of p that is not ASCII white space,
// or -1.
func lastNonSpace(p []byte) int {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case ' ', '\t', '\n', '\v', '\f', '\r':
		default:
			return i
		}
	}
	return -1
}
