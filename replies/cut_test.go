package replies

import (
	"strings"
	"testing"
)

// Issue 9: a line longer than MaxLineBytes used to be split before masking, so a secret
// across the split reached chat in two halves (inline and in the uploaded file).
func TestCleanSplitsAfterMasking(t *testing.T) {
	const secret = "Zq7Xv9Kp2Lm4Nb8Rt6Wy"
	opts := CleanOptions{MaxLineBytes: 100, Secrets: Secrets{Values: []string{secret}}}
	for _, at := range []int{85, 90, 95, 99} {
		in := strings.Repeat("a", at) + secret + strings.Repeat("b", 150) + " glpat-" + strings.Repeat("T", 40) + "\nnext"
		for _, w := range []struct {
			name  string
			write func(*Cleaner, string)
		}{
			{"whole", func(c *Cleaner, s string) { _, _ = c.Write([]byte(s)) }},
			{"bytewise", func(c *Cleaner, s string) { writeBytewise(c, []byte(s)) }},
		} {
			var b strings.Builder
			c := NewCleaner(&b, opts)
			w.write(c, in)
			_ = c.Close()
			got := b.String()
			for i := 0; i+4 <= len(secret); i++ {
				if strings.Contains(got, secret[i:i+4]) {
					t.Fatalf("at %d (%s): part %q of the secret survived in %q", at, w.name, secret[i:i+4], got)
				}
			}
			if strings.Contains(got, "TTTT") {
				t.Errorf("at %d (%s): token survived: %q", at, w.name, got)
			}
			lines := strings.Split(got, "\n")
			if lines[len(lines)-1] != "next" || len(lines) < 3 {
				t.Errorf("at %d (%s): lines %q", at, w.name, lines)
			}
			for _, l := range lines {
				if len(l) > 100 {
					t.Errorf("at %d (%s): line of %d bytes", at, w.name, len(l))
				}
			}
			if want := strings.Repeat("a", at) + Mask; !strings.HasPrefix(strings.ReplaceAll(got, "\n", ""), want) {
				t.Errorf("at %d (%s): %q does not start with %q", at, w.name, got, want)
			}
		}
	}
}

// Issue 9: progress edits cut the raw last line at 1024 bytes before cleaning and masking,
// so after 1000 bytes of colour codes 24 of 26 characters of a secret reached Slack.
// CleanCutString masks first and drops what may be the start of a cut-off secret.
func TestCleanCutStringDropsPartialSecret(t *testing.T) {
	const secret = "Zq7Xv9Kp2Lm4Nb8Rt6Wy3Hs5Jd"
	opts := CleanOptions{Plain: true, Secrets: Secrets{Values: []string{secret}}}
	raw := strings.Repeat("\x1b[0m", 250) + "deploying " + secret + " now"
	cut := raw[:1024]
	if got := CleanString(cut, opts); !strings.Contains(got, secret[:10]) {
		t.Fatalf("the test does not reproduce the leak: %q", got)
	}
	got := CleanCutString(cut, opts)
	if got != "deploying" {
		t.Errorf("CleanCutString = %q, want %q", got, "deploying")
	}
	// A token whose end was cut off is still masked, and a line that was not cut keeps
	// what only looked like the start of a secret.
	if got := CleanCutString("tok glpat-abcdef", opts); got != "tok glpat-[MASKED]" {
		t.Errorf("cut token: %q", got)
	}
	if got := CleanString("partial Zq7X", opts); got != "partial Zq7X" {
		t.Errorf("uncut: %q", got)
	}
	if got := CleanCutString("partial Zq7X", opts); got != "partial" {
		t.Errorf("cut partial: %q", got)
	}
}
