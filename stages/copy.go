package stages

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The job's output crosses the executor on its way to the runner, and a stage that is
// captured (see capture.go) gives a copy of it to the capture. The runner's stream is the
// one that matters — it is the job's log, and a job blocked on a full pipe stops working
// — so the capture never holds it up: it gets its copy through a bounded buffer of its
// own (captureBufferBytes), and when it falls so far behind that the buffer is full,
// output goes on to the runner without it. What gives is the capture, never the job or
// its log: the bytes it missed are counted, the reply says they are missing (dropping the
// partial lines around the gap, see copySpool), and the job log gets a warning.
//
// The plain engine copies: one read into a buffer of the capture's, one write to the
// runner, and the buffer goes to the capture's goroutine without another copy. A second
// engine, built with the splice tag on Linux, keeps the runner's copy out of user space
// (tee(2) into a capture pipe, splice(2) on to the runner; tee_linux.go). It costs less
// CPU, but with the runner's copy that cheap the job outruns the capture, which then
// misses far more output (make bench counts it), so the plain engine ships.

// RunProcs is the GOMAXPROCS of a run stage's process. The copy loop and the sink hand
// every chunk of output over from one goroutine to the other. With a P each, every hand-off
// wakes an OS thread on the other P and puts it back to sleep: futex calls and context
// switches that cost more than the bytes (make bench, in one run: 1.1–1.6 s/GiB of extra
// CPU on two P, 0.6–1.0 on one). With one P a hand-off is a goroutine switch on the same
// thread. Nothing in a run stage needs two threads running Go code at once: the job's
// processes run on the other CPUs, and a goroutine blocked in a system call gives its P
// up to the others.
const RunProcs = 1

// captureTurns is how many times the copy loop yields to a sink that holds every buffer
// made before it makes another or leaves the sink out. One is enough but for the
// scheduler's fairness rule, which now and then runs the goroutine that yielded again
// first.
const captureTurns = 4

// pipeSize is the capacity asked of the job's output pipe. Linux's default 64 KiB makes
// the job block on every 64 KiB it writes while the executor copies; 1 MiB (the
// unprivileged maximum) lets a burst through in one go.
const pipeSize = 1 << 20

// copyBufSize is the read size of the copy loops.
const copyBufSize = 256 << 10

// captureBufferBytes bounds the capture's buffers (the executor's own memory): how far
// the capture may fall behind the runner before it misses output. The tee engine adds
// its capture pipe, of capturePipeSize where the kernel allows it (pipeSize otherwise).
const (
	captureBufferBytes = 2 << 20
	capturePipeSize    = 4 << 20
)

// Sink is a stage's capture: it receives a copy of the job's output, in order, from a
// goroutine of its own.
type Sink interface {
	io.WriteCloser
	// Lost says that n bytes of output, at this point of the stream, reached the runner
	// but not the capture, which had fallen too far behind (see captureBufferBytes).
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
	engine  string       // "tee" or "plain", for tests
	made    func() int   // how many capture buffers were made, for tests
}

// startPlainCopy copies r to out with read and write, reading straight into the capture's
// buffers (see feeder): when none is free, output goes to the runner only.
func startPlainCopy(out io.Writer, r *os.File, sink Sink) *outputCopy {
	c := &outputCopy{done: make(chan error, 1), abandon: func() { r.Close() }, engine: "plain"}
	f, sunk := newFeeder(sink)
	c.made = f.free.count
	go func() {
		err := plainCopy(out, r, f, &c.lost)
		r.Close()
		f.finish()
		c.done <- errors.Join(err, <-sunk)
	}()
	return c
}

