package replydir

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// maskWriter stands in for the real redactor: it replaces "hunter2" (never cut across
// writes in these tests, which write small files in one go).
type maskWriter struct{ w io.Writer }

func (m maskWriter) Write(p []byte) (int, error) {
	_, err := m.w.Write(bytes.ReplaceAll(p, []byte("hunter2"), []byte("[MASKED]")))
	return len(p), err
}
func (m maskWriter) Close() error { return nil }

func opts(t *testing.T) Options {
	return Options{
		Limits: Limits{MaxFiles: 10, MaxFile: 10 << 20, MaxTotal: 25 << 20},
		Owner:  os.Geteuid(), Spool: t.TempDir(),
		Redact: func(w io.Writer) io.WriteCloser { return maskWriter{w} },
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, dir string, o Options) *Reply {
	t.Helper()
	r, err := Read(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func notes(r *Reply) string { return strings.Join(r.Notes, "\n") }

func TestReadsMessageBlocksAndFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, MessageName, "*deployed* v1.2")
	write(t, dir, BlocksName, `[{"type":"divider"}]`)
	write(t, dir, "hosts.csv", "host,token\nweb1,hunter2\n")
	write(t, dir, "chart.png", "\x89PNG\r\n\x1a\n\x00\x00")
	o := opts(t)
	o.Binary = true
	r := read(t, dir, o)
	if !r.HasMessage || r.Message != "*deployed* v1.2" {
		t.Errorf("message = %q, %v", r.Message, r.HasMessage)
	}
	if string(r.Blocks) != `[{"type":"divider"}]` {
		t.Errorf("blocks = %q", r.Blocks)
	}
	if len(r.Files) != 2 || r.Files[0].Name != "chart.png" || r.Files[0].Text || !r.Files[1].Text {
		t.Fatalf("files = %+v, notes %q", r.Files, r.Notes)
	}
	csv, _ := os.ReadFile(r.Files[1].Path)
	if string(csv) != "host,token\nweb1,[MASKED]\n" || r.Files[1].Size != int64(len(csv)) {
		t.Errorf("csv spooled as %q (size %d)", csv, r.Files[1].Size)
	}
	if filepath.Dir(r.Files[0].Path) != o.Spool {
		t.Errorf("spooled outside the spool: %s", r.Files[0].Path)
	}
}

func TestBinaryNeedsPermissionAndNoVerbatimSecret(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.bin", "\x00\x01\x02")
	write(t, dir, "b.bin", "\x00hunter2\x00")
	r := read(t, dir, opts(t))
	if len(r.Files) != 0 || !strings.Contains(notes(r), `a.bin was not shared: it is not UTF-8 text, and binary files are shared only with slack.reply_files = "all"`) {
		t.Errorf("binary shared without permission: %+v %q", r.Files, r.Notes)
	}
	o := opts(t)
	o.Binary = true
	r = read(t, dir, o)
	if len(r.Files) != 1 || r.Files[0].Name != "a.bin" || !strings.Contains(notes(r), "b.bin was not shared: it is binary and holds a masked value") {
		t.Errorf("files %+v notes %q", r.Files, r.Notes)
	}
}

func TestRefusesWhatIsNotAPlainFileOfTheJob(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/etc/shadow", filepath.Join(dir, "shadow")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, MessageName)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, BlocksName), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "state.json")
	write(t, filepath.Dir(outside), "state.json", "executor secret")
	if err := os.Link(outside, filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := read(t, dir, opts(t)) // a FIFO opened for reading would block here forever
	if len(r.Files) != 0 || r.HasMessage || r.Blocks != nil {
		t.Fatalf("read what it must not: %+v", r)
	}
	for _, want := range []string{
		"shadow was not shared: it is a symbolic link, not a regular file",
		"message.md was not used: it is a symbolic link",
		"fifo was not shared: it is a FIFO",
		"blocks.json was not used: it is a FIFO",
		"linked was not shared: it has 2 hard links",
		"sub was not shared: it is a directory",
	} {
		if !strings.Contains(notes(r), want) {
			t.Errorf("notes lack %q:\n%s", want, notes(r))
		}
	}
}

func TestOwnerIsChecked(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "x.txt", "x")
	o := opts(t)
	o.Owner = os.Geteuid() + 1
	if _, err := Read(dir, o); err == nil || !strings.Contains(err.Error(), "not the job's uid") {
		t.Errorf("a directory of another uid was read: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	sub := filepath.Join(t.TempDir(), "r")
	os.Mkdir(sub, 0o755)
	write(t, sub, "mine.txt", "a")
	write(t, sub, "theirs.txt", "b")
	if err := os.Chown(filepath.Join(sub, "theirs.txt"), 12345, 12345); err != nil {
		t.Fatal(err)
	}
	r := read(t, sub, opts(t))
	if len(r.Files) != 1 || !strings.Contains(notes(r), "theirs.txt was not shared: it belongs to uid 12345") {
		t.Errorf("files %+v notes %q", r.Files, r.Notes)
	}
}

func TestLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "huge.log")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil { // sparse: a GiB that takes no disk
		t.Fatal(err)
	}
	f.Close()
	for i := range 12 {
		write(t, dir, fmt.Sprintf("f%02d.txt", i), strings.Repeat("x", 400))
	}
	write(t, dir, "empty.txt", "")
	o := opts(t)
	o.MaxTotal = 1000
	r := read(t, dir, o)
	if len(r.Files) != 2 {
		t.Fatalf("files %+v", r.Files)
	}
	for _, want := range []string{
		"huge.log was not shared: 1024 MiB is more than the 10 MiB one file may have (slack.reply_max_file_size)",
		"f02.txt was not shared: with it the files would take more than 1000 bytes together (slack.reply_max_total_size)",
		"empty.txt was not shared: it is empty",
	} {
		if !strings.Contains(notes(r), want) {
			t.Errorf("notes lack %q:\n%s", want, notes(r))
		}
	}
	o = opts(t)
	o.MaxFile = 1000
	r = read(t, dir, o)
	if len(r.Files) != 10 || !strings.Contains(notes(r), "3 more files were not shared: at most 10 files are (slack.reply_max_files)") {
		t.Errorf("files %d, notes:\n%s", len(r.Files), notes(r))
	}
}

func TestManyEntriesAreBounded(t *testing.T) {
	dir := t.TempDir()
	for i := range MaxEntries + 5 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := read(t, dir, opts(t))
	if !strings.Contains(notes(r), fmt.Sprintf("more than %d entries: 5 were not looked at", MaxEntries)) {
		t.Errorf("notes: %q", r.Notes[:1])
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"..\x1b[31mred\r\n.txt": ".._[31mred__.txt",
		"a\xffb":                "a_b",
		"..":                    "file",
		"ok-name.png":           "ok-name.png",
		"a\u202egnp.exe":        "a_gnp.exe",
		strings.Repeat("é", 60): strings.Repeat("é", 40),
	} {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTextCheckAcrossWrites(t *testing.T) {
	c := &textCheck{}
	s := []byte("añb€c")
	for i := range s {
		c.Write(s[i : i+1])
	}
	if !c.text() {
		t.Error("valid UTF-8 written a byte at a time is not text")
	}
	c = &textCheck{}
	c.Write([]byte("ab\xe2\x82"))
	if c.text() {
		t.Error("a cut rune at the end is text")
	}
	c = &textCheck{}
	c.Write([]byte("ab\xc3"))
	c.Write([]byte("("))
	if c.text() {
		t.Error("an invalid sequence across writes is text")
	}
}

func TestRemoveDoesNotFollowLinks(t *testing.T) {
	outside := t.TempDir()
	write(t, outside, "keep", "x")
	dir := filepath.Join(t.TempDir(), "reply")
	os.Mkdir(dir, 0o700)
	os.Symlink(outside, filepath.Join(dir, "link"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	os.Symlink(filepath.Join(outside, "keep"), filepath.Join(dir, "sub", "keep"))
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("reply dir still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("removal went through a link: %v", err)
	}
}

func TestCheckOnlyKeepsNothing(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.txt", "hunter2")
	write(t, dir, "b.bin", "\x00")
	o := opts(t)
	o.Spool = ""
	r := read(t, dir, o)
	if len(r.Files) != 1 || r.Files[0].Path != "" || r.Files[0].Size != 7 || !strings.Contains(notes(r), "b.bin was not shared") {
		t.Errorf("files %+v notes %q", r.Files, r.Notes)
	}
}

func TestNamesAreMaskedBeforeTheyAreCut(t *testing.T) {
	secret := strings.Repeat("k", 100)
	dir := t.TempDir()
	write(t, dir, "report-"+secret+".txt", "x")
	write(t, dir, "empty-"+secret, "")
	o := opts(t)
	o.RedactName = func(s string) string { return strings.ReplaceAll(s, secret, "[MASKED]") }
	r := read(t, dir, o)
	if len(r.Files) != 1 || r.Files[0].Name != "report-[MASKED].txt" || r.Files[0].Raw != "report-"+secret+".txt" {
		t.Errorf("files %+v", r.Files)
	}
	if !strings.Contains(notes(r), "empty-[MASKED] was not shared") || strings.Contains(notes(r), "kkkk") {
		t.Errorf("notes %q", r.Notes)
	}
}
