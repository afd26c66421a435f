package replies

import (
	"bytes"
	"testing"
)

// BenchmarkFormatOutputMarkdown formats a 64 MiB output for Mattermost: it becomes a file
// and a preview of its head and tail, read without holding the whole output.
func BenchmarkFormatOutputMarkdown(b *testing.B) {
	data := benchOutput(false)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (Markdown{}).FormatOutput(bytes.NewReader(data), int64(len(data)), Status{State: "succeeded"}, MattermostMaxRunes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarkdownInline is the other case: output that fits one post (15 KB, escaped and
// fenced in place, mentions broken).
func BenchmarkMarkdownInline(b *testing.B) {
	line := []byte("deploy @all step 12 of 40: `ok` <done> ~~~\n")
	data := bytes.Repeat(line, 15000/len(line))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := (Markdown{}).FormatOutput(bytes.NewReader(data), int64(len(data)), Status{State: "succeeded"}, MattermostMaxRunes)
		if err != nil || out.Upload {
			b.Fatal(err, out.Upload)
		}
	}
}
