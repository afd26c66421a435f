package replies

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name    string
		secrets Secrets
		in      string
		want    string
	}{
		{"nothing", Secrets{}, "plain text", "plain text"},
		{"value", Secrets{Values: []string{"hunter2"}}, "pw=hunter2.", "pw=[MASKED]."},
		{"every occurrence", Secrets{Values: []string{"ab"}}, "ab-ab-ab", "[MASKED]-[MASKED]-[MASKED]"},
		{"adjacent occurrences merge", Secrets{Values: []string{"ab"}}, "abab", "[MASKED]"},
		{"short value still masked", Secrets{Values: []string{"pw"}}, "a pw b", "a [MASKED] b"},
		{"trimmed value", Secrets{Values: []string{"  tok3n\n"}}, "x tok3n y", "x [MASKED] y"},
		{"empty value ignored", Secrets{Values: []string{"", "   "}}, "a b", "a b"},
		{"overlap masks the union", Secrets{Values: []string{"abc", "bcdef"}}, "xabcdefx", "x[MASKED]x"},
		{"nested values", Secrets{Values: []string{"secret", "cre"}}, "a secret cre", "a [MASKED] [MASKED]"},
		{"partial value kept", Secrets{Values: []string{"hunter2"}}, "hunter3 hunte", "hunter3 hunte"},
		{"self-overlapping value", Secrets{Values: []string{"aab"}}, "aaab", "a[MASKED]"},
		{"binary value", Secrets{Values: []string{"\xff\x00"}}, "a\xff\x00b", "a[MASKED]b"},
		{"glpat default", Secrets{}, "t=glpat-AbC_1.2=x-y!", "t=glpat-[MASKED]!"},
		{"glpat without token", Secrets{}, "glpat- glpat-", "glpat- glpat-"},
		{"glpat mid word", Secrets{}, "xglpat-zz", "xglpat-[MASKED]"},
		{"job prefixes", Secrets{TokenPrefixes: []string{"glcbt-", "glrt-"}}, "glcbt-64_aa glrt-b c", "glcbt-[MASKED] glrt-[MASKED] c"},
		{"not configured prefix", Secrets{}, "mytok-abc", "mytok-abc"},
		{"runner default prefix", Secrets{}, "glrt-abc", "glrt-[MASKED]"},
		{"prefix inside token", Secrets{}, "glpat-aglpat-b c", "glpat-[MASKED] c"},
		{"value inside token", Secrets{Values: []string{"zz"}}, "glpat-azzb c", "glpat-[MASKED] c"},
		{"value covering prefix", Secrets{Values: []string{"x glpat-a"}}, "x glpat-abc d", "[MASKED] d"},
		{"url param", Secrets{}, "GET /api?private_token=abc123&page=2 HTTP", "GET /api?private_token=[MASKED]&page=2 HTTP"},
		{"url param case", Secrets{}, "u?X-Amz-Signature=dead&X-AMZ-CREDENTIAL=AK/1/x", "u?X-Amz-Signature=[MASKED]&X-AMZ-CREDENTIAL=[MASKED]"},
		{"url param needs separator", Secrets{}, "private_token=abc", "private_token=abc"},
		{"url param empty value", Secrets{}, "?rss_token=&x", "?rss_token=[MASKED]&x"}, // as the runner's urlsanitizer
		{"mask literal is a value", Secrets{Values: []string{"[MASKED]"}}, "[MASKED]", "[MASKED]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Redact(tt.in, tt.secrets); got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for _, w := range []func(io.Writer, []byte){writeBytewise, writeRandom(3, 4), writeRandom(5, 9)} {
				var b bytes.Buffer
				r := NewRedactor(&b, tt.secrets)
				w(r, []byte(tt.in))
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				if b.String() != tt.want {
					t.Errorf("chunked: %q, want %q", b.String(), tt.want)
				}
			}
		})
	}
}

// holdWriter records what has been written so far.
type holdWriter struct{ bytes.Buffer }

// Only a possible partial match is held back; everything else is written
// before Write returns.
func TestRedactHoldsOnlyPartialMatch(t *testing.T) {
	var w holdWriter
	r := NewRedactor(&w, Secrets{Values: []string{"topsecret"}})
	_, _ = r.Write([]byte("hello top"))
	if got := w.String(); got != "hello " {
		t.Errorf("after a partial match: written %q, want %q", got, "hello ")
	}
	_, _ = r.Write([]byte("sec"))
	_, _ = r.Write([]byte("ret!"))
	if got := w.String(); got != "hello [MASKED]!" {
		t.Errorf("after completion: %q", got)
	}
	_, _ = r.Write([]byte(" tops"))
	_ = r.Close()
	if got := w.String(); got != "hello [MASKED]! tops" {
		t.Errorf("after Close: %q", got)
	}
}

func TestRedactHugeTokenMemory(t *testing.T) {
	var out countWriter
	alloc := allocatedDuring(func() {
		r := NewRedactor(&out, Secrets{Values: []string{"not-there-at-all"}})
		_, _ = r.Write([]byte("glpat-"))
		buf := make([]byte, 64<<10)
		if _, err := io.CopyBuffer(r, &repeatReader{pat: []byte("abcdef"), n: 20 << 20}, buf); err != nil {
			t.Fatal(err)
		}
		_ = r.Close()
	})
	if out.n != int64(len("glpat-[MASKED]")) {
		t.Errorf("output %d bytes, want only the masked token", out.n)
	}
	if alloc > 256<<10 {
		t.Errorf("allocated %d bytes for a 20 MB token", alloc)
	}
}

func TestRedactWriteError(t *testing.T) {
	r := NewRedactor(errWriter{}, Secrets{})
	if _, err := r.Write([]byte("abc")); err == nil {
		t.Error("Write did not report the error")
	}
	if err := r.Close(); err == nil {
		t.Error("Close did not report the error")
	}
}

func TestRedactManySecrets(t *testing.T) {
	var vals []string
	for i := 0; i < 200; i++ {
		vals = append(vals, strings.Repeat(string(rune('a'+i%26)), 3+i%7)+"-"+strings.Repeat("x", i%5))
	}
	in := strings.Join(vals, " | ")
	got := Redact(in, Secrets{Values: vals})
	for _, v := range vals {
		if strings.Contains(got, v) {
			t.Fatalf("%q survived in %q", v, got)
		}
	}
}
