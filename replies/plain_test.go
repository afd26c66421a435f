package replies

import "testing"

func TestPlainSkipsEscapingButStillMasks(t *testing.T) {
	in := "\x1b[31ma < b && c > d\x1b[0m token dt-0123\n"
	opts := CleanOptions{Secrets: Secrets{Values: []string{"dt-0123"}}}
	if got, want := CleanString(in, opts), "a &lt; b &amp;&amp; c &gt; d token [MASKED]"; got != want {
		t.Errorf("escaped: %q, want %q", got, want)
	}
	opts.Plain = true
	if got, want := CleanString(in, opts), "a < b && c > d token [MASKED]"; got != want {
		t.Errorf("plain: %q, want %q", got, want)
	}
	if got, want := EscapeSlack("<!channel> & <@U1>"), "&lt;!channel&gt; &amp; &lt;@U1&gt;"; got != want {
		t.Errorf("EscapeSlack: %q, want %q", got, want)
	}
}