func plainCopy(runner io.Writer, r *os.File, f *feeder, lost *atomic.Int64) error {
	var spare []byte // for output read while the capture has no buffer free
	for {
		if f.wait(r) {
			continue
		}
		dst := f.buffer(false)
		captured := dst != nil
		if !captured {
			if spare == nil {
				spare = make([]byte, copyBufSize)
			}
			dst = spare
		}
		n, err := r.Read(dst)
		if f.timedOut(r, err) {
			continue
		}
		if n > 0 {
			if _, werr := runner.Write(dst[:n]); werr != nil {
				// The runner stopped reading: keep draining so the job is not blocked, and
				// report it at the end.
				return drain(r, dst, fmt.Errorf("write to runner: %w", werr))
			}
			if captured {
				f.got(n)
			} else {
				f.lose(int64(n))
				lost.Add(int64(n))
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read job output: %w", err)
		}
	}
}

// feeder hands output to the sink's goroutine (feedSink) in buffers from a bufferPool,
// without copying: output is read straight into the free part of the current buffer,
// which goes to the sink once it holds sendAtLeast and the sink is idle, or once full. So
// the pool's bound (captureBufferBytes) counts bytes, however small the job's writes. What
// it holds back while the sink is busy goes within captureFlush of the sink becoming idle,
// so that a job gone quiet still has its last line in the progress edits.
type feeder struct {
	chunks   chan captured
	free     *bufferPool
	idle     atomic.Bool // the sink waits for a chunk
	cur      []byte
	fill     int
	missed   int64 // bytes lost since the last chunk
	deadline bool  // a read deadline is set for captureFlush
}

// captureFlush bounds how long output waits in the feeder once the sink is idle.
const captureFlush = 100 * time.Millisecond

// sendAtLeast is the least an idle sink is sent before captureFlush is up: a job's writes
// are often 4 or 8 KiB, and a chunk that small costs the sink more in hand-over than in
// bytes.
const sendAtLeast = 64 << 10

// wait prepares a read from r: with output held back, the read may wait captureFlush
// at most. It reports whether it could not set the deadline and sent the output instead.
func (f *feeder) wait(r *os.File) bool {
	switch {
	case f.fill > 0 && !f.deadline:
		if r.SetReadDeadline(time.Now().Add(captureFlush)) != nil {
			f.send()
			return true
		}
		f.deadline = true
	case f.fill == 0 && f.deadline:
		_ = r.SetReadDeadline(time.Time{})
		f.deadline = false
	}
	return false
}

// timedOut reports whether a read ended by the deadline wait set, and sends the output
// held back.
func (f *feeder) timedOut(r *os.File, err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	_ = r.SetReadDeadline(time.Time{})
	f.deadline = false
	if f.fill > 0 && f.idle.Load() {
		// Only to an idle sink: one still busy gets the buffer once it is full, which
		// keeps the bound in bytes however slowly the job writes.
		f.send()
	}
	return true
}

func newFeeder(sink Sink) (*feeder, <-chan error) {
	f := &feeder{free: &bufferPool{max: captureBufferBytes / copyBufSize}}
	// Every chunk but the last holds one of the pool's buffers, so sends never block.
	f.chunks = make(chan captured, f.free.max+1)
	sunk := make(chan error, 1)
	go func() { sunk <- feedSink(sink, f.chunks, f.free, &f.idle) }()
	return f, sunk
}

// buffer returns where to read the next output into: the free part of the current buffer.
// When every buffer is with the sink it returns nil, or with wait, waits for one.
func (f *feeder) buffer(wait bool) []byte {
	if f.cur == nil {
		b := f.free.reuse()
		for turns := 0; b == nil && !wait && turns < captureTurns; turns++ {
			// Every buffer made is with the sink: give it a turn to hand one back, before
			// another is made or, at the bound, its copy is lost. On the run stage's one P
			// (see RunProcs) the sink runs only when the copy loop parks or yields, and a job
			// printing without pause never lets it park: the capture would miss most of the
			// output, with every buffer of the bound in memory. This is no wait: a sink that
			// cannot run (it is in a write to a slow disk) is passed over.
			runtime.Gosched()
			b = f.free.reuse()
		}
		if b == nil {
			b = f.free.get(wait)
		}
		if f.cur, f.fill = b, 0; f.cur == nil {
			return nil
		}
	}
	return f.cur[f.fill:]
}

// got says that n bytes were read into buffer().
func (f *feeder) got(n int) {
	f.fill += n
	if f.fill == len(f.cur) || f.fill >= sendAtLeast && f.idle.Load() {
		f.send()
	}
}

// lose says that n bytes of output are missing at this point.
func (f *feeder) lose(n int64) {
	if f.fill > 0 {
		f.send()
	}
	f.missed += n
}

func (f *feeder) send() {
	var data []byte
	if f.cur != nil {
		data = f.cur[:f.fill]
	}
	f.chunks <- captured{data: data, lostBefore: f.missed}
	f.cur, f.fill, f.missed = nil, 0, 0
}

// finish sends what is left and ends the sink's goroutine.
func (f *feeder) finish() {
	if f.fill > 0 || f.missed > 0 {
		f.send()
	} else if f.cur != nil {
		f.free.put(f.cur)
	}
	close(f.chunks)
}

// bufferPool hands out up to max buffers of copyBufSize, made when first needed and reused
// last-in first-out: a capture that keeps up cycles through one or two, and memory grows
// only as far as it falls behind.
type bufferPool struct {
	mu   sync.Mutex
	cond *sync.Cond
	bufs [][]byte
	made int
	max  int
}

// reuse returns a free buffer, or nil when none is free: it never makes one.
func (p *bufferPool) reuse() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := len(p.bufs); k > 0 {
		b := p.bufs[k-1]
		p.bufs = p.bufs[:k-1]
		return b
	}
	return nil
}

// get returns a free buffer. When all max are in use it returns nil, or with wait, waits
// for one to be put back.
func (p *bufferPool) get(wait bool) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if k := len(p.bufs); k > 0 {
			b := p.bufs[k-1]
			p.bufs = p.bufs[:k-1]
			return b
		}
		if p.made < p.max {
			p.made++
			return make([]byte, copyBufSize)
		}
		if !wait {
			return nil
		}
		if p.cond == nil {
			p.cond = sync.NewCond(&p.mu)
		}
		p.cond.Wait()
	}
}

// count returns how many buffers were made.
func (p *bufferPool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.made
}

func (p *bufferPool) put(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bufs = append(p.bufs, b[:cap(b)])
	if p.cond != nil {
		p.cond.Signal()
	}
}

// captured is a chunk of output for the sink, after lostBefore bytes it missed.
type captured struct {
	data       []byte
	lostBefore int64
}

// feedSink writes the chunks to the sink and gives their buffers back. A broken capture
// costs the reply, never the job or its log: after a write error the sink gets nothing
// more, and the error is returned at the end.
func feedSink(sink Sink, chunks <-chan captured, free *bufferPool, idle *atomic.Bool) error {
	var sinkErr error
	for {
		idle.Store(true)
		c, ok := <-chunks
		idle.Store(false)
		if !ok {
			break
		}
		if sinkErr == nil && c.lostBefore > 0 {
			sink.Lost(c.lostBefore)
		}
		if sinkErr == nil && len(c.data) > 0 {
			if _, err := sink.Write(c.data); err != nil {
				sinkErr = fmt.Errorf("capture: %w", err)
			}
		}
		if cap(c.data) > 0 {
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
