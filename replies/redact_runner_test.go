package replies

import (
	"bytes"
	"strings"
	"testing"
)

// runnerCase is a case ported from gitlab-runner 19.4's own tests; '|' in input splits it
// into the writes the runner's test makes. want is the runner's expected output unless
// ours says otherwise (then why says why we differ, and the README lists it).
type runnerCase struct {
	name     string
	values   []string
	prefixes []string
	input    string
	want     string
	why      string
}

func runRunnerCases(t *testing.T, cases []runnerCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := Secrets{Values: tc.values, TokenPrefixes: tc.prefixes}
			var b bytes.Buffer
			r := NewRedactor(&b, s)
			for _, part := range strings.Split(tc.input, "|") {
				if n, err := r.Write([]byte(part)); err != nil || n != len(part) {
					t.Fatalf("Write(%q) = %d, %v", part, n, err)
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got  %q\nwant %q", b.String(), tc.want)
			}
			if whole := Redact(strings.ReplaceAll(tc.input, "|", ""), s); whole != tc.want {
				t.Errorf("unsplit: got %q", whole)
			}
		})
	}
}

// Cases from common/buildlogger/internal/tokensanitizer/token_masker_test.go
// (TestTokenMasking), run with the job's prefixes plus DefaultTokenPrefixes(true) as there.
func TestRedactRunnerTokenSanitizer(t *testing.T) {
	runRunnerCases(t, []runnerCase{
		{name: "simple prefix masking",
			input: "Lorem ipsum dolor sit amet, ex ea commodo glpat-imperdiet in voluptate velit esse",
			want:  "Lorem ipsum dolor sit amet, ex ea commodo glpat-[MASKED] in voluptate velit esse"},
		{name: "prefix at the end of the line",
			input: "Lorem ipsum dolor sit amet, ex ea commodo in voluptate velit esseglpat-imperdiet",
			want:  "Lorem ipsum dolor sit amet, ex ea commodo in voluptate velit esseglpat-[MASKED]"},
		{name: "prefix at the beginning of the line",
			input: "glpat-imperdiet Lorem ipsum dolor sit amet, ex ea commodo in voluptate velit esse",
			want:  "glpat-[MASKED] Lorem ipsum dolor sit amet, ex ea commodo in voluptate velit esse"},
		{name: "prefix inside of the line",
			input: "esseglpat-imperdiet=_-. end Lorem ipsum dolor sit amet, ex ea commodo  in voluptate velit",
			want:  "esseglpat-[MASKED] end Lorem ipsum dolor sit amet, ex ea commodo  in voluptate velit"},
		{name: "two prefix concatenate",
			input: "glpat-impglpat-erdiet Lorem ipsum dolor sit amet, ex ea commodo  in voluptate velit esse",
			want:  "glpat-[MASKED] Lorem ipsum dolor sit amet, ex ea commodo  in voluptate velit esse"},
		{name: "multiple packets pat masking",
			input: "glpat|-imperdiet Lorem ipsum dolor sit amet, ex ea commodo gl|pat-imperdiet in voluptate velit esse",
			want:  "glpat-[MASKED] Lorem ipsum dolor sit amet, ex ea commodo glpat-[MASKED] in voluptate velit esse"},
		{name: "second multiple packets pat masking",
			input: "glpat| -imperdiet Lorem ipsum dolor sit amet",
			want:  "glpat -imperdiet Lorem ipsum dolor sit amet"},
		{name: "long input",
			input: "Lorglpat-ipsu dolor sit amglpat-t, consglpat-ctglpat-tur adipiscing glpat-lit, sglpat-d do glpat-iusmod tglpat-mpor incididunt ut laborglpat-=_ glpat-t dolorglpat-=_ magna aliqua.",
			want:  "Lorglpat-[MASKED] dolor sit amglpat-[MASKED], consglpat-[MASKED] adipiscing glpat-[MASKED], sglpat-[MASKED] do glpat-[MASKED] tglpat-[MASKED] incididunt ut laborglpat-[MASKED] glpat-[MASKED] dolorglpat-[MASKED] magna aliqua."},
		{name: "multiple packets long input",
			input: "Lorglpat-ipsu dolor sit amglp|at-t, consglpat-ctg|lpat-tur adipiscing glpat-lit, sglpat-|d do glpat-iusmod t|glpat-mpor incididunt ut |laborglpat-=_ glpat-t dolorglpat-=_ magna aliqua.",
			want:  "Lorglpat-[MASKED] dolor sit amglpat-[MASKED], consglpat-[MASKED] adipiscing glpat-[MASKED], sglpat-[MASKED] do glpat-[MASKED] tglpat-[MASKED] incididunt ut laborglpat-[MASKED] glpat-[MASKED] dolorglpat-[MASKED] magna aliqua."},
		{name: "second long input",
			input: "Lorglpat- ipsu dolor sit amglpat-t, consglpat-ctglpat-tur adipiscing glpat-lit, sglpat-d do glpat-iusmod tglpat-mpor incididunt ut laborglpat-=_ glpat-t dolorglpat-=_ magna aliqua.",
			want:  "Lorglpat- ipsu dolor sit amglpat-[MASKED], consglpat-[MASKED] adipiscing glpat-[MASKED], sglpat-[MASKED] do glpat-[MASKED] tglpat-[MASKED] incididunt ut laborglpat-[MASKED] glpat-[MASKED] dolorglpat-[MASKED] magna aliqua."},
		{name: "custom prefix with default one at the beginning of the line", prefixes: []string{"token-"},
			input: "token-imperdiet Lorem ipsum dolor sit amet, ex ea commodo in voluptate velit esse",
			want:  "token-[MASKED] Lorem ipsum dolor sit amet, ex ea commodo in voluptate velit esse"},
		{name: "custom prefix with default one multiple packets long input", prefixes: []string{"tok-"},
			input: "Lortok-ipsu dolor sit amt|ok-t, cons-ctg|lpat-tur adipiscing tok-lit, stok-|d gltok-test do tok-iusmod t|tok-mpor incididunt ut |labortok-=_ tok-t dolortok-=_ magna aliqua. Tglpat-llus orci ac auctor auguglpat-eee mauris auguglpat-wEr_ lorem",
			want:  "Lortok-[MASKED] dolor sit amtok-[MASKED], cons-ctglpat-[MASKED] adipiscing tok-[MASKED], stok-[MASKED] gltok-[MASKED] do tok-[MASKED] ttok-[MASKED] incididunt ut labortok-[MASKED] tok-[MASKED] dolortok-[MASKED] magna aliqua. Tglpat-[MASKED] orci ac auctor auguglpat-[MASKED] mauris auguglpat-[MASKED] lorem"},
		{name: "ignored sixteenth prefix and more",
			prefixes: []string{"mask1-", "mask2-", "mask3-", "mask4-", "mask5-", "mask6-", "mask7-", "mask8-", "mask9-", "mask10-", "mask11-"},
			input:    "Lormask1-ipsu dolor sit amm|ask2-t, cons-ctg|lpat-tur adipiscing mask5-lit, smask11-|d do mask7-iusmod t|glpat-mpor incididunt ut |labormask10-=_ mask9-t",
			want:     "Lormask1-[MASKED] dolor sit ammask2-[MASKED], cons-ctglpat-[MASKED] adipiscing mask5-[MASKED], smask11-[MASKED] do mask7-[MASKED] tglpat-[MASKED] incididunt ut labormask10-[MASKED] mask9-[MASKED]",
			why:      "the runner uses only its 15 shortest prefixes and shows tokens of the rest; we mask every prefix"},
	})
}

