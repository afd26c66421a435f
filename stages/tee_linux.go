//go:build linux && splice

package stages

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The tee engine is built only with the splice tag: see copy.go for why the plain copy
// ships.

// startCopy starts copying the job's output from r to the runner's out, with a copy for
// sink. When out is a pipe the tee engine moves the runner's copy inside the kernel;
// anything else (a file, a terminal, a test's buffer) gets the plain copy.
func startCopy(out io.Writer, r *os.File, sink Sink) *outputCopy {
	if f, ok := out.(*os.File); ok && isPipe(f) {
		if c, err := startTeeCopy(f, r, sink); err == nil {
			return c
		}
	}
	return startPlainCopy(out, r, sink)
}

func isPipe(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeNamedPipe != 0
}

// pipeEngine is the engine output to a pipe gets (for tests).
const pipeEngine = "tee"

// teeMax is the most one tee(2) call takes: all a full job pipe holds.
const teeMax = pipeSize

// teeCopy is the tee engine: tee(2) duplicates what the job wrote into the capture's pipe
// without consuming it, splice(2) then moves exactly that much on to the runner, and the
// capture reads its pipe in a goroutine of its own. No byte of the runner's copy enters
// user space, and the only copy the executor makes is the capture's read.
//
// When the capture's pipe is full (the capture has every buffer and is a pipe behind), tee
// has nowhere to put output: it goes on to the runner by splice alone and the gap is
// recorded, at its place in the capture's stream, for the capture to learn of it there.
type teeCopy struct {
	job        syscall.RawConn // the read end of the job's pipe
	out        int             // the runner's pipe; s.Stdout, open for the whole stage
	capR, capW *os.File        // the capture's pipe
	capFd      int             // capW's descriptor; run closes capW when it is done with it
	c          *outputCopy
	drainBuf   []byte

	mu   sync.Mutex
	teed int64     // bytes put into the capture's pipe so far
	gaps []teedGap // gaps the capture has not reached yet
}

// teedGap is a gap in the capture's stream: lost bytes missing after at teed bytes.
type teedGap struct{ at, lost int64 }

func startTeeCopy(out, r *os.File, sink Sink) (*outputCopy, error) {
	job, err := r.SyscallConn()
	if err != nil {
		return nil, err
	}
	outConn, err := out.SyscallConn()
	if err != nil {
		return nil, err
	}
	outFd := -1
	if err := outConn.Control(func(fd uintptr) { outFd = int(fd) }); err != nil {
		return nil, err
	}
	capR, capW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	capConn, err := capW.SyscallConn()
	if err == nil {
		err = capConn.Control(func(fd uintptr) {
			// As large as the kernel allows up to capturePipeSize; a smaller pipe only means
			// the capture misses output sooner when it falls behind.
			if _, e := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, capturePipeSize); e != nil {
				_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize)
			}
		})
	}
	capFd := -1
	if err == nil {
		err = capConn.Control(func(fd uintptr) { capFd = int(fd) })
	}
	if err != nil {
		capR.Close()
		capW.Close()
		return nil, err
	}
	c := &outputCopy{done: make(chan error, 1), abandon: func() { r.Close() }, engine: "tee"}
	t := &teeCopy{job: job, out: outFd, capW: capW, capR: capR, capFd: capFd, c: c}
	f, sunk := newFeeder(sink)
	read := make(chan error, 1)
	go func() { read <- t.capture(f) }()
	go func() {
		err := t.run()
		r.Close()
		runtime.KeepAlive(out)
		t.capW.Close() // the capture reads to EOF, then finishes
		err = errors.Join(err, <-read)
		c.done <- errors.Join(err, <-sunk)
	}()
	return c, nil
}

// run moves the job's output until the job's pipe reaches EOF (every writer has closed
// it) or is closed under it (abandon).
func (t *teeCopy) run() error {
	var runnerErr error
	for {
		var eof bool
		var fail error
		err := t.job.Read(func(fd uintptr) bool {
			if runnerErr != nil {
				return t.drain(int(fd), &eof, &fail)
			}
			return t.move(int(fd), &eof, &fail, &runnerErr)
		})
		switch {
		case err != nil && runnerErr != nil:
			return runnerErr
		case err != nil:
			return fmt.Errorf("read job output: %w", err)
		case fail != nil:
			return fail
		case eof:
			return runnerErr
		}
	}
}

// move tees and splices until the job's pipe is empty (false: wait for more), at EOF or
// on an error (true).
func (t *teeCopy) move(job int, eof *bool, fail, runnerErr *error) bool {
	full := false // a tee failed with output waiting
	for {
		n, err := unix.Tee(job, t.capFd, teeMax, unix.SPLICE_F_NONBLOCK)
		if err != unix.EAGAIN {
			full = false
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			// The job's pipe is empty, or the capture's is full.
			avail, ierr := unix.IoctlGetInt(job, unix.TIOCINQ) // FIONREAD
			if ierr != nil {
				*fail = fmt.Errorf("read job output: %w", ierr)
				return true
			}
			if avail == 0 {
				// With the capture's pipe full tee says EAGAIN even at EOF, where the
				// poller would wait for an edge that has already come.
				if hungUp(job) {
					*eof = true
					return true
				}
				return false // wait for the job
			}
			if !full {
				// The job may have written since tee found its pipe empty: only a tee that
				// fails with output waiting proves the capture's pipe full. (The capture
				// relies on that: it never reads across a gap because nothing is teed
				// after one until it has read.)
				full = true
				continue
			}
			// The capture's pipe is full: the runner gets this output without it.
			moved, serr := t.splice(job, avail)
			t.gap(int64(moved))
			full = false
			if serr != nil {
				*runnerErr = serr
				return true
			}
		case err != nil:
			*fail = fmt.Errorf("read job output: tee: %w", err)
			return true
		case n == 0:
			*eof = true
			return true
		default:
			t.mu.Lock()
			t.teed += int64(n)
			t.mu.Unlock()
			if _, serr := t.splice(job, int(n)); serr != nil {
				*runnerErr = serr
				return true
			}
		}
	}
}

