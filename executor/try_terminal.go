package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// useColour says whether try may write colour to w: a terminal, and neither NO_COLOR
// (https://no-color.org: any non-empty value) nor TERM=dumb says otherwise.
func useColour(w io.Writer, getenv func(string) string) bool {
	return isTerminal(w) && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

// useProgressLine says whether try may redraw a progress line on w: a terminal that is
// not TERM=dumb, which cannot move the cursor.
func useProgressLine(w io.Writer, getenv func(string) string) bool {
	return isTerminal(w) && getenv("TERM") != "dumb"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// traceWriter shows the job log on a terminal, one whole line at a time: the runner's
// section markers dropped, and without colour, ANSI escapes and \r redraws too (only the
// final text of a redrawn line stays). A line longer than maxTraceLine is shown in pieces,
// which bounds its memory.
type traceWriter struct {
	mu     sync.Mutex
	w      io.Writer
	colour bool
	buf    []byte
	before func() // called with mu held before a line is written (clears the progress line)
	after  func()
}

const maxTraceLine = 64 << 10

var (
	deniedLine    = regexp.MustCompile(`(?m)` + name + `: job denied: (.*)$`)
	sectionMarker = regexp.MustCompile(`section_(?:start|end):[0-9]+:[a-zA-Z0-9_.-]+(?:\[[^\]]*\])?\r?\x1b\[0K`)
	ansiEscape    = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)`)
)

func newTraceWriter(w io.Writer, colour bool) *traceWriter {
	return &traceWriter{w: w, colour: colour}
}

func (t *traceWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			if len(t.buf) >= maxTraceLine {
				t.line(t.buf)
				t.buf = t.buf[:0]
			}
			return len(p), nil
		}
		t.line(t.buf[:i])
		t.buf = append(t.buf[:0], t.buf[i+1:]...)
	}
}

// Flush writes what is left of an unfinished last line.
func (t *traceWriter) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > 0 {
		t.line(t.buf)
		t.buf = t.buf[:0]
	}
}

// line writes one line; t.mu is held.
func (t *traceWriter) line(raw []byte) {
	s := sectionMarker.ReplaceAllString(string(raw), "")
	if s == "" && len(raw) > 0 {
		return // a line that held only markers
	}
	if !t.colour {
		s = ansiEscape.ReplaceAllString(s, "")
		if i := strings.LastIndexByte(strings.TrimRight(s, "\r"), '\r'); i >= 0 {
			s = s[i+1:]
		}
		s = strings.TrimRight(s, "\r")
	}
	if t.before != nil {
		t.before()
	}
	io.WriteString(t.w, s+"\n")
	if t.after != nil {
		t.after()
	}
}

// progressLine shows the job's elapsed time on a terminal's last line while it runs,
// redrawn every second and cleared around each line of job output.
type progressLine struct {
	done chan struct{}
	wg   sync.WaitGroup
	t    *traceWriter
	draw func()
	wipe func()
}

func startProgress(w io.Writer, job string, t *traceWriter) *progressLine {
	start := time.Now()
	p := &progressLine{done: make(chan struct{}), t: t}
	p.draw = func() {
		fmt.Fprintf(w, "\r\x1b[K⏳ %s running · %s", job, time.Since(start).Round(time.Second))
	}
	p.wipe = func() { io.WriteString(w, "\r\x1b[K") }
	t.mu.Lock()
	t.before, t.after = p.wipe, p.draw
	t.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-tick.C:
				t.mu.Lock()
				p.draw()
				t.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *progressLine) stop() {
	close(p.done)
	p.wg.Wait()
	p.t.mu.Lock()
	p.wipe()
	p.t.before, p.t.after = nil, nil
	p.t.mu.Unlock()
}
