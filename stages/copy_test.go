package stages

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recordSink is a capture that records what it got and where it missed output. With hold
// set, Write waits until release is called: a capture that has fallen behind.
type recordSink struct {
	mu       sync.Mutex
	segments []segment
	pos      int64 // stream offset of the next byte, lost bytes included
	lost     int64
	gapAt    []int64
	closed   bool
	hold     chan struct{}
	holdOnce sync.Once
}

// segment is output the sink got, at its offset in the job's stream.
type segment struct {
	at   int64
	data []byte
}

func (s *recordSink) Write(p []byte) (int, error) {
	if s.hold != nil {
		<-s.hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.segments = append(s.segments, segment{s.pos, append([]byte(nil), p...)})
	s.pos += int64(len(p))
	return len(p), nil
}

func (s *recordSink) Lost(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gapAt = append(s.gapAt, s.pos)
	s.pos += n
	s.lost += n
}

func (s *recordSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *recordSink) release() { s.holdOnce.Do(func() { close(s.hold) }) }

// check verifies that everything the sink got is the job's output at its place, and that
// got and lost bytes add up to all of it.
func (s *recordSink) check(t *testing.T, data []byte) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var got int64
	for _, seg := range s.segments {
		if seg.at+int64(len(seg.data)) > int64(len(data)) || !bytes.Equal(seg.data, data[seg.at:seg.at+int64(len(seg.data))]) {
			t.Fatalf("the capture got %d bytes at offset %d that are not the job's output there (found at %d; lost %d; gaps at %v)",
				len(seg.data), seg.at, bytes.Index(data, seg.data), s.lost, s.gapAt)
		}
		got += int64(len(seg.data))
	}
	if s.pos != int64(len(data)) || got+s.lost != int64(len(data)) {
		t.Fatalf("capture got %d bytes and missed %d, stream at %d; the job wrote %d", got, s.lost, s.pos, len(data))
	}
}

// jobOutput is n bytes of log-like output.
func jobOutput(n int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(strings.Repeat(string(rune('a'+r.IntN(26))), r.IntN(120)))
		b.WriteByte('\n')
	}
	return b.Bytes()[:n]
}

// jobPipe is the job's output pipe as runScript makes it.
func jobPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, pipeSize)
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// writeJob writes data to w in pieces of random size, as a job would, and closes it; the
// returned channel closes when the job is done writing.
func writeJob(t *testing.T, w *os.File, data []byte) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Close()
		r := rand.New(rand.NewPCG(5, 6))
		for p := data; len(p) > 0; {
			n := min(len(p), 1+r.IntN(64<<10))
			if _, err := w.Write(p[:n]); err != nil {
				t.Errorf("job write: %v", err)
				return
			}
			p = p[n:]
		}
	}()
	return done
}

// runnerEnd is the runner's side of the copy: where it writes, how much has arrived so
// far, and all that arrived (to be called once the copy is done).
type runnerEnd struct {
	w     io.Writer
	sofar func() int
	got   func() []byte
}

// runnerPipe is a pipe whose read end a goroutine drains into a buffer.
func runnerPipe(t *testing.T) runnerEnd {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	done := make(chan struct{})
	go func() { defer close(done); _, _ = io.Copy(&buf, r); r.Close() }()
	t.Cleanup(func() { w.Close(); <-done })
	return runnerEnd{w, func() int { return len(buf.Bytes()) }, func() []byte { w.Close(); <-done; return buf.Bytes() }}
}

// waitFor polls cond until it holds, for a generous while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

func waitCopy(t *testing.T, c *outputCopy) error {
	t.Helper()
	select {
	case err := <-c.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("the copy did not finish")
		return nil
	}
}

