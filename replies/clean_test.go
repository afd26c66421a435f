package replies

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	const esc = "\x1b"
	tests := []struct {
		name string
		in   string
		opts CleanOptions
		want string
	}{
		{"empty", "", CleanOptions{}, ""},
		{"blank lines trimmed", "\n\n a\n\n\nb  \n\n", CleanOptions{}, " a\n\n\nb"},
		{"no trailing newline", "last", CleanOptions{}, "last"},
		{"crlf", "a\r\nb\r\n", CleanOptions{}, "a\nb"},
		{"redraws", "1%\r2%\r3%\n", CleanOptions{}, "3%"},
		{"trailing cr kept text", "done\r", CleanOptions{}, "done"},
		{"erase after cr", "tmp\r" + esc + "[K\nnext", CleanOptions{}, "\nnext"[1:]},
		{"erase mid line is no-op", "abc" + esc + "[Kdef", CleanOptions{}, "abcdef"},
		{"csi colours", esc + "[1;31mred" + esc + "[0m", CleanOptions{}, "red"},
		{"csi private", esc + "[?2004hx" + esc + "[?2004l", CleanOptions{}, "x"},
		{"osc8 bel", esc + "]8;;http://a\x07t" + esc + "]8;;\x07", CleanOptions{}, "t"},
		{"osc8 st", esc + "]8;id=1;http://a" + esc + "\\t" + esc + "]8;;" + esc + "\\", CleanOptions{}, "t"},
		{"esc 7 and 8 only", esc + "7ab" + esc + "8cd", CleanOptions{}, "abcd"},
		{"charset", esc + "(0q" + esc + "(B", CleanOptions{}, "q"},
		{"dcs", esc + "Pq#0;2;0;0;0" + esc + "\\x", CleanOptions{}, "x"},
		{"unterminated osc ends at newline", esc + "]0;title\nvisible", CleanOptions{}, "visible"},
		{"esc at end", "a" + esc, CleanOptions{}, "a"},
		{"control in csi", esc + "[3\x071mx", CleanOptions{}, "x"},
		{"backspace rune", "aé\bb", CleanOptions{}, "ab"},
		{"del and nul", "a\x7fb\x00c", CleanOptions{}, "abc"},
		{"slack escaping", "<@U1> & <!here> a>b", CleanOptions{}, "&lt;@U1&gt; &amp; &lt;!here&gt; a&gt;b"},
		{"invalid utf8", "a\xffb\xc3", CleanOptions{}, "a\uFFFDb\uFFFD"},
		{"c1 byte", "a\x9b31mb", CleanOptions{}, "a\uFFFD31mb"},
		{"markers removed", start("chat_reply") + "\nx\n" + end("chat_reply") + "\n", CleanOptions{}, "x"},
		{"marker line only", "a\n" + start("foo") + "\nb\n" + end("foo") + "\nc", CleanOptions{}, "a\nb\nc"},
		{"marker with header text", start("foo") + "Header\nbody", CleanOptions{}, "Header\nbody"},
		{"echo kept without DropCommands", "\x1b[32;1m$ ls\x1b[0;m\nfile", CleanOptions{}, "$ ls\nfile"},
		{"echo dropped", "\x1b[32;1m$ ls\x1b[0;m\nfile", CleanOptions{DropCommands: true}, "file"},
		{"collapsed echo dropped", "\x1b[32;1m$ a # collapsed multi-line command\x1b[0;m\nout", CleanOptions{DropCommands: true}, "out"},
		{"green text that is not an echo", "\x1b[32;1mOK\x1b[0;m", CleanOptions{DropCommands: true}, "OK"},
		{"step section dropped", "a\n" + start("section_script_step_0") + "\x1b[32;1m$ x\ny\x1b[0;m\n" + end("section_script_step_0") + "\nout", CleanOptions{DropCommands: true}, "a\nout"},
		{"after script step section dropped", start("section_after_script_step_3") + "\x1b[32;1m$ x\ny\x1b[0;m\n" + end("section_after_script_step_3") + "\nout", CleanOptions{DropCommands: true}, "out"},
		{"step section kept in reply mode", start("section_script_step_0") + "\x1b[32;1m$ x\x1b[0;m\n" + end("section_script_step_0") + "\nout", CleanOptions{}, "$ x\nout"},
		{"timestamp", "2024-01-02T03:04:05.000006Z 0aE text\n", CleanOptions{}, "text"},
		{"timestamp continuation", "2024-01-02T03:04:05.000006Z 00O par\n2024-01-02T03:04:05.000007Z 00O+tial\n", CleanOptions{}, "partial"},
		{"timestamp only header", "2024-01-02T03:04:05.000006Z 00O ", CleanOptions{}, ""},
		{"timestamp prefix at eof", "2024-01-02T03", CleanOptions{}, "2024-01-02T03"},
		{"secret after cleaning", "hun\x1b[1mter2", CleanOptions{Secrets: Secrets{Values: []string{"hunter2"}}}, "[MASKED]"},
		{"secret with ampersand", "a&b", CleanOptions{Secrets: Secrets{Values: []string{"a&b"}}}, "[MASKED]"},
		{"warning dropped", "\x1b[0;33m" + buildScriptWarning + ": https://x\x1b[0;m\nok", CleanOptions{}, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CleanString(tt.in, tt.opts)
			if got != tt.want {
				t.Errorf("Clean(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if b := cleanWith(tt.in, tt.opts, writeBytewise); b != got {
				t.Errorf("bytewise = %q, whole = %q", b, got)
			}
		})
	}
}

