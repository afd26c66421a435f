package stages

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// lineByLine is the line-at-a-time tracker lastLine replaced, kept as the reference its
// per-write search must agree with.
type lineByLine struct{ cur, done []byte }

func (l *lineByLine) Write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := lastLineMax - len(l.cur); room > 0 {
			l.cur = append(l.cur, chunk[:min(room, len(chunk))]...)
		}
		if i < 0 {
			return
		}
		if len(bytes.TrimSpace(l.cur)) > 0 {
			l.done = append(l.done[:0], l.cur...)
		}
		l.cur = l.cur[:0]
		p = p[i+1:]
	}
}

// randomOutput is output made of pieces that stress the search: blank lines of ASCII and
// Unicode white space, \r, lines around lastLineMax, lines of white space longer than
// lastLineMax with text after, and stretches without a newline longer than a block.
func randomOutput(r *rand.Rand) []byte {
	pieces := []string{
		"\n", "\n\n", "   \n", "\t\r\n", "\u00a0\n", "\u2003 \n", "\u0085\n", "x", "word ", "ok\r\n",
		"\r", " ", "é", strings.Repeat("a", lastLineMax-1), strings.Repeat("b", lastLineMax),
		strings.Repeat("c", lastLineMax+1), strings.Repeat(" ", lastLineMax+3) + "late",
		strings.Repeat("z", 9000), strings.Repeat(" ", 5000),
	}
	var b bytes.Buffer
	for n := r.IntN(60); n >= 0; n-- {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.Bytes()
}

func TestLastLineMatchesLineByLine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 3000; iter++ {
		out := randomOutput(r)
		var got lastLine
		var want lineByLine
		for p := out; len(p) > 0; {
			n := 1 + r.IntN(min(len(p), []int{1, 7, 100, 5000, 1 << 20}[r.IntN(5)]))
			got.Write(p[:n])
			want.Write(p[:n])
			if g, w := got.get(), string(want.done); g != w {
				t.Fatalf("after %q (written in pieces up to %q):\n got %q\nwant %q", out, p[:n], g, w)
			}
			p = p[n:]
		}
	}
}

func TestLastLineLostOutput(t *testing.T) {
	var l lastLine
	l.Write([]byte("whole line\npassword=hun"))
	l.lose()
	l.Write([]byte("ter2\n"))
	if got := l.get(); got != "whole line" {
		t.Errorf("a line whose start was lost became %q; want the last whole line", got)
	}
	l.Write([]byte("next\n"))
	if got := l.get(); got != "next" {
		t.Errorf("after the broken line: %q, want next", got)
	}
	l.Write([]byte("abc"))
	l.lose()
	l.Write([]byte("def\nghi\n"))
	if got := l.get(); got != "ghi" {
		t.Errorf("got %q, want ghi", got)
	}
}

func BenchmarkLastLine(b *testing.B) {
	for _, bc := range []struct {
		name string
		line string
	}{{"short", "1234567\n"}, {"70", strings.Repeat("x", 69) + "\n"}, {"none", "x"}} {
		chunk := bytes.Repeat([]byte(bc.line), (256<<10)/len(bc.line))
		b.Run(bc.name, func(b *testing.B) {
			var l lastLine
			b.SetBytes(int64(len(chunk)))
			for i := 0; i < b.N; i++ {
				l.Write(chunk)
			}
		})
	}
}