// Every default prefix of the runner (tokensanitizer DefaultTokenPrefixes(true)), and only
// glpat- when the job turns FF_MASK_ALL_DEFAULT_TOKENS off.
func TestRedactAllDefaultPrefixes(t *testing.T) {
	all := []string{"glpat-", "gloas-", "gldt-", "glrt-", "glcbt-", "glrtr-", "glptt-", "glft-",
		"glimt-", "glagent-", "glsoat-", "glffct-", "_gitlab_session=", "gltok-"}
	for _, p := range all {
		in := "x " + p + "s3cr3tTOKEN_value y"
		if got, want := Redact(in, Secrets{}), "x "+p+"[MASKED] y"; got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
		got := Redact(in, Secrets{OnlyPATPrefix: true})
		if p == "glpat-" {
			if got != "x glpat-[MASKED] y" {
				t.Errorf("flag off: glpat- not masked: %q", got)
			}
		} else if got != in {
			t.Errorf("flag off: %q masked as %q; the runner shows it", in, got)
		}
	}
	if got := Redact("a glrt-x b", Secrets{OnlyPATPrefix: true, TokenPrefixes: []string{"glrt-"}}); got != "a glrt-[MASKED] b" {
		t.Errorf("the job's own prefixes still count with the flag off: %q", got)
	}
}