// engines are the runner's ends that select each engine.
var engines = []struct {
	name   string
	engine string
	out    func(t *testing.T) runnerEnd
}{
	{"pipe", pipeEngine, runnerPipe},
	{"file", "plain", func(t *testing.T) runnerEnd {
		f, err := os.Create(filepath.Join(t.TempDir(), "log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		size := func() int {
			fi, err := f.Stat()
			if err != nil {
				return 0
			}
			return int(fi.Size())
		}
		return runnerEnd{f, size, func() []byte {
			data, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			return data
		}}
	}},
	{"buffer", "plain", func(t *testing.T) runnerEnd {
		b := &syncBuffer{}
		return runnerEnd{b, func() int { return len(b.Bytes()) }, b.Bytes}
	}},
}

func TestCopyEngines(t *testing.T) {
	data := jobOutput(24 << 20)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			out := e.out(t)
			r, w := jobPipe(t)
			sink := &recordSink{}
			c := startCopy(out.w, r, sink)
			if c.engine != e.engine {
				t.Errorf("output to a %s used the %s engine, want %s", e.name, c.engine, e.engine)
			}
			<-writeJob(t, w, data)
			if err := waitCopy(t, c); err != nil {
				t.Fatal(err)
			}
			if g := out.got(); !bytes.Equal(g, data) {
				t.Fatalf("the runner got %d bytes, not the job's %d", len(g), len(data))
			}
			sink.check(t, data)
			if c.lost.Load() != sink.lost {
				t.Errorf("copy counted %d bytes lost, the sink was told %d", c.lost.Load(), sink.lost)
			}
		})
	}
}

// A burst smaller than the capture's bound reaches the capture whole, even when the
// capture reads none of it until the job is done.
func TestCopyBurstWithinBound(t *testing.T) {
	data := jobOutput(pipeSize - 4096)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			out := e.out(t)
			r, w := jobPipe(t)
			sink := &recordSink{hold: make(chan struct{})}
			c := startCopy(out.w, r, sink)
			if c.engine == "tee" {
				// The tee engine's capture pipe is bounded in slots as much as in bytes (a
				// tee after each small write takes a slot), so its burst comes in one write.
				go func() { w.Write(data); w.Close() }()
			} else {
				<-writeJob(t, w, data)
			}
			waitFor(t, "the runner's copy", func() bool { return out.sofar() == len(data) })
			sink.release()
			if err := waitCopy(t, c); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.got(), data) {
				t.Fatal("the runner did not get the job's output")
			}
			sink.check(t, data)
			if sink.lost != 0 {
				t.Errorf("the capture missed %d bytes of a %d-byte burst", sink.lost, len(data))
			}
		})
	}
}

// A capture that stops reading costs the capture, never the job or the runner's log.
func TestCopyCaptureFallsBehind(t *testing.T) {
	data := jobOutput(4 * captureBufferBytes)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			out := e.out(t)
			r, w := jobPipe(t)
			sink := &recordSink{hold: make(chan struct{})}
			defer sink.release()
			c := startCopy(out.w, r, sink)
			select {
			case <-writeJob(t, w, data):
			case <-time.After(60 * time.Second):
				t.Fatal("the job was blocked by a capture that stopped reading")
			}
			waitFor(t, "the runner's copy with the capture stuck", func() bool { return out.sofar() == len(data) })
			sink.release()
			if err := waitCopy(t, c); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.got(), data) {
				t.Fatal("the runner did not get the job's output")
			}
			sink.check(t, data)
			if sink.lost == 0 || c.lost.Load() != sink.lost {
				t.Errorf("lost: copy counted %d, sink was told %d; want the same, above 0", c.lost.Load(), sink.lost)
			}
		})
	}
}

// A runner that stops reading must not block the job: its output is drained, and the
// copy reports the broken runner.
func TestCopyRunnerGone(t *testing.T) {
	data := jobOutput(8 << 20)
	for _, e := range engines[:1] {
		t.Run(e.name, func(t *testing.T) {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pw.Close()
			pr.Close()
			r, w := jobPipe(t)
			sink := &recordSink{}
			c := startCopy(pw, r, sink)
			if c.engine != e.engine {
				t.Fatalf("engine %s, want %s", c.engine, e.engine)
			}
			select {
			case <-writeJob(t, w, data):
			case <-time.After(60 * time.Second):
				t.Fatal("the job was blocked by a runner that stopped reading")
			}
			if err := waitCopy(t, c); err == nil || !strings.Contains(err.Error(), "write to runner") || !errors.Is(err, unix.EPIPE) {
				t.Errorf("copy error %v, want a broken runner pipe", err)
			}
		})
	}
}

