package replies

import (
	"io"
	"slices"
	"strings"
	"sync"
)

// Mask replaces every secret in a reply, as in GitLab's masked job log.
const Mask = "[MASKED]"

// alwaysTokenPrefixes are masked whatever the job says: gitlab-runner adds
// "glpat-" to every job's list (common/buildlogger/internal/tokensanitizer
// DefaultTokenPrefixes).
var alwaysTokenPrefixes = []string{"glpat-"}

// allDefaultTokenPrefixes are the other prefixes gitlab-runner 19.4 masks
// while the feature flag FF_MASK_ALL_DEFAULT_TOKENS is on, its default
// (tokensanitizer allTokenPrefixes).
var allDefaultTokenPrefixes = []string{
	"gloas-", "gldt-", "glrt-", "glcbt-", "glrtr-", "glptt-", "glft-", "glimt-",
	"glagent-", "glsoat-", "glffct-", "_gitlab_session=", "gltok-",
}

// extraTokenPrefixes are masked beyond what the runner masks: "GR1348941"
// starts the runner registration tokens GitLab issued before glrt- tokens,
// which a job has no business printing.
var extraTokenPrefixes = []string{"GR1348941"}

// DefaultTokenPrefixes are the prefixes masked in every job, as
// gitlab-runner's DefaultTokenPrefixes(maskAll) plus extraTokenPrefixes.
func DefaultTokenPrefixes(maskAll bool) []string {
	p := slices.Clone(alwaysTokenPrefixes)
	if maskAll {
		p = append(p, allDefaultTokenPrefixes...)
	}
	return append(p, extraTokenPrefixes...)
}

// urlParamKeys are the query parameters gitlab-runner's urlsanitizer masks
// (common/buildlogger/internal/urlsanitizer), matched case-insensitively
// after '?' or '&'.
var urlParamKeys = []string{
	"private_token", "authenticity_token", "rss_token",
	"x-amz-signature", "x-amz-credential", "x-amz-security-token",
}

// Secrets lists what must never leave the host. GitLab gets this for free
// from the runner's masked job log; the executor reads raw output, so it must
// mask the same things itself.
type Secrets struct {
	// Values are exact values to mask: every masked variable's value and the
	// job token. Surrounding space is trimmed and empty values are ignored,
	// as the runner does; unlike GitLab, short values are masked too.
	Values []string
	// TokenPrefixes are features.token_mask_prefixes from the job response.
	// DefaultTokenPrefixes are always added, as the runner does. The token is
	// the prefix plus the run of [A-Za-z0-9_.=-] after it; like the runner,
	// the prefix stays visible ("glpat-[MASKED]") and a prefix with no run is
	// left alone.
	TokenPrefixes []string
	// OnlyPATPrefix is set when the job turned FF_MASK_ALL_DEFAULT_TOKENS
	// off: then, like the runner, only "glpat-" (and the job's own prefixes)
	// are masked by prefix. The zero value masks all of them.
	OnlyPATPrefix bool
}

// tokenByte is the runner's token alphabet (tokensanitizer): after a prefix,
// the run of these bytes is the token.
var tokenByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		t[c] = isWordByte(b) || b == '-' || b == '.' || b == '='
	}
	return t
}()

// urlValueByte reports whether c continues a sensitive URL parameter's
// value; the runner stops at '?', '&', white space and control characters.
func urlValueByte(c byte) bool { return c > ' ' && c != 0x7f && c != '?' && c != '&' }

// automaton is an Aho–Corasick matcher: it follows many patterns at once
// and its state depth is exactly the longest partial match, which is all the
// Redactor holds back.
type automaton struct {
	nodes []acNode
	root  [256]int32
	first [256]bool
	fold  bool
}

type acNode struct {
	edges  []acEdge
	fail   int32
	depth  int32
	valLen int32 // longest value pattern ending here (0: none)
	prefix bool  // a token prefix ends here
}

type acEdge struct {
	b  byte
	to int32
}

func (n *acNode) child(c byte) int32 {
	for _, e := range n.edges {
		if e.b == c {
			return e.to
		}
	}
	return -1
}

func newAutomaton(values, prefixes []string, fold bool) *automaton {
	a := &automaton{nodes: []acNode{{}}, fold: fold}
	insert := func(p string) int32 {
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := p[i]
			if fold {
				c = lower(c)
			}
			t := a.nodes[s].child(c)
			if t < 0 {
				t = int32(len(a.nodes))
				a.nodes = append(a.nodes, acNode{depth: a.nodes[s].depth + 1})
				a.nodes[s].edges = append(a.nodes[s].edges, acEdge{c, t})
			}
			s = t
		}
		return s
	}
	for _, v := range values {
		s := insert(v)
		a.nodes[s].valLen = max(a.nodes[s].valLen, int32(len(v)))
	}
	for _, p := range prefixes {
		a.nodes[insert(p)].prefix = true
	}
	for _, e := range a.nodes[0].edges {
		a.root[e.b] = e.to
		a.first[e.b] = true
	}
	// Breadth-first failure links; outputs inherit along them.
	queue := []int32{}
	for _, e := range a.nodes[0].edges {
		queue = append(queue, e.to)
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, e := range a.nodes[s].edges {
			f := a.nodes[s].fail
			for {
				if t := a.nodes[f].child(e.b); t >= 0 && t != e.to {
					a.nodes[e.to].fail = t
					break
				}
				if f == 0 {
					a.nodes[e.to].fail = 0
					break
				}
				f = a.nodes[f].fail
			}
			ft := a.nodes[e.to].fail
			a.nodes[e.to].valLen = max(a.nodes[e.to].valLen, a.nodes[ft].valLen)
			a.nodes[e.to].prefix = a.nodes[e.to].prefix || a.nodes[ft].prefix
			queue = append(queue, e.to)
		}
	}
	return a
}

