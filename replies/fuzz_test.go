package replies

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// seedCorpus adds every golden input, so the fuzzers start from real
// runner output.
func seedCorpus(f *testing.F, add func(data []byte)) {
	inputs, _ := filepath.Glob("testdata/*.input")
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		add(data)
	}
}

// gitlabMarker is GitLab's build_trace_section_regex (lib/gitlab/regex.rb).
var gitlabMarker = regexp.MustCompile(`^section_((?:start)|(?:end)):(\d+):([a-zA-Z0-9_.-]+)(\[(?:\w+=\w+)(?:, ?(?:\w+=\w+))*\])?\r\x1b\[0K`)

type refMarker struct {
	start      bool
	begin, end int
}

// gitlabChatReplyMarkers is a direct port of GitLab's SectionParser loop
// (lib/gitlab/ci/trace/section_parser.rb): find "section_", try the
// anchored regex there, on failure skip the 8 bytes of "section_". Lines do
// not matter, as the regex cannot match a newline.
func gitlabChatReplyMarkers(data []byte) []refMarker {
	var out []refMarker
	pos := 0
	for {
		i := bytes.Index(data[pos:], sectionLit)
		if i < 0 {
			return out
		}
		pos += i
		m := gitlabMarker.FindSubmatchIndex(data[pos:])
		if m == nil {
			pos += len(sectionLit)
			continue
		}
		if string(data[pos+m[6]:pos+m[7]]) == ChatReplySection {
			out = append(out, refMarker{start: string(data[pos+m[2]:pos+m[3]]) == "start", begin: pos, end: pos + m[1]})
		}
		pos += m[1]
	}
}

// FuzzCapture checks Capture against a port of GitLab's parser, in every
// chunking.
func FuzzCapture(f *testing.F) {
	seedCorpus(f, func(d []byte) { f.Add(d, uint64(1)) })
	f.Add([]byte("section_section_start:1:chat_section_start:2:chat_reply\r\x1b[0Kx"), uint64(2))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		if len(data) > MaxMarkerLen {
			t.Skip("candidates over MaxMarkerLen differ from GitLab by design")
		}
		ref := gitlabChatReplyMarkers(data)
		var want Counts
		for _, m := range ref {
			k := EndMarker
			if m.start {
				want.Starts++
				k = StartMarker
			} else {
				want.Ends++
			}
			if want.First == NoMarker {
				want.First = k
			}
		}
		wantSection := ""
		if len(ref) > 0 && ref[0].start {
			stop := len(data)
			if len(ref) > 1 {
				stop = ref[1].begin
			}
			wantSection = string(data[ref[0].end:stop])
		}
		check := func(name string, sec string, counts Counts) {
			if counts != want || sec != wantSection {
				t.Fatalf("%s: got %v %q, GitLab gives %v %q for %q", name, counts, sec, want, wantSection, data)
			}
		}
		sec, counts := captureOnce(t, Counts{}, string(data), writeAll)
		check("whole", sec, counts)
		sec, counts = captureOnce(t, Counts{}, string(data), writeBytewise)
		check("bytewise", sec, counts)
		sec, counts = captureOnce(t, Counts{}, string(data), writeRandom(seed, 1+int(seed%17)))
		check("random", sec, counts)
	})
}

// checkReplyText asserts what every cleaned reply must be.
func checkReplyText(t *testing.T, in []byte, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("invalid UTF-8 %q from %q", out, in)
	}
	for i, r := range out {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			t.Fatalf("control %q at %d in %q from %q", r, i, out, in)
		}
		if r == '<' || r == '>' {
			t.Fatalf("unescaped %q at %d in %q from %q", r, i, out, in)
		}
		if r == '&' && !strings.HasPrefix(out[i:], "&amp;") && !strings.HasPrefix(out[i:], "&lt;") && !strings.HasPrefix(out[i:], "&gt;") {
			t.Fatalf("bare & at %d in %q from %q", i, out, in)
		}
	}
	if strings.HasPrefix(out, "\n") || strings.HasSuffix(out, "\n") {
		t.Fatalf("leading or trailing blank line in %q", out)
	}
}

// FuzzClean checks that cleaning is chunking-independent and always yields
// valid, escaped, control-free text.
func FuzzClean(f *testing.F) {
	seedCorpus(f, func(d []byte) { f.Add(d, uint64(1), false) })
	f.Add([]byte("\x1b]8;;x\x1b\\y\r\x1b[2K\xff\x1b7\x1b8"), uint64(3), true)
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, drop bool) {
		opts := CleanOptions{DropCommands: drop, MaxLineBytes: 64 + int(seed%200)}
		whole := cleanWith(string(data), opts, writeAll)
		checkReplyText(t, data, whole)
		if b := cleanWith(string(data), opts, writeBytewise); b != whole {
			t.Fatalf("bytewise %q != whole %q for %q", b, whole, data)
		}
		if r := cleanWith(string(data), opts, writeRandom(seed, 1+int(seed%31))); r != whole {
			t.Fatalf("random %q != whole %q for %q", r, whole, data)
		}
	})
}

// fuzzSecret keeps the bytes of s that are lowercase letters or digits, so
// that no secret shares a byte with "[MASKED]" and a survivor can only be a
// miss, not an artefact of the mask itself.
func fuzzSecret(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// FuzzRedact checks that no secret survives in any chunking, and that every
// token prefix left in the output is followed by the mask or a non-token
// byte.
func FuzzRedact(f *testing.F) {
	f.Add([]byte("pw=hunter2 glpat-abc ?private_token=x"), "hunter2", "abc", uint64(1))
	f.Add([]byte("aaab abab"), "aab", "ba", uint64(2))
	f.Add([]byte("glcbt-glpat-x"), "glp", "t", uint64(3))
	f.Fuzz(func(t *testing.T, data []byte, s1, s2 string, seed uint64) {
		var vals []string
		for _, s := range []string{fuzzSecret(s1), fuzzSecret(s2)} {
			if s != "" {
				vals = append(vals, s)
			}
		}
		secrets := Secrets{Values: vals, TokenPrefixes: []string{"glcbt-"}}
		whole := Redact(string(data), secrets)
		var b bytes.Buffer
		r := NewRedactor(&b, secrets)
		writeRandom(seed, 1+int(seed%11))(r, data)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if b.String() != whole {
			t.Fatalf("chunked %q != whole %q", b.String(), whole)
		}
		for _, v := range vals {
			if strings.Contains(whole, v) {
				t.Fatalf("secret %q survives in %q (input %q)", v, whole, data)
			}
		}
		for _, p := range []string{"glpat-", "glcbt-"} {
			rest := whole
			for {
				i := strings.Index(rest, p)
				if i < 0 {
					break
				}
				rest = rest[i+len(p):]
				if rest != "" && tokenByte[rest[0]] {
					t.Fatalf("token after %q survives in %q (input %q)", p, whole, data)
				}
			}
		}
	})
}
