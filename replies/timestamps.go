package replies

import (
	"bytes"
)

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
