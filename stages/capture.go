package stages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/chatops-executor/chatops-executor/atomicfile"

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

// ReplyCapture is the Capturer the run stage uses: it captures what the reply needs into
// the job's state, and remembers the last line of output for progress messages.
type ReplyCapture struct {
	st   State
	last lastLine
	// root and maxState are the state directory and its bound (see budget.go); 0: none.
	root     string
	maxState int64
}

// NewReplyCapture returns the Capturer for the job whose state is st.
func NewReplyCapture(st State) *ReplyCapture { return &ReplyCapture{st: st} }

// Capture implements Capturer.
func (rc *ReplyCapture) Capture(stage string) (io.WriteCloser, error) {
	if !capturesReply(stage) {
		return nil, nil
	}
	prior, err := readCounts(rc.st)
	if err != nil {
		return nil, err
	}
	sc := &stageCapture{rc: rc}
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
	return &lossySink{w: w}, nil
}

// Bound makes the capture stay within the host-wide bound max on everything under the
// state directory root (executor.max_state_size).
func (rc *ReplyCapture) Bound(root string, max int64) { rc.root, rc.maxState = root, max }

// LastLine returns the last complete, non-blank line of output seen so far, raw.
func (rc *ReplyCapture) LastLine() string { return rc.last.get() }

type stageCapture struct {
	rc              *ReplyCapture
	capture         *replies.Capture
	section, output *spool
}

func (sc *stageCapture) Write(p []byte) (int, error) {
	sc.rc.last.Write(p)
	n, err := sc.capture.Write(p)
	if err == nil {
		err = sc.capture.Err() // a spool that failed: the lossy sink counts what is lost
	}
	return n, err
}

func (sc *stageCapture) Close() error {
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

// lastLineMax bounds the remembered line; a progress message shows a few hundred
// characters of it at most.
const lastLineMax = 1024

// lastLine remembers the last complete non-blank line written to it, in bounded memory.
type lastLine struct {
	mu   sync.Mutex
	cur  []byte // the line being written (its first lastLineMax bytes)
	done []byte // the last complete non-blank line
}

func (l *lastLine) Write(p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := lastLineMax - len(l.cur); room > 0 {
			l.cur = append(l.cur, chunk[:min(room, len(chunk))]...)
		}
		if i < 0 {
			return
		}
		if len(bytes.TrimSpace(l.cur)) > 0 {
			l.done = append(l.done[:0], l.cur...)
		}
		l.cur = l.cur[:0]
		p = p[i+1:]
	}
}

func (l *lastLine) get() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.done)
}
