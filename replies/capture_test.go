package replies

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func start(name string) string { return "section_start:1700000000:" + name + "\r\x1b[0K" }
func end(name string) string   { return "section_end:1700000001:" + name + "\r\x1b[0K" }

// captureOnce runs one stage and returns the section sink and the counts.
func captureOnce(t *testing.T, prior Counts, in string, write func(io.Writer, []byte)) (string, Counts) {
	t.Helper()
	var sec, all bytes.Buffer
	c := NewCapture(&sec, &all, prior)
	write(c, []byte(in))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if all.String() != in {
		t.Fatalf("all sink = %q, want the input %q", all.String(), in)
	}
	return sec.String(), c.Counts()
}

func TestCaptureMarkers(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		section string
		counts  Counts
	}{
		{"none", "hello\nworld\n", "", Counts{}},
		{"documented", "$ x\n" + start("chat_reply") + "\nout\n" + end("chat_reply") + "\n", "\nout\n", Counts{1, 1, StartMarker}},
		{"mid line", "a " + start("chat_reply") + "b" + end("chat_reply") + " c", "b", Counts{1, 1, StartMarker}},
		{"options", "section_start:1:chat_reply[collapsed=true,a=b, c=d]\r\x1b[0Kx" + end("chat_reply"), "x", Counts{1, 1, StartMarker}},
		{"options on end", start("chat_reply") + "x" + "section_end:2:chat_reply[a=b]\r\x1b[0K", "x", Counts{1, 1, StartMarker}},
		{"non-digit time", "section_start:abc:chat_reply\r\x1b[0Kx" + end("chat_reply"), "", Counts{0, 1, EndMarker}},
		{"missing tail", "section_start:1:chat_reply\nx\n" + end("chat_reply"), "", Counts{0, 1, EndMarker}},
		{"short tail", "section_start:1:chat_reply\r\x1b[Kx", "", Counts{}},
		{"empty options", "section_start:1:chat_reply[]\r\x1b[0Kx", "", Counts{}},
		{"option without value", "section_start:1:chat_reply[collapsed]\r\x1b[0Kx", "", Counts{}},
		{"two spaces after comma", "section_start:1:chat_reply[a=b,  c=d]\r\x1b[0Kx", "", Counts{}},
		{"name with space", "section_start:1:chat reply\r\x1b[0Kx", "", Counts{}},
		{"longer name", start("chat_reply2") + "x" + end("chat_reply2"), "", Counts{}},
		{"uppercase", "SECTION_START:1:chat_reply\r\x1b[0Kx", "", Counts{}},
		{"two starts", start("chat_reply") + "a" + start("chat_reply") + "b" + end("chat_reply"), "a", Counts{2, 1, StartMarker}},
		{"end first", end("chat_reply") + "a" + start("chat_reply") + "b", "", Counts{1, 1, EndMarker}},
		{"start only", start("chat_reply") + "tail without end", "tail without end", Counts{1, 0, StartMarker}},
		{"other sections inside", start("chat_reply") + start("x") + "in" + end("x") + end("chat_reply"), start("x") + "in" + end("x"), Counts{1, 1, StartMarker}},
		{"marker inside a failed one", "section_start:1:chat_" + start("chat_reply") + "x" + end("chat_reply"), "x", Counts{1, 1, StartMarker}},
		{"literal twice", "section_section_start:1:chat_reply\r\x1b[0Kx" + end("chat_reply"), "x", Counts{1, 1, StartMarker}},
		{"partial literal at end", "text section_sta", "", Counts{}},
		{"partial marker at end", start("chat_reply") + "x section_end:1:chat_re", "x section_end:1:chat_re", Counts{1, 0, StartMarker}},
		{"crlf then marker", "line\r\n" + start("chat_reply") + "\r\nx\r\n" + end("chat_reply"), "\r\nx\r\n", Counts{1, 1, StartMarker}},
		{"too long", "section_start:" + strings.Repeat("1", MaxMarkerLen) + ":chat_reply\r\x1b[0Kx", "", Counts{}},
		{"long but within bound", "section_start:" + strings.Repeat("1", MaxMarkerLen-40) + ":chat_reply\r\x1b[0Kx", "x", Counts{1, 0, StartMarker}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, w := range []struct {
				name string
				fn   func(io.Writer, []byte)
			}{{"whole", writeAll}, {"bytewise", writeBytewise}, {"random", writeRandom(7, 13)}} {
				sec, counts := captureOnce(t, Counts{}, tt.in, w.fn)
				if sec != tt.section || counts != tt.counts {
					t.Errorf("%s: got section %q counts %v, want %q %v", w.name, sec, counts, tt.section, tt.counts)
				}
			}
		})
	}
}

