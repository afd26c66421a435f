package replies

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestIndexSectionIsBytesIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	pieces := []string{"section_", "section", "ection_", "_", "__", "s", "x", "sect", "ion_", "\n", strings.Repeat("_", 100), "section_start:1:a\r\x1b[0K"}
	for iter := 0; iter < 20000; iter++ {
		var b bytes.Buffer
		for n := r.IntN(40); n >= 0; n-- {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		if got, want := indexSection(b.Bytes()), bytes.Index(b.Bytes(), sectionLit); got != want {
			t.Fatalf("indexSection(%q) = %d, bytes.Index says %d", b.Bytes(), got, want)
		}
	}
}

func BenchmarkIndexSection(b *testing.B) {
	text := benchOutput(false)[:4<<20]
	for _, bc := range []struct {
		name string
		f    func([]byte, []byte) int
	}{{"bytes.Index", bytes.Index}, {"indexSection", func(s, _ []byte) int { return indexSection(s) }}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for i := 0; i < b.N; i++ {
				bc.f(text, sectionLit)
			}
		})
	}
}
