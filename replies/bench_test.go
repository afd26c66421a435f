package replies

import (
	"bytes"
	"io"
	"testing"
)

const benchSize = 64 << 20

// benchOutput is 64 MiB of log-like output; with section set, a chat_reply
// section spans nearly all of it.
func benchOutput(section bool) []byte {
	line := []byte("2024-05-01 12:00:00 INFO \x1b[32mworker\x1b[0m processed batch 1234 in 56ms (items=3) <ok>\n")
	var b bytes.Buffer
	b.Grow(benchSize + 256)
	if section {
		b.WriteString(start(ChatReplySection) + "\n")
	}
	for b.Len() < benchSize-len(line)-64 {
		b.Write(line)
	}
	if section {
		b.WriteString(end(ChatReplySection) + "\n")
	}
	return b.Bytes()
}

// feed writes p in 32 KiB chunks, the size io.Copy reads from a pipe.
func feed(b *testing.B, w io.Writer, p []byte) {
	for len(p) > 0 {
		n := min(32<<10, len(p))
		if _, err := w.Write(p[:n]); err != nil {
			b.Fatal(err)
		}
		p = p[n:]
	}
}

// BenchmarkCopyDiscard is the baseline: the runner's copy alone.
func BenchmarkCopyDiscard(b *testing.B) {
	data := benchOutput(false)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		feed(b, io.Discard, data)
	}
}

// benchWords is output where every line mentions "section_", so every line
// takes Capture's slow path.
func benchWords() []byte {
	return bytes.ReplaceAll(benchOutput(true), []byte("items="), []byte("section_"))
}

func benchCapture(b *testing.B, section bool) { benchCaptureData(b, benchOutput(section)) }

func benchCaptureData(b *testing.B, data []byte) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		c := NewCapture(io.Discard, io.Discard, Counts{})
		feed(b, io.MultiWriter(io.Discard, c), data)
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCapture tees through Capture as the run stage does.
func BenchmarkCapture(b *testing.B) {
	b.Run("no-section", func(b *testing.B) { benchCapture(b, false) })
	b.Run("chat_reply", func(b *testing.B) { benchCapture(b, true) })
	b.Run("section_-words", func(b *testing.B) { benchCaptureData(b, benchWords()) })
}

// BenchmarkRedactor masks as the capture sinks would.
func BenchmarkRedactor(b *testing.B) {
	data := benchOutput(false)
	secrets := Secrets{Values: []string{"hunter2-long-secret", "CI-JOB-TOKEN-abcdef"}, TokenPrefixes: []string{"glcbt-", "glrt-"}}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewRedactor(io.Discard, secrets)
		feed(b, r, data)
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCleaner cleans a capture at cleanup.
func BenchmarkCleaner(b *testing.B) {
	data := benchOutput(true)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		c := NewCleaner(io.Discard, CleanOptions{DropCommands: true})
		feed(b, c, data)
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