// abandon stops a copy whose pipe a stray process keeps open.
func TestCopyAbandon(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			out := e.out(t)
			r, w := jobPipe(t)
			sink := &recordSink{}
			c := startCopy(out.w, r, sink)
			line := []byte("still running\n")
			if _, err := w.Write(line); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the runner's copy", func() bool { return out.sofar() == len(line) })
			waitFor(t, "the capture", func() bool { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.pos == int64(len(line)) })
			c.abandon()
			_ = waitCopy(t, c) // its error is expected: the read was cut off
			if !bytes.Equal(out.got(), line) {
				t.Error("the runner did not get the output")
			}
			sink.check(t, line)
		})
	}
}

// slowSink takes a while over each write, as a capture on a slow disk would.
type slowSink struct{ recordSink }

func (s *slowSink) Write(p []byte) (int, error) {
	time.Sleep(200 * time.Millisecond)
	return s.recordSink.Write(p)
}

// Output held back while the capture was busy reaches it once it is idle, even if the
// job goes quiet: the progress edits show its last line.
func TestCopyQuietJobReachesCapture(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			out := e.out(t)
			r, w := jobPipe(t)
			sink := &slowSink{}
			c := startCopy(out.w, r, sink)
			for _, line := range []string{"first\n", "second\n", "last\n"} {
				if _, err := w.Write([]byte(line)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			want := "first\nsecond\nlast\n"
			waitFor(t, "the last line in the capture", func() bool {
				sink.mu.Lock()
				defer sink.mu.Unlock()
				return sink.pos == int64(len(want))
			})
			w.Close()
			if err := waitCopy(t, c); err != nil {
				t.Fatal(err)
			}
			sink.check(t, []byte(want))
		})
	}
}

// busySink spends CPU over each write without a system call or an allocation: a capture
// doing its work on the run stage's one P. It checks what it gets against the job's output
// in place.
type busySink struct {
	data      []byte
	pos, lost int64
	wrong     bool
}

func (s *busySink) Write(p []byte) (int, error) {
	for start := time.Now(); time.Since(start) < 100*time.Microsecond; {
	}
	end := s.pos + int64(len(p))
	if end > int64(len(s.data)) || !bytes.Equal(p, s.data[s.pos:end]) {
		s.wrong = true
	}
	s.pos = end
	return len(p), nil
}

func (s *busySink) Lost(n int64) { s.pos += n; s.lost += n }
func (s *busySink) Close() error { return nil }

// With one P (RunProcs), as in a run stage, the capture runs only when the copy loop lets
// it. A job in another process printing without pause never leaves the loop waiting, so
// the loop must give the capture its turn before it gives up on the capture's copy.
func TestCopyOnePGivesTheCaptureATurn(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(RunProcs))
	data := jobOutput(32 << 20)
	file := filepath.Join(t.TempDir(), "output")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out := &countingWriter{}
	r, w := jobPipe(t)
	sink := &busySink{data: data}
	c := startPlainCopy(out, r, sink)
	job := exec.Command("cat", file)
	job.Stdout = w
	if err := job.Run(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := waitCopy(t, c); err != nil {
		t.Fatal(err)
	}
	if out.n != int64(len(data)) {
		t.Fatalf("the runner got %d bytes, not the job's %d", out.n, len(data))
	}
	if sink.wrong || sink.pos != int64(len(data)) {
		t.Fatalf("the capture got output that is not the job's, or not all of it (at %d of %d)", sink.pos, len(data))
	}
	if sink.lost != 0 {
		t.Errorf("the capture missed %d of %d bytes while it had CPU to spare", sink.lost, len(data))
	}
	// A capture that keeps up needs a few buffers taking turns, not the pool's bound.
	if made := c.made(); made > 4 {
		t.Errorf("%d capture buffers were made for a capture that kept up, want at most 4 of %d", made, captureBufferBytes/copyBufSize)
	}
}

// countingWriter is a runner that only counts what it gets.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
