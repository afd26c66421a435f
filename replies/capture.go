package replies

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// MarkerKind says whether a chat_reply marker opened or closed the section.
// Counts remembers the kind of the first one because GitLab accepts the
// section only when its two markers come as start-then-end.
type MarkerKind uint8

// Marker kinds; NoMarker is the zero value.
const (
	NoMarker MarkerKind = iota
	StartMarker
	EndMarker
)

// String returns "start", "end" or "" so persisted state stays readable.
func (k MarkerKind) String() string {
	switch k {
	case StartMarker:
		return "start"
	case EndMarker:
		return "end"
	default:
		return ""
	}
}

// MarshalText lets Counts be persisted as JSON between the executor's
// per-stage processes.
func (k MarkerKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (k *MarkerKind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "start":
		*k = StartMarker
	case "end":
		*k = EndMarker
	case "":
		*k = NoMarker
	default:
		return fmt.Errorf("unknown marker kind %q", b)
	}
	return nil
}

// Counts is what the scanner learned about chat_reply markers. GitLab decides
// over the whole job log, but each stage runs in its own process, so the
// caller persists Counts after each stage and passes it to the next stage's
// Capture; the decision is made once, at cleanup, with Decide.
type Counts struct {
	Starts int        `json:"starts"`
	Ends   int        `json:"ends"`
	First  MarkerKind `json:"first,omitempty"`
}

// Add returns the counts of a followed by b, in that order.
func (a Counts) Add(b Counts) Counts {
	first := a.First
	if first == NoMarker {
		first = b.First
	}
	return Counts{Starts: a.Starts + b.Starts, Ends: a.Ends + b.Ends, First: first}
}

// Open reports whether the section has started and not ended, i.e. output
// seen now belongs to it. Once a second marker of either kind appears the
// section can no longer count, so nothing is open.
func (a Counts) Open() bool { return a.Starts == 1 && a.Ends == 0 && a.First == StartMarker }

// Sum adds per-stage counts in stage order.
func Sum(stages ...Counts) Counts {
	var total Counts
	for _, c := range stages {
		total = total.Add(c)
	}
	return total
}

// Source is where the reply text comes from.
type Source uint8

// Reply sources.
const (
	// FromFallback means the user script's output (step_script/build_script).
	FromFallback Source = iota
	// FromChatReply means the captured chat_reply section.
	FromChatReply
)

// String names the source as GitLab names the section.
func (s Source) String() string {
	if s == FromChatReply {
		return ChatReplySection
	}
	return "step_script"
}

// Decide applies GitLab's rule (Gitlab::Ci::Trace::SectionParser#sanitize_markers):
// a section counts only when the whole job log holds exactly two markers of
// that name, a start followed by an end. total must cover every stage.
func Decide(total Counts) Source {
	if total.Starts == 1 && total.Ends == 1 && total.First == StartMarker {
		return FromChatReply
	}
	return FromFallback
}

// Capture watches one stage's raw output for the job's own chat_reply
// section. The caller tees the stream into it (io.MultiWriter(runner,
// capture) is safe: Write never fails), so it must be cheap: output is
// searched with bytes.Index for "section_" and only a possible marker is
// held back, at most MaxMarkerLen bytes, whatever the line length.
//
// section receives the bytes between the start and the end marker (raw; the
// markers themselves excluded), all receives every byte of the stage as
// written. Either may be nil. A sink error is remembered (see Err) and that
// sink is not written again; the job's stream is never disturbed.
type Capture struct {
	mu      sync.Mutex
	section io.Writer
	all     io.Writer
	prior   Counts
	stage   Counts
	scan    markerScanner
	err     error
	closed  bool
}

// NewCapture starts capturing a stage. prior is the sum of the earlier
// stages' counts, so a section opened in one stage keeps capturing in the
// next.
func NewCapture(section, all io.Writer, prior Counts) *Capture {
	c := &Capture{section: section, all: all, prior: prior}
	c.scan.sink = (*captureSink)(c)
	return c
}

// Write records p. It always reports len(p), nil so that a tee through
// io.MultiWriter never stops the runner's copy of the stream.
func (c *Capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return len(p), nil
	}
	if c.all != nil && len(p) > 0 {
		if _, err := c.all.Write(p); err != nil {
			c.fail(fmt.Errorf("capture output: %w", err))
			c.all = nil
		}
	}
	c.scan.write(p)
	return len(p), nil
}

// GapRecorder is a sink that can remember where output is missing from it, so that its
// reader can say so and drop the partial lines on either side (half a line may hold half
// a secret, which redaction cannot recognise).
type GapRecorder interface {
	Gap(n int64)
}

// Lost records that n bytes of the stage's output, at this point of the stream, never
// reached the capture (the executor's capture fell behind the job; the runner got them).
// A marker cannot span the gap, so a candidate held back is released as content, and the
// sinks that implement GapRecorder are told: all always, section when the section is
// open. Markers in the lost bytes are not counted.
func (c *Capture) Lost(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || n <= 0 {
		return
	}
	c.scan.flush()
	if g, ok := c.all.(GapRecorder); ok {
		g.Gap(n)
	}
	if g, ok := c.section.(GapRecorder); ok && c.prior.Add(c.stage).Open() {
		g.Gap(n)
	}
}

// Close ends the stage: a marker still incomplete cannot complete in another
// process (the runner writes its own lines between stages), so held-back
// bytes are released as content. It returns the first sink error.
func (c *Capture) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.scan.flush()
		c.closed = true
	}
	return c.err
}

// Counts returns the prior counts plus this stage's so far: what the caller
// persists for the next stage and finally passes to Decide.
func (c *Capture) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prior.Add(c.stage)
}

// StageCounts returns this stage's counts alone.
func (c *Capture) StageCounts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stage
}

// Err returns the first sink error, if any.
func (c *Capture) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Capture) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// captureSink keeps the markerSink methods off Capture's exported API.
type captureSink Capture

func (s *captureSink) content(p []byte) {
	c := (*Capture)(s)
	if c.section == nil || len(p) == 0 || !c.prior.Add(c.stage).Open() {
		return
	}
	if _, err := c.section.Write(p); err != nil {
		c.fail(fmt.Errorf("capture %s section: %w", ChatReplySection, err))
		c.section = nil
	}
}

var chatReplyName = []byte(ChatReplySection)

func (s *captureSink) marker(start bool, name, raw []byte) {
	c := (*Capture)(s)
	if !bytes.Equal(name, chatReplyName) {
		// Other sections (the runner's script steps, the job's own) are
		// content of the chat_reply section; the cleaner drops their markers.
		s.content(raw)
		return
	}
	kind := EndMarker
	if start {
		kind = StartMarker
	}
	if c.stage.First == NoMarker {
		c.stage.First = kind
	}
	if start {
		c.stage.Starts++
	} else {
		c.stage.Ends++
	}
}

// String renders counts for logs.
func (a Counts) String() string {
	b, _ := json.Marshal(a)
	return string(b)
}