func (a *automaton) next(s int32, c byte) int32 {
	if a.fold {
		c = lower(c)
	}
	for s != 0 {
		if t := a.nodes[s].child(c); t >= 0 {
			return t
		}
		s = a.nodes[s].fail
	}
	return a.root[c]
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// What release does with a held byte.
const (
	keep         uint8 = iota
	masked             // part of a secret: becomes (part of) one [MASKED]
	keepThenMask       // the '=' of a sensitive URL parameter: [MASKED] follows it
	dropped            // may be part of a secret whose rest was cut off (CloseCut)
)

// redactOutMax bounds the Redactor's output buffer before it is written.
const redactOutMax = 32 << 10

// Redactor masks secrets in a stream before it reaches w: every occurrence
// of a value, the token after each token prefix, and the values of sensitive
// URL parameters, as gitlab-runner's masker, tokensanitizer and urlsanitizer
// do. Where matches overlap, the union of the masked bytes becomes one
// [MASKED], so no part of any secret survives (the runner masks phrases one
// after another and can leave a fragment when two overlap).
//
// A secret split across writes is still found: the Redactor holds back only
// the longest partial match in progress (never more than the longest value
// or prefix); everything else goes straight through. Like the runner, it
// matches raw bytes only: no URL-encoded or base64 variants. A Redactor is
// not safe for concurrent use.
type Redactor struct {
	w      io.Writer
	cs     *automaton // values and token prefixes, exact
	ci     *automaton // "?key=" and "&key=", case-insensitive
	s1, s2 int32
	runTok bool       // inside a token after a prefix
	runURL bool       // inside a sensitive URL parameter value
	start  *[256]bool // bytes that can begin a match (either automaton)
	hold   []byte
	hmask  []uint8 // per held byte: keep, masked, or keepThenMask
	hoff   int
	inMask bool // the last byte released was masked
	out    []byte
	err    error
}

// NewRedactor returns a Redactor writing to w. Call Close to release the
// bytes held back at the end.
func NewRedactor(w io.Writer, s Secrets) *Redactor { return NewMasker(s).NewRedactor(w) }

// Masker is Secrets compiled for matching. It is immutable and safe for concurrent use:
// compile once, then redact many strings or streams (the audit log masks every field of a
// record with one).
type Masker struct {
	cs    *automaton // values and token prefixes, exact
	ci    *automaton // "?key=" and "&key=", case-insensitive
	start [256]bool  // bytes that can begin a match (either automaton)
}

// urlKeyAutomaton is the same for every job: built once.
var urlKeyAutomaton = sync.OnceValue(func() *automaton {
	var keys []string
	for _, k := range urlParamKeys {
		keys = append(keys, "?"+k+"=", "&"+k+"=")
	}
	return newAutomaton(nil, keys, true)
})

// NewMasker compiles s.
func NewMasker(s Secrets) *Masker {
	var values []string
	for _, v := range s.Values {
		if v = strings.TrimSpace(v); v != "" {
			values = append(values, v)
		}
	}
	var prefixes []string
	for _, p := range append(DefaultTokenPrefixes(!s.OnlyPATPrefix), s.TokenPrefixes...) {
		if p = strings.TrimSpace(p); p != "" {
			prefixes = append(prefixes, p)
		}
	}
	slices.Sort(values)
	slices.Sort(prefixes)
	m := &Masker{
		cs: newAutomaton(slices.Compact(values), slices.Compact(prefixes), false),
		ci: urlKeyAutomaton(),
	}
	for c := range m.start {
		m.start[c] = m.cs.first[c] || m.ci.first[lower(byte(c))]
	}
	return m
}

// NewRedactor returns a Redactor writing to w with m's secrets.
func (m *Masker) NewRedactor(w io.Writer) *Redactor {
	return &Redactor{w: w, cs: m.cs, ci: m.ci, start: &m.start}
}

// Redact masks m's secrets in s.
func (m *Masker) Redact(s string) string {
	if s == "" {
		return s
	}
	var b strings.Builder
	r := m.NewRedactor(&b)
	_, _ = r.Write([]byte(s))
	_ = r.Close()
	return b.String()
}

func (r *Redactor) idle() bool {
	return r.s1 == 0 && r.s2 == 0 && !r.runTok && !r.runURL && r.hoff == len(r.hold)
}

// Write masks p. Bytes that cannot be part of a secret are written before
// Write returns; a partial match is held until it completes or fails.
func (r *Redactor) Write(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	direct := 0 // p[direct:i] may be written as is; -1 while bytes are being held
	if !r.idle() {
		direct = -1
	}
	for i := 0; i < len(p); {
		if direct >= 0 {
			// Idle: jump to the next byte that could start a match.
			j := i
			for j < len(p) && !r.start[p[j]] {
				j++
			}
			i = j
			if i == len(p) {
				break
			}
			r.emitDirect(p[direct:i])
			direct = -1
		}
		r.push(p[i])
		i++
		if r.idle() {
			direct = i
		}
		if len(r.out) >= redactOutMax {
			r.flushOut()
		}
		if r.err != nil {
			return i, r.err
		}
	}
	if direct >= 0 {
		r.emitDirect(p[direct:])
	}
	r.flushOut()
	if r.err != nil {
		return 0, r.err
	}
	return len(p), nil
}

func (r *Redactor) emitDirect(b []byte) {
	if len(b) == 0 {
		return
	}
	r.inMask = false
	if len(r.out)+len(b) <= redactOutMax {
		r.out = append(r.out, b...)
		return
	}
	r.flushOut()
	if r.err == nil {
		_, r.err = r.w.Write(b)
	}
}

func (r *Redactor) flushOut() {
	if len(r.out) > 0 && r.err == nil {
		_, r.err = r.w.Write(r.out)
	}
	r.out = r.out[:0]
}

// push runs one byte through both automata and releases what can no longer
// be part of a match.
func (r *Redactor) push(c byte) {
	r.hold = append(r.hold, c)
	r.hmask = append(r.hmask, keep)
	idx := len(r.hold) - 1
	if r.runTok {
		if tokenByte[c] {
			r.hmask[idx] = masked
		} else {
			r.runTok = false
		}
	}
	if r.runURL {
		if urlValueByte(c) {
			r.hmask[idx] = masked
		} else {
			r.runURL = false
		}
	}
	r.s1 = r.cs.next(r.s1, c)
	n1 := &r.cs.nodes[r.s1]
	if n1.valLen > 0 {
		// The automaton's depth before this byte was at least valLen-1, so
		// the whole match is still held.
		for k := idx - int(n1.valLen) + 1; k <= idx; k++ {
			r.hmask[k] = masked
		}
	}
	if n1.prefix {
		r.runTok = true
	}
	r.s2 = r.ci.next(r.s2, c)
	n2 := &r.ci.nodes[r.s2]
	if n2.prefix {
		// The runner writes [MASKED] after the '=' even when the value is
		// empty ("?x-amz-credential=&…" → "…=[MASKED]&…").
		r.runURL = true
		if r.hmask[idx] == keep {
			r.hmask[idx] = keepThenMask
		}
	}
	r.release(len(r.hold) - int(max(n1.depth, n2.depth)))
}

// release moves held bytes before index upto to the output.
func (r *Redactor) release(upto int) {
	for k := r.hoff; k < upto; k++ {
		switch r.hmask[k] {
		case masked:
			if !r.inMask {
				r.out = append(r.out, Mask...)
				r.inMask = true
			}
		case keepThenMask:
			r.out = append(r.out, r.hold[k])
			r.out = append(r.out, Mask...)
			r.inMask = true
		case dropped:
		default:
			r.out = append(r.out, r.hold[k])
			r.inMask = false
		}
	}
	if upto > r.hoff {
		r.hoff = upto
	}
	switch {
	case r.hoff == len(r.hold):
		r.hold, r.hmask, r.hoff = r.hold[:0], r.hmask[:0], 0
	case r.hoff > 1024 && r.hoff > len(r.hold)/2:
		n := copy(r.hold, r.hold[r.hoff:])
		copy(r.hmask, r.hmask[r.hoff:])
		r.hold, r.hmask, r.hoff = r.hold[:n], r.hmask[:n], 0
	}
}

// Close releases the held-back bytes (a partial match at the end is not a
// secret) and returns the first write error. It does not close w.
func (r *Redactor) Close() error {
	r.release(len(r.hold))
	r.s1, r.s2, r.runTok, r.runURL = 0, 0, false, false
	r.flushOut()
	return r.err
}

// CloseCut is Close for a stream that was cut short: the held-back bytes
// may be the first part of a secret whose rest was cut off, so they are
// dropped instead of released. A token or URL parameter value in progress
// is masked as at Close.
func (r *Redactor) CloseCut() error {
	for k := r.hoff; k < len(r.hold); k++ {
		if r.hmask[k] == keep {
			r.hmask[k] = dropped
		}
	}
	return r.Close()
}

// Redact masks secrets in s; a convenience for short strings.
func Redact(s string, secrets Secrets) string { return NewMasker(secrets).Redact(s) }