// Cases from common/buildlogger/internal/urlsanitizer/urlsanitizer_test.go (TestMasking).
func TestRedactRunnerURLSanitizer(t *testing.T) {
	runRunnerCases(t, []runnerCase{
		{name: "no escaping", input: "no escaping at all http://example.org/?test=foobar", want: "no escaping at all http://example.org/?test=foobar"},
		{name: "multiple", input: "multiple: &private_token=hello &?x-amz-security-token=hello &?x-amz-security-token=hello ?x-amz-security?x-amz-security-token=hello",
			want: "multiple: &private_token=[MASKED] &?x-amz-security-token=[MASKED] &?x-amz-security-token=[MASKED] ?x-amz-security?x-amz-security-token=[MASKED]"},
		{name: "above known key size", input: "above known key size: http://example.org/?this-is-a-really-really-long-key-name=foobar",
			want: "above known key size: http://example.org/?this-is-a-really-really-long-key-name=foobar"},
		{name: "start", input: "http://example.com/?private_token=deadbeef sensitive URL at the start", want: "http://example.com/?private_token=[MASKED] sensitive URL at the start"},
		{name: "end", input: "a sensitive URL at the end http://example.com/?authenticity_token=deadbeef", want: "a sensitive URL at the end http://example.com/?authenticity_token=[MASKED]"},
		{name: "middle", input: "a sensitive URL http://example.com/?rss_token=deadbeef in the middle", want: "a sensitive URL http://example.com/?rss_token=[MASKED] in the middle"},
		{name: "mixed case", input: "a sensitive URL http://example.com/?X-AMZ-sigNATure=deadbeef with mixed case", want: "a sensitive URL http://example.com/?X-AMZ-sigNATure=[MASKED] with mixed case"},
		{name: "second param", input: "a sensitive URL http://example.com/?param=second&x-amz-credential=deadbeef second param", want: "a sensitive URL http://example.com/?param=second&x-amz-credential=[MASKED] second param"},
		{name: "both params", input: "a sensitive URL http://example.com/?rss_token=hide&x-amz-credential=deadbeef both params", want: "a sensitive URL http://example.com/?rss_token=[MASKED]&x-amz-credential=[MASKED] both params"},
		{name: "really long", input: "a really long sensitive URL http://example.com/?x-amz-credential=" + strings.Repeat("0", 8*1024) + " that is still scrubbed",
			want: "a really long sensitive URL http://example.com/?x-amz-credential=[MASKED] that is still scrubbed"},
		{name: "split", input: "spl|it sensit|ive UR|L http://example.com/?x-amz-cred|ential=abcdefghij|klmnopqrstuvwxyz01234567", want: "split sensitive URL http://example.com/?x-amz-credential=[MASKED]"},
		{name: "newline", input: "newline: http://example.com/?x-amz-credential=abc\nhttp://example.com/?x-amz-credential=abc", want: "newline: http://example.com/?x-amz-credential=[MASKED]\nhttp://example.com/?x-amz-credential=[MASKED]"},
		{name: "control character", input: "control character: http://example.com/?x-amz-credential=abc\bhttp://example.com/?x-amz-credential=abc", want: "control character: http://example.com/?x-amz-credential=[MASKED]\bhttp://example.com/?x-amz-credential=[MASKED]"},
		{name: "odd value", input: "rss_token=notmasked http://example.com/?rss_token=!@#$A&x-amz-credential=abc&test=test", want: "rss_token=notmasked http://example.com/?rss_token=[MASKED]&x-amz-credential=[MASKED]&test=test"},
		{name: "no value", input: "query string with no value: http://example.com/?x-amz-credential=&private_token=gitlab", want: "query string with no value: http://example.com/?x-amz-credential=[MASKED]&private_token=[MASKED]"},
		{name: "double &", input: "invalid URL with double &: http://example.com/?x-amz-credential=abc&&private_token=gitlab", want: "invalid URL with double &: http://example.com/?x-amz-credential=[MASKED]&&private_token=[MASKED]"},
		{name: "double ?", input: "invalid URL with double ?: http://example.com/?x-amz-credential=abc??private_token=gitlab", want: "invalid URL with double ?: http://example.com/?x-amz-credential=[MASKED]??private_token=[MASKED]"},
		{name: "split on &", input: "split on &: http://example.com/|&|x-amz-cre|dential=abc", want: "split on &: http://example.com/&x-amz-credential=[MASKED]"},
		{name: "split on ?", input: "split on ?: http://example.com/|?|x-amz-cre|dential=abc", want: "split on ?: http://example.com/?x-amz-credential=[MASKED]"},
		{name: "split after ?", input: "split after ?: http://example.com/|?||x-amz-cre|dential=abc", want: "split after ?: http://example.com/?x-amz-credential=[MASKED]"},
		{name: "interweaved", input: "interweaved tokens: ?|one ?x-amz-credential=abc two=three ?|one=two &token &x-amz-credential=abc =token ?=",
			want: "interweaved tokens: ?one ?x-amz-credential=[MASKED] two=three ?one=two &token &x-amz-credential=[MASKED] =token ?="},
		{name: "terminated ?x", input: "terminated before mask: ?x", want: "terminated before mask: ?x"},
		{name: "terminated ?x-", input: "terminated before mask: ?x|-", want: "terminated before mask: ?x-"},
		{name: "terminated ?x- split", input: "terminated before mask: ?x-|", want: "terminated before mask: ?x-"},
		{name: "terminated at =", input: "terminated before mask: ?x-amz-credential=", want: "terminated before mask: ?x-amz-credential=[MASKED]"},
		{name: "terminated at = split", input: "terminated before mask: ?x-amz-credential=|", want: "terminated before mask: ?x-amz-credential=[MASKED]"},
	})
}