func cleanWith(in string, opts CleanOptions, write func(io.Writer, []byte)) string {
	var b bytes.Buffer
	c := NewCleaner(&b, opts)
	write(c, []byte(in))
	_ = c.Close()
	return b.String()
}

func TestCleanSplitsLongLines(t *testing.T) {
	opts := CleanOptions{MaxLineBytes: 100}
	// 'é' is two bytes: 100 is not a rune boundary after one ASCII byte.
	in := "a" + strings.Repeat("é", 120) + "\nshort"
	got := CleanString(in, opts)
	lines := strings.Split(got, "\n")
	if len(lines) != 4 || lines[3] != "short" {
		t.Fatalf("got %d lines %q", len(lines), lines)
	}
	if strings.Join(lines[:3], "") != in[:len(in)-6] {
		t.Errorf("split lines do not rejoin to the input")
	}
	for _, l := range lines {
		if len(l) > 100 || !utf8.ValidString(l) || strings.ContainsRune(l, utf8.RuneError) {
			t.Errorf("bad piece %q", l)
		}
	}
	// Redraws within a long line keep only the final text.
	if got := CleanString(strings.Repeat("progress 99%\r", 10000)+"done\n", opts); got != "done" {
		t.Errorf("long redraw line = %q", got)
	}
	// An echoed command longer than the bound is dropped whole.
	long := "\x1b[32;1m$ " + strings.Repeat("x", 1000) + "\x1b[0;m\nout"
	if got := CleanString(long, CleanOptions{MaxLineBytes: 100, DropCommands: true}); got != "out" {
		t.Errorf("long echo = %q", got)
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }

func TestCleanWriteError(t *testing.T) {
	c := NewCleaner(errWriter{}, CleanOptions{})
	_, _ = c.Write([]byte("x\ny\n"))
	if err := c.Close(); err == nil {
		t.Error("Close did not report the destination error")
	}
}

// A 100 MB line without a newline is cleaned in memory bounded by
// MaxLineBytes, whatever it looks like.
func TestCleanHugeLineMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB")
	}
	for _, pat := range []string{"abcdefgh", "\x1b[1mred\x1b[0m progress\r", "section_", "x\xff"} {
		var out countWriter
		alloc := allocatedDuring(func() {
			c := NewCleaner(&out, CleanOptions{Secrets: Secrets{Values: []string{"abcdefgh-not"}}})
			buf := make([]byte, 64<<10)
			if _, err := io.CopyBuffer(c, &repeatReader{pat: []byte(pat), n: hugeLineSize()}, buf); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		})
		if alloc > 2<<20 {
			t.Errorf("%q: allocated %d bytes cleaning a %d-byte line", pat, alloc, hugeLineSize())
		}
		if out.n == 0 {
			t.Errorf("%q: no output", pat)
		}
	}
}