// hungUp reports whether every writer has closed the job's pipe.
func hungUp(job int) bool {
	fds := []unix.PollFd{{Fd: int32(job), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, 0)
		if err != unix.EINTR {
			return err == nil && fds[0].Revents&unix.POLLHUP != 0
		}
	}
}

// splice moves exactly n bytes, which the job's pipe holds, to the runner, waiting while
// the runner's pipe is full.
func (t *teeCopy) splice(job, n int) (int, error) {
	moved := 0
	for moved < n {
		m, err := unix.Splice(job, nil, t.out, nil, n-moved, unix.SPLICE_F_MOVE)
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			// The runner's pipe is full (the job's pipe is non-blocking, which makes the
			// whole splice so): wait for the runner, as a job writing to it directly would.
			fds := []unix.PollFd{{Fd: int32(t.out), Events: unix.POLLOUT}}
			if _, perr := unix.Poll(fds, -1); perr != nil && perr != unix.EINTR {
				return moved, fmt.Errorf("write to runner: %w", perr)
			}
		case err != nil:
			return moved, fmt.Errorf("write to runner: %w", err)
		case m == 0:
			return moved, fmt.Errorf("write to runner: %w", io.ErrUnexpectedEOF)
		default:
			moved += int(m)
		}
	}
	return moved, nil
}

// drain reads and drops the job's output after the runner stopped reading, so the job is
// not blocked on a full pipe.
func (t *teeCopy) drain(job int, eof *bool, fail *error) bool {
	if t.drainBuf == nil {
		t.drainBuf = make([]byte, copyBufSize)
	}
	for {
		n, err := unix.Read(job, t.drainBuf)
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return false
		case err != nil:
			*fail = fmt.Errorf("read job output: %w", err)
			return true
		case n == 0:
			*eof = true
			return true
		}
	}
}

// gap records that n bytes reached the runner but not the capture, after what was teed
// so far.
func (t *teeCopy) gap(n int64) {
	if n <= 0 {
		return
	}
	t.c.lost.Add(n)
	t.mu.Lock()
	defer t.mu.Unlock()
	if k := len(t.gaps); k > 0 && t.gaps[k-1].at == t.teed {
		t.gaps[k-1].lost += n
		return
	}
	t.gaps = append(t.gaps, teedGap{at: t.teed, lost: n})
}

// capture reads the capture's pipe into the feeder's buffers as fast as it can, so that
// the pipe (whose bound is as much in writes as in bytes: one slot per tee) rarely fills,
// and tells the feeder of each gap at its place. When the sink has every buffer, it waits
// for one: the pipe fills, and run records the gaps.
//
// A gap is looked for after each read, in what the read returned: run records a gap
// before it tees what follows it, so a read that returns bytes from after a gap finds the
// gap recorded.
func (t *teeCopy) capture(f *feeder) error {
	defer t.capR.Close()
	defer f.finish()
	var read int64
	var spare []byte
	for {
		if f.wait(t.capR) {
			continue
		}
		dst := f.buffer(true)
		n, err := t.capR.Read(dst)
		if f.timedOut(t.capR, err) {
			n, err = 0, nil
		}
		if gaps := t.gapsBefore(read + int64(n)); len(gaps) == 0 {
			if n > 0 {
				f.got(n)
				read += int64(n)
			}
		} else {
			// Rare: split the chunk at its gaps. The feeder may hand its buffer to the sink
			// at a gap, so the rest is kept aside and put into the next one.
			if spare == nil {
				spare = make([]byte, copyBufSize)
			}
			rest := spare[:copy(spare, dst[:n])]
			for _, g := range gaps {
				k := max(0, g.at-read)
				feed(f, rest[:k])
				rest, read = rest[k:], read+k
				f.lose(g.lost)
			}
			feed(f, rest)
			read += int64(len(rest))
		}
		if errors.Is(err, io.EOF) {
			for _, g := range t.gapsBefore(read + 1) {
				f.lose(g.lost)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read capture pipe: %w", err)
		}
	}
}

// feed puts p into the feeder's buffers.
func feed(f *feeder, p []byte) {
	for len(p) > 0 {
		n := copy(f.buffer(true), p)
		f.got(n)
		p = p[n:]
	}
}

// gapsBefore removes and returns the recorded gaps before offset end of the capture's
// stream.
func (t *teeCopy) gapsBefore(end int64) []teedGap {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := 0
	for k < len(t.gaps) && t.gaps[k].at < end {
		k++
	}
	if k == 0 {
		return nil
	}
	gs := append([]teedGap(nil), t.gaps[:k]...)
	t.gaps = t.gaps[k:]
	return gs
}
