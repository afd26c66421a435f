package stages

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// The job's output crosses the executor on its way to the runner, and a stage that is
// captured (see capture.go) gives a copy of it to the capture. The runner's stream is the
// one that matters — it is the job's log, and a job blocked on a full pipe stops working
// — so the capture never holds it up: it gets its copy through a bounded buffer of its
// own (captureBound), and when it falls so far behind that the buffer is full, output
// goes on to the runner without it. What gives is the capture, never the job or its log:
// the bytes it missed are counted, the reply says they are missing, and the job log gets a
// warning.
//
// Two engines do the copying. On Linux, when the runner's end is a pipe (it is, under
// gitlab-runner), the runner's copy never enters user space: tee(2) duplicates the job's
// pipe into the capture's pipe and splice(2) moves it on to the runner (tee_linux.go).
// Otherwise a plain read/write loop copies it and hands its buffers to the capture.

// pipeSize is the capacity asked of the job's output pipe. Linux's default 64 KiB makes
// the job block on every 64 KiB it writes while the executor copies; 1 MiB (the
// unprivileged maximum) lets a burst through in one go.
const pipeSize = 1 << 20

// copyBufSize is the read size of the copy loops.
const copyBufSize = 256 << 10

// captureBound is how much output the capture may fall behind the runner before it starts
// missing output: the capture pipe of the tee engine (where the kernel allows that size;
// pipeSize otherwise), the buffers of the plain engine.
const captureBound = 4 << 20

// Sink is a stage's capture: it receives a copy of the job's output, in order, from a
// goroutine of its own.
type Sink interface {
	io.WriteCloser
	// Lost says that n bytes of output, at this point of the stream, reached the runner
	// but not the capture, which had fallen captureBound behind.
	Lost(n int64)
}

// Capturer gives a stage's output a second reader besides the runner. It returns nil for a
// stage whose output nothing needs; that stage then writes straight to the runner with no
// copy at all.
type Capturer interface {
	Capture(stage string) (Sink, error)
}

// outputCopy is one stage's output in flight: from the read end of the job's pipe to the
// runner, and to the capture.
type outputCopy struct {
	done chan error // receives once the runner's copy and the capture have both finished
	// abandon stops reading the job's pipe: a process outside the job's group holds it open.
	abandon func()
	lost    atomic.Int64 // bytes the capture missed
}

// startPlainCopy copies r to out with read and write, and hands each chunk to the sink's
// goroutine by swapping buffers: no copy, and when no buffer is free (the sink is
// captureBound behind) the chunk goes to the runner only.
func startPlainCopy(out io.Writer, r *os.File, sink Sink) *outputCopy {
	c := &outputCopy{done: make(chan error, 1), abandon: func() { r.Close() }}
	free := &bufferPool{max: captureBound / copyBufSize}
	// Buffers in flight never outnumber the pool, so sends never block; the one extra slot
	// is for the final report of lost bytes.
	chunks := make(chan captured, free.max+1)
	sunk := make(chan error, 1)
	go func() { sunk <- feedSink(sink, chunks, free) }()
	go func() {
		err := plainCopy(out, r, chunks, free, &c.lost)
		close(chunks)
		c.done <- errors.Join(err, <-sunk)
	}()
	return c
}

// bufferPool hands out up to max buffers of copyBufSize, made when first needed and reused
// last-in first-out: a capture that keeps up cycles through one or two, and memory grows
// only as far as it falls behind.
type bufferPool struct {
	mu   sync.Mutex
	bufs [][]byte
	made int
	max  int
}

// get returns a free buffer, or nil when all max are in use.
func (p *bufferPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := len(p.bufs); k > 0 {
		b := p.bufs[k-1]
		p.bufs = p.bufs[:k-1]
		return b
	}
	if p.made == p.max {
		return nil
	}
	p.made++
	return make([]byte, copyBufSize)
}

func (p *bufferPool) put(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bufs = append(p.bufs, b[:cap(b)])
}

// captured is a chunk of output for the sink, after lostBefore bytes it missed.
type captured struct {
	data       []byte
	lostBefore int64
}

func plainCopy(runner io.Writer, r io.Reader, chunks chan<- captured, free *bufferPool, lost *atomic.Int64) error {
	buf := make([]byte, copyBufSize)
	var missed int64 // lost bytes not yet reported to the sink
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := runner.Write(buf[:n]); werr != nil {
				// The runner stopped reading: keep draining so the job is not blocked, and
				// report it at the end.
				return drain(r, buf, fmt.Errorf("write to runner: %w", werr))
			}
			if next := free.get(); next != nil {
				chunks <- captured{data: buf[:n], lostBefore: missed}
				buf, missed = next, 0
			} else {
				missed += int64(n)
				lost.Add(int64(n))
			}
		}
		if errors.Is(err, io.EOF) {
			if missed > 0 {
				chunks <- captured{lostBefore: missed}
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read job output: %w", err)
		}
	}
}

// feedSink writes the chunks to the sink and gives their buffers back. A broken capture
// costs the reply, never the job or its log: after a write error the sink gets nothing
// more, and the error is returned at the end.
func feedSink(sink Sink, chunks <-chan captured, free *bufferPool) error {
	var sinkErr error
	for c := range chunks {
		if sinkErr == nil && c.lostBefore > 0 {
			sink.Lost(c.lostBefore)
		}
		if sinkErr == nil && len(c.data) > 0 {
			if _, err := sink.Write(c.data); err != nil {
				sinkErr = fmt.Errorf("capture: %w", err)
			}
		}
		if c.data != nil {
			free.put(c.data)
		}
	}
	return sinkErr
}

func drain(r io.Reader, buf []byte, cause error) error {
	for {
		if _, err := r.Read(buf); err != nil {
			return cause
		}
	}
}
