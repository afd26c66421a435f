package replydir

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/replies"
)

func benchOptions() Options {
	m := replies.NewMasker(replies.Secrets{Values: []string{"glcbt-bench-secret-0123"}})
	return Options{Limits: Limits{MaxFiles: 10, MaxFile: 10 << 20, MaxTotal: 25 << 20}, Owner: os.Geteuid(),
		Redact: func(w io.Writer) io.WriteCloser { return m.NewRedactor(w) }}
}

// BenchmarkReadFull reads a reply directory full to the default limits: 10 text files of
// 2.5 MiB (25 MiB), every byte through the real redactor and spooled twice.
func BenchmarkReadFull(b *testing.B) {
	opt := benchOptions()
	dir := b.TempDir()
	line := strings.Repeat("host-42,ok,1.4.2,", 5) + "glcbt-bench-secret-0123\n"
	body := strings.Repeat(line, (5<<19)/len(line))
	for i := range 10 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.csv", i)), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(10 * len(body)))
	for b.Loop() {
		opt.Spool = b.TempDir()
		r, err := Read(dir, opt)
		if err != nil || len(r.Files) != 10 {
			b.Fatalf("%v %d", err, len(r.Files))
		}
		r.Close()
	}
}

// BenchmarkReadHostile reads a directory of 1,000 small files, a 1 GiB sparse file and
// links: the limits make it cheap whatever it holds.
func BenchmarkReadHostile(b *testing.B) {
	opt := benchOptions()
	dir := b.TempDir()
	for i := range 1000 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("z%04d.txt", i)), []byte("x\n"), 0o644)
	}
	f, _ := os.Create(filepath.Join(dir, "a-huge.log"))
	f.Truncate(1 << 30)
	f.Close()
	os.Symlink("/etc/shadow", filepath.Join(dir, "a-shadow"))
	for b.Loop() {
		opt.Spool = b.TempDir()
		r, err := Read(dir, opt)
		if err != nil || len(r.Files) != 10 {
			b.Fatalf("%v %d", err, len(r.Files))
		}
		r.Close()
	}
}