// Cases from common/buildlogger/internal/masker/masker_test.go (TestMasking).
func TestRedactRunnerMasker(t *testing.T) {
	merged := "we mask the union of adjacent and overlapping secrets as one [MASKED]"
	runRunnerCases(t, []runnerCase{
		{name: "empty secrets", values: []string{""}, input: "empty secrets have no affect", want: "empty secrets have no affect"},
		{name: "no escaping", input: "no escaping at all", want: "no escaping at all"},
		{name: "whole", values: []string{"secrets"}, input: "secrets", want: "[MASKED]"},
		{name: "split end", values: []string{"secrets"}, input: "secret|s", want: "[MASKED]"},
		{name: "split start", values: []string{"secrets"}, input: "s|ecrets", want: "[MASKED]"},
		{name: "twice", values: []string{"secrets"}, input: "secretssecrets", want: "[MASKED]", why: merged},
		{name: "prefixed", values: []string{"secrets"}, input: "ssecrets", want: "s[MASKED]"},
		{name: "prefixed split", values: []string{"secrets"}, input: "s|secrets", want: "s[MASKED]"},
		{name: "start", values: []string{"at"}, input: "at the start of the buffer", want: "[MASKED] the start of the buffer"},
		{name: "middle", values: []string{"middle"}, input: "in the middle of the buffer", want: "in the [MASKED] of the buffer"},
		{name: "end", values: []string{"buffer"}, input: "at the end of the buffer", want: "at the end of the [MASKED]"},
		{name: "all", values: []string{"all", "values", "are", "masked"}, input: "all values are masked", want: "[MASKED] [MASKED] [MASKED] [MASKED]"},
		{name: "prefixed and suffixed", values: []string{"foo", "bar"}, input: "prefixed and suffixed: xfoox ybary ffoo barr ffooo bbarr",
			want: "prefixed and suffixed: x[MASKED]x y[MASKED]y f[MASKED] [MASKED]r f[MASKED]o b[MASKED]r"},
		{name: "prefixed and suffixed split", values: []string{"foo", "bar"}, input: "prefix|ed, su|ffi|xed |and split|:| xfo|ox y|bary ffo|o ba|rr ffooo b|barr",
			want: "prefixed, suffixed and split: x[MASKED]x y[MASKED]y f[MASKED] [MASKED]r f[MASKED]o b[MASKED]r"},
		{name: "split all", values: []string{"split", "all", "values", "are", "masked"}, input: "sp|lit al|l val|ues ar|e |mask|ed", want: "[MASKED] [MASKED] [MASKED] [MASKED] [MASKED]"},
		{name: "nested", values: []string{"mask", "prefix_mask"}, input: "prefix_mask mask prefix_|mask prefix_ma|sk mas|k", want: "[MASKED] [MASKED] [MASKED] [MASKED] [MASKED]"},
		{name: "large secret", values: []string{strings.Repeat("_", 8000*2)}, input: "large secret: " + strings.Repeat("_", 8000) + "|" + strings.Repeat("_", 8000), want: "large secret: [MASKED]"},
		{name: "overlap", values: []string{"this is the end", "en foobar", "en"}, input: "overlap: this is the en| foobar", want: "overlap: this is the [MASKED]"},
	})
}
