package replies

import (
	"strings"
	"testing"
)

// Cases from GitLab's spec/lib/gitlab/chat/output_spec.rb (#without_executed_command_line):
// the reply is the chat_reply section without its first line.
func TestDropFirstLineGitLabOutputSpec(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"hello\nworld", "world"}, // 'returns the input without the first line'
		{"", ""},                  // 'returns an empty String when the input is empty'
		{"\n", ""},                // 'returns an empty String when the input consits of a single newline'
		{"only line", ""},         // split("\n")[1..-1] of one line is []
		{"\nreply\nmore\n", "reply\nmore"},
	} {
		opts := CleanOptions{Plain: true, DropFirstLine: true}
		if got := CleanString(tt.in, opts); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
		if got := cleanWith(tt.in, opts, writeBytewise); got != tt.want {
			t.Errorf("%q bytewise: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Section cases from GitLab's spec/lib/gitlab/ci/ansi2json_spec.rb ('with section markers'),
// as the lines of text the log view shows (footer lines carry no text; blank lines, which the
// log view hides, are not part of these cases).
func TestMarkersBreakLinesAsGitLabLogView(t *testing.T) {
	const start = "section_start:1568678400:prepare-script\r\x1b[0K"
	const end = "section_end:1568678463:prepare-script\r\x1b[0K"
	const nstart = "section_start:1568678400:prepare-script-nested\r\x1b[0K"
	const nend = "section_end:1568678402:prepare-script-nested\r\x1b[0K"
	for _, tt := range []struct{ name, in, want string }{
		{"marks the first line of the section as header", "Hello" + start + "world!", "Hello\nworld!"},
		{"does not marks the other lines of the section as header", "outside section" + start + "Hello\nworld!", "outside section\nHello\nworld!"},
		{"marks the last line of the section as footer", start + "Good\nmorning\nworld!" + end, "Good\nmorning\nworld!"},
		{"only line in the section", start + "Hello world!" + end, "Hello world!"},
		{"does not add sections attribute to lines after the section is closed", start + "Hello" + end + "world", "Hello\nworld"},
		{"ignores section_end marker if no section_start exists", "Hello " + end + "world", "Hello world"},
		{"prints HTML tags as is", start + "section_end:1:2<div>hello</div>" + end, "section_end:1:2&lt;div&gt;hello&lt;/div&gt;"},
		{"nested section", "Hello" + start + "foo" + nstart + "bar" + nend + "baz" + end + "world", "Hello\nfoo\nbar\nbaz\nworld"},
		{"nested sections closed together", "Hello" + start + "\x1b[91mfoo\x1b[0m" + nstart + "bar" + nend + end, "Hello\nfoo\nbar"},
		{"section options", "section_start:1568678400:prepare-script[collapsed=true,unused_option=123]\r\x1b[0Khello" + end, "hello"},
		// ansi2json's 'lines' cases that apply to text.
		{"adds new line when encountering \\r\\n", "Hello\r\nworld", "Hello\nworld"},
		{"replace the current line when encountering \\r", "Hello\rworld", "world"},
	} {
		if got := CleanString(tt.in, CleanOptions{}); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
		if got := cleanWith(tt.in, CleanOptions{}, writeBytewise); got != tt.want {
			t.Errorf("%s (bytewise): got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// Older runners and some shells write a colour reset before the echo's colour; the line is
// still the runner's echo of a command.
func TestEchoAfterColourReset(t *testing.T) {
	for _, head := range []string{"", "\x1b[0;m", "\x1b[0m", "\x1b[m", "\x1b[0;m\x1b[0K", "\x1b[0K\x1b[0;m"} {
		in := head + "\x1b[32;1m$ echo hi\x1b[0;m\nhi\n"
		if got := CleanString(in, CleanOptions{DropCommands: true}); got != "hi" {
			t.Errorf("%q: got %q", head, got)
		}
		if got := cleanWith(in, CleanOptions{DropCommands: true}, writeBytewise); got != "hi" {
			t.Errorf("%q bytewise: got %q", head, got)
		}
	}
	// Not an echo: other colours, or text first.
	for _, in := range []string{"\x1b[31;1m$ red\n", "x\x1b[32;1m$ y\n", "\x1b[0;m$ plain\n"} {
		if got := CleanString(in, CleanOptions{DropCommands: true}); strings.TrimSpace(got) == "" {
			t.Errorf("%q dropped", in)
		}
	}
}
