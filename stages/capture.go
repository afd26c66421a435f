package stages

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/chatops-executor/chatops-executor/atomicfile"
	"github.com/chatops-executor/chatops-executor/job"

	"github.com/chatops-executor/chatops-executor/replies"
)

// What the reply needs from the job's output is kept in the job's state, because cleanup
// is another process: the chat_reply section's content (from every stage that runs the
// job's commands, since GitLab finds the section anywhere in the log), the user script's
// whole output for the fallback, and the running count of section markers. Both streams go
// to spools (see spool.go), so disk use is bounded however much the job prints, and memory
// is the Capture's 4 KiB marker hold-back plus the last-line buffer.
//
// The files hold raw output, secrets included, for as long as the job runs: the state
// directory is private (0700) and removed by cleanup. Redaction happens when the reply is
// built, before anything leaves the host.

const (
	sectionSpool = "reply-section"
	outputSpool  = "reply-output"
	countsFile   = "reply-counts.json"
)

// capturesReply reports whether a stage runs the job's own commands, whose output a
// reply may come from.
func capturesReply(stage string) bool { return IsUserScript(stage) || stage == "after_script" }

// isMainScript reports whether a stage's output is the fallback reply: the user script.
func isMainScript(stage string) bool { return stage == "build_script" || stage == "step_script" }

// CaptureNeeds says what of a stage's output something will read. Capturing costs CPU on
// every byte the job prints, so a stage whose output nothing reads is not captured at all:
// the job then writes straight to the runner.
type CaptureNeeds struct {
	Reply    bool // cleanup builds a reply from the output: spools and marker counts
	Progress bool // progress edits show the last line
}

// captureNeeds decides what stage's output is captured for. The reply and progress edits
// need a way to chat — a CHAT_CHANNEL that is a Slack or Mattermost channel id and that chat configured, as
// openChat requires — and the reply is not wanted with slack.reply = "never". It errs on
// the side of capturing: a configured token file is not read here, since one unreadable
// now may be readable at cleanup. (`try` gives the executor a token and a channel, so its
// jobs are captured like any other.)
func (s *Stages) captureNeeds(j *job.Response, stage string) CaptureNeeds {
	if !s.chatConfigured(j.Chat().Channel) {
		return CaptureNeeds{}
	}
	return CaptureNeeds{
		Reply:    capturesReply(stage) && s.replyCfg(j).Reply != "never",
		Progress: IsUserScript(stage) && s.replyCfg(j).Ack && s.replyCfg(j).ProgressInterval.D() > 0,
	}
}

// ReplyCapture is the Capturer the run stage uses: it captures what the reply needs into
// the job's state, and remembers the last line of output for progress messages.
type ReplyCapture struct {
	st    State
	needs CaptureNeeds
	last  lastLine
	// root and maxState are the state directory and its bound (see budget.go); 0: none.
	root     string
	maxState int64
}

// NewReplyCapture returns the Capturer for the job whose state is st, capturing what
// needs asks for.
func NewReplyCapture(st State, needs CaptureNeeds) *ReplyCapture {
	return &ReplyCapture{st: st, needs: needs}
}

// Capture implements Capturer.
func (rc *ReplyCapture) Capture(stage string) (Sink, error) {
	reply := rc.needs.Reply && capturesReply(stage)
	if !reply && !rc.needs.Progress {
		return nil, nil
	}
	sc := &stageCapture{rc: rc, progress: rc.needs.Progress}
	if !reply {
		return sc, nil
	}
	prior, err := readCounts(rc.st)
	if err != nil {
		return nil, err
	}
	if sc.section, err = openSpool(filepath.Join(rc.st.Dir, sectionSpool), spoolHead, spoolTail); err != nil {
		return nil, err
	}
	var all io.Writer = io.Discard
	if isMainScript(stage) {
		if sc.output, err = openSpool(filepath.Join(rc.st.Dir, outputSpool), spoolHead, spoolTail); err != nil {
			sc.section.Close()
			return nil, err
		}
		all = sc.output
	}
	sc.capture = replies.NewCapture(sc.section, all, prior)
	var w io.WriteCloser = sc
	if rc.maxState > 0 {
		w = &budgetSink{w: sc, root: rc.root, max: rc.maxState, usage: diskUsage}
	}
	return &lossySink{w: w, lost: sc.Lost}, nil
}

// Bound makes the capture stay within the host-wide bound max on everything under the
// state directory root (executor.max_state_size).
func (rc *ReplyCapture) Bound(root string, max int64) { rc.root, rc.maxState = root, max }

// LastLine returns the last complete, non-blank line of output seen so far, raw.
func (rc *ReplyCapture) LastLine() string { return rc.last.get() }

// stageCapture is one stage's Sink: the reply capture when the reply needs this stage,
// the last line when progress edits need it.
type stageCapture struct {
	rc              *ReplyCapture
	progress        bool
	capture         *replies.Capture // nil when the reply does not need this stage
	section, output *spool
}

func (sc *stageCapture) Write(p []byte) (int, error) {
	if sc.progress {
		sc.rc.last.Write(p)
	}
	if sc.capture == nil {
		return len(p), nil
	}
	n, err := sc.capture.Write(p)
	if err == nil {
		err = sc.capture.Err() // a spool that failed: the lossy sink counts what is lost
	}
	return n, err
}

// Lost implements Sink.
func (sc *stageCapture) Lost(n int64) {
	if sc.progress {
		sc.rc.last.lose()
	}
	if sc.capture != nil {
		sc.capture.Lost(n)
	}
}

func (sc *stageCapture) Close() error {
	if sc.capture == nil {
		return nil
	}
	err := sc.capture.Close()
	if cerr := sc.section.Close(); err == nil {
		err = cerr
	}
	if sc.output != nil {
		if cerr := sc.output.Close(); err == nil {
			err = cerr
		}
	}
	data, _ := json.Marshal(sc.capture.Counts())
	if werr := atomicfile.WriteFile(filepath.Join(sc.rc.st.Dir, countsFile), data, 0o600); err == nil {
		err = werr
	}
	return err
}

func readCounts(st State) (replies.Counts, error) {
	var c replies.Counts
	data, err := os.ReadFile(filepath.Join(st.Dir, countsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read reply markers: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("read reply markers: corrupt %s: %w", countsFile, err)
	}
	return c, nil
}