// TestCaptureAcrossStages: the section may open in one stage and close in a
// later one, and GitLab's rule applies to the whole job.
func TestCaptureAcrossStages(t *testing.T) {
	var sec bytes.Buffer
	stages := []string{
		"prepare output\n",
		"$ build\n" + start("chat_reply") + "\nfrom build\n",
		"from after_script\n" + end("chat_reply") + "\nlater\n",
		"cleanup output\n",
	}
	var total Counts
	var per []Counts
	for _, s := range stages {
		c := NewCapture(&sec, nil, total)
		writeBytewise(c, []byte(s))
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		per = append(per, c.StageCounts())
		total = c.Counts()
	}
	if want := "\nfrom build\nfrom after_script\n"; sec.String() != want {
		t.Errorf("section = %q, want %q", sec.String(), want)
	}
	if Sum(per...) != total {
		t.Errorf("Sum(%v) = %v, want %v", per, Sum(per...), total)
	}
	if Decide(total) != FromChatReply {
		t.Errorf("Decide(%v) = %v", total, Decide(total))
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		stages []Counts
		want   Source
	}{
		{nil, FromFallback},
		{[]Counts{{1, 1, StartMarker}}, FromChatReply},
		{[]Counts{{1, 0, StartMarker}, {}, {0, 1, EndMarker}}, FromChatReply},
		{[]Counts{{0, 1, EndMarker}, {1, 0, StartMarker}}, FromFallback},
		{[]Counts{{1, 1, StartMarker}, {1, 0, StartMarker}}, FromFallback},
		{[]Counts{{1, 0, StartMarker}}, FromFallback},
		{[]Counts{{2, 2, StartMarker}}, FromFallback},
	}
	for _, tt := range tests {
		if got := Decide(Sum(tt.stages...)); got != tt.want {
			t.Errorf("Decide(Sum(%v)) = %v, want %v", tt.stages, got, tt.want)
		}
	}
}

func TestCountsJSON(t *testing.T) {
	for _, c := range []Counts{{}, {1, 0, StartMarker}, {3, 2, EndMarker}} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back Counts
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back != c {
			t.Errorf("%s round-trips to %v", b, back)
		}
	}
	var k MarkerKind
	if err := k.UnmarshalText([]byte("middle")); err == nil {
		t.Error("UnmarshalText accepted an unknown kind")
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("disk full")
}

// A broken sink must not break the job's stream: Write keeps succeeding,
// the error comes back from Close/Err, and the sink is not retried.
func TestCaptureSinkError(t *testing.T) {
	fw := &failWriter{}
	c := NewCapture(fw, fw, Counts{})
	for i := 0; i < 3; i++ {
		if n, err := c.Write([]byte(start("chat_reply") + "x\n")); n == 0 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if err := c.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close = %v, want the sink error", err)
	}
	if fw.n != 2 {
		t.Errorf("sinks written %d times after failing, want 1 each", fw.n)
	}
	if n, err := c.Write([]byte("after close")); n != 11 || err != nil {
		t.Errorf("Write after Close = %d, %v", n, err)
	}
}

// repeatReader yields n bytes of a pattern without allocating.
type repeatReader struct {
	pat []byte
	n   int64
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = r.pat[r.off]
		r.off = (r.off + 1) % len(r.pat)
	}
	r.n -= int64(len(p))
	return len(p), nil
}

// allocatedDuring reports the bytes allocated while fn runs: a high-water
// bound on what fn can have kept.
func allocatedDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// hugeLineSize is the length of the line without a newline the memory
// tests push through: 100 MB, or 16 MB under the race detector.
func hugeLineSize() int64 {
	if raceEnabled {
		return 16 << 20
	}
	return 100 << 20
}

// A 100 MB line without a newline — one that even looks like a marker
// ("section_section_…") — passes through Capture in constant memory.
func TestCaptureHugeLineMemory(t *testing.T) {
	for _, pat := range []string{"x", "section_", "section_start:1:chat_reply"} {
		var sec countWriter
		alloc := allocatedDuring(func() {
			c := NewCapture(&sec, io.Discard, Counts{1, 0, StartMarker})
			buf := make([]byte, 64<<10)
			if _, err := io.CopyBuffer(c, &repeatReader{pat: []byte(pat), n: hugeLineSize()}, buf); err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
		})
		if sec.n != hugeLineSize() {
			t.Errorf("%q: section got %d bytes, want %d", pat, sec.n, hugeLineSize())
		}
		if alloc > 256<<10 {
			t.Errorf("%q: allocated %d bytes for a %d-byte line", pat, alloc, hugeLineSize())
		}
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// Write's steady state allocates nothing.
func TestCaptureAllocs(t *testing.T) {
	c := NewCapture(io.Discard, io.Discard, Counts{})
	chunk := []byte(strings.Repeat("some output line with section_ words\n", 100))
	if n := testing.AllocsPerRun(100, func() { _, _ = c.Write(chunk) }); n != 0 {
		t.Errorf("Write allocates %v times per call", n)
	}
}

// gapSink is a sink that records where gaps were reported.
type gapSink struct {
	bytes.Buffer
	gaps []int
}

func (g *gapSink) Gap(n int64) { g.gaps = append(g.gaps, g.Len()) }

// Output the capture missed breaks a marker in two: neither half may count.
func TestCaptureLostBreaksMarker(t *testing.T) {
	section, all := &gapSink{}, &gapSink{}
	c := NewCapture(section, all, Counts{})
	c.Write([]byte(start(ChatReplySection) + "\nin section\n" + "section_end:17"))
	c.Lost(100)
	c.Write([]byte("00000:chat_reply\r\x1b[0K\nafter\n"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := c.StageCounts(); got.Starts != 1 || got.Ends != 0 {
		t.Errorf("counts %+v: a marker split by a gap was counted", got)
	}
	if len(all.gaps) != 1 || len(section.gaps) != 1 {
		t.Errorf("gaps: all %v, section %v; want one each (the section is open)", all.gaps, section.gaps)
	}
	if !strings.HasPrefix(section.String(), "\nin section\nsection_end:17") {
		t.Errorf("section %q: the held-back half marker must be released as content before the gap", section.String())
	}
}
