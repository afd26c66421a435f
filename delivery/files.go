package delivery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// errBusy means another process holds a job's send lock.
var errBusy = errors.New("busy: another process is delivering this job")

// lock takes an exclusive flock on path, creating the file. flock, not a lock file's
// existence, because the kernel drops it when its holder dies: a crashed flush never
// blocks the next one. With wait it polls until ctx is done (flock itself cannot be
// cancelled); without, it returns errBusy at once.
//
// The job directory may be renamed away (delivered and removed) between opening the file
// and getting the lock; the lock is then on a file nobody else will ever look at, so that
// case is reported as fs.ErrNotExist.
func lock(ctx context.Context, path string, wait bool) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !wait {
			f.Close()
			return nil, errBusy
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, errBusy
		case <-time.After(20 * time.Millisecond):
		}
	}
	held, err1 := f.Stat()
	now, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(held, now) {
		f.Close()
		return nil, fs.ErrNotExist
	}
	return func() { f.Close() }, nil // closing the descriptor releases the lock
}
