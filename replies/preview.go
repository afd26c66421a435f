package replies

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// DefaultPreviewLineBytes bounds a preview line: a preview is read in a
// chat message, not searched.
const DefaultPreviewLineBytes = 512

// Excerpt is a head-and-tail view of cleaned reply text, for the preview
// shown beside an uploaded file and the last lines shown on failure. It is
// built in one pass over a reader, keeping only head+tail lines.
type Excerpt struct {
	Head    []string
	Tail    []string
	Omitted int // lines between Head and Tail
	Total   int // lines in the text
}

// String joins the excerpt, marking the gap with the number of lines left out.
func (e Excerpt) String() string {
	var b strings.Builder
	b.WriteString(strings.Join(e.Head, "\n"))
	if e.Omitted > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "… %d lines omitted …", e.Omitted)
	}
	if len(e.Tail) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString(strings.Join(e.Tail, "\n"))
	}
	return b.String()
}

// HeadTail reads r and keeps its first head and last tail lines; lines
// longer than maxLineBytes (0: DefaultPreviewLineBytes) are cut at a rune
// boundary, and never inside one of the Cleaner's &amp;-style escapes, and
// end with "…". Memory is (head+tail)·maxLineBytes whatever r holds.
func HeadTail(r io.Reader, head, tail, maxLineBytes int) (Excerpt, error) {
	if maxLineBytes <= 0 {
		maxLineBytes = DefaultPreviewLineBytes
	}
	head, tail = max(head, 0), max(tail, 0)
	var e Excerpt
	ring := make([]string, 0, tail)
	next := 0 // oldest ring entry once full
	br := bufio.NewReaderSize(r, 4096)
	var line []byte
	cut := false
	add := func() {
		s := string(line)
		if cut {
			s += "…"
		}
		line, cut = line[:0], false
		e.Total++
		switch {
		case len(e.Head) < head:
			e.Head = append(e.Head, s)
		case tail == 0:
		case len(ring) < tail:
			ring = append(ring, s)
		default:
			ring[next] = s
			next = (next + 1) % tail
		}
	}
	pending := false
	for {
		frag, err := br.ReadSlice('\n')
		if len(frag) > 0 {
			pending = true
		}
		body := frag
		ended := len(body) > 0 && body[len(body)-1] == '\n'
		if ended {
			body = body[:len(body)-1]
		}
		if !cut {
			room := maxLineBytes - len(line)
			if len(body) > room {
				line = append(line, body[:room]...)
				line = line[:safeCut(line)]
				cut = true
			} else {
				line = append(line, body...)
			}
		}
		if ended {
			add()
			pending = false
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if !errors.Is(err, io.EOF) {
				return e, err
			}
			break
		}
	}
	if pending {
		add()
	}
	e.Tail = slices.Concat(ring[next:], ring[:next])
	e.Omitted = e.Total - len(e.Head) - len(e.Tail)
	return e, nil
}

// LastLines returns the last n lines of r, for the failure reply.
func LastLines(r io.Reader, n, maxLineBytes int) ([]string, error) {
	e, err := HeadTail(r, 0, n, maxLineBytes)
	return e.Tail, err
}

// safeCut returns a length ≤ len(b) that ends neither inside a UTF-8
// sequence nor inside an HTML entity the Cleaner wrote.
func safeCut(b []byte) int {
	n := len(b)
	for k := 1; k < utf8.UTFMax && k <= n; k++ {
		c := b[n-k]
		if c < 0x80 {
			break
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[n-k:]) {
				n -= k
			}
			break
		}
	}
	// "&amp;" is the longest entity: an '&' in the last 4 bytes without its
	// ';' is an entity cut short.
	for k := 1; k <= 4 && k <= n; k++ {
		switch b[n-k] {
		case ';':
			return n
		case '&':
			return n - k
		}
	}
	return n
}
