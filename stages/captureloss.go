package stages

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// A full disk (or any write error) in the capture must cost the reply, never the job: the
// script's exit code, its log and its status stay the script's. What the capture lost is
// said three times: in the job log at the end of the stage, in a note in the job's state
// that the reply shows, and in the runner log at cleanup.

// errCapture marks an error of the reply capture, which the stage reports and otherwise
// ignores.
var errCapture = errors.New("reply capture")

// lossNote is the state file the capture notes its losses in. It is created full size with
// the state, and later written in place, so that noting a loss needs no new disk space —
// the disk being full is the likeliest reason for the loss.
const (
	lossNote     = "capture-loss"
	lossNoteSize = 2048
)

// createLossNote makes the empty, preallocated note.
func createLossNote(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, lossNote), bytes.Repeat([]byte{' '}, lossNoteSize), 0o600); err != nil {
		return fmt.Errorf("create capture note: %w", err)
	}
	return nil
}

// readLossNote returns what the capture noted, "" when nothing was lost.
func readLossNote(st State) string {
	data, err := os.ReadFile(filepath.Join(st.Dir, lossNote))
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(data))
}

// captureLost reports a capture loss in the job log and the note.
func (s *Stages) captureLost(st State, stage string, err error) {
	fmt.Fprintf(s.Stderr, "%s: warning: the chat reply will be incomplete: %v\n", DriverName, err)
	line := fmt.Sprintf("%s: %v", stage, err)
	f, ferr := os.OpenFile(filepath.Join(st.Dir, lossNote), os.O_RDWR, 0)
	if ferr != nil {
		return
	}
	defer f.Close()
	old := make([]byte, lossNoteSize)
	n, _ := io.ReadFull(f, old)
	prev := bytes.TrimSpace(old[:n])
	note := line
	if len(prev) > 0 {
		note = string(prev) + "\n" + line
	}
	out := bytes.Repeat([]byte{' '}, lossNoteSize)
	copy(out, note) // a note longer than the file keeps its start
	_, _ = f.WriteAt(out, 0)
}

// freeCapture removes the job's captured output and the reply built from it, to make room
// on a full disk.
func freeCapture(st State) {
	for _, name := range []string{sectionSpool, outputSpool} {
		for _, ext := range []string{".head", ".ring", ".json"} {
			os.Remove(filepath.Join(st.Dir, name+ext))
		}
	}
	os.Remove(filepath.Join(st.Dir, "reply.txt"))
}

// lossySink passes writes to the capture until the first error, then drops and counts the
// rest, so the copy loop never sees a capture error. Close reports the loss as errCapture.
type lossySink struct {
	w io.WriteCloser
	// lost tells the capture underneath that the copy skipped output it fell behind on.
	lost    func(n int64)
	err     error
	at      int64 // bytes captured before the error
	dropped int64
}

func (l *lossySink) Write(p []byte) (int, error) {
	if l.err != nil {
		l.dropped += int64(len(p))
		return len(p), nil
	}
	n, err := l.w.Write(p)
	l.at += int64(n)
	if err != nil {
		l.err = err
		l.dropped += int64(len(p) - n)
	}
	return len(p), nil
}

// Lost implements Sink: bytes the copy could not hand over in time. Once the capture has
// failed, they are simply more of what it did not get.
func (l *lossySink) Lost(n int64) {
	if l.err != nil {
		l.dropped += n
		return
	}
	l.lost(n)
}

func (l *lossySink) Close() error {
	cerr := l.w.Close()
	switch {
	case l.err != nil:
		return fmt.Errorf("%w failed after %d bytes, %d bytes of output were not captured: %w", errCapture, l.at, l.dropped, l.err)
	case cerr != nil:
		return fmt.Errorf("%w failed: %w", errCapture, cerr)
	}
	return nil
}
