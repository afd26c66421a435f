package stages

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// The spools bound each job's capture, but many jobs run at once and the outbox keeps
// undelivered uploads: executor.max_state_size bounds everything under state_dir together,
// so that one job's output cannot fill the disk its neighbours need. A capture asks for
// room a slice at a time; the ask measures what state_dir really holds, under a host-wide
// lock, and is refused once the bound is reached. What is refused is left out of the
// reply, never out of the job or its log.
//
// A measure walks state_dir, and a job printing a GiB asked a thousand times: that walk was
// a tenth of the capture's CPU. So a slice is a share of the room left (sliceShare of it),
// between budgetSlice and budgetSliceMax: large while the disk is far from the bound, as
// small as before near it. Captures running at once can pass the bound by at most their
// slices together, which near it are small.

// budgetSlice is how much output a capture may write per ask. Each byte of output can land
// in two spools, so a slice costs up to twice as much disk.
const budgetSlice = 1 << 20

// budgetSliceMax is the largest slice, and sliceShare the part of the room left that one
// slice may take.
const (
	budgetSliceMax = 16 << 20
	sliceShare     = 64
)

// slice is the room one ask grants when used bytes of bound are in use.
func slice(used, bound int64) int64 {
	return min(max(budgetSlice, (bound-used)/sliceShare), budgetSliceMax)
}

const budgetLock = ".budget.lock"

// errBudget means max_state_size is reached.
var errBudget = errors.New("executor.max_state_size reached")

// budgetSink passes writes to w within the room granted by the state directory's budget.
type budgetSink struct {
	w     io.WriteCloser
	root  string
	max   int64
	room  int64
	usage func(root string) (int64, error)
}

func (b *budgetSink) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if b.room == 0 {
			if err := b.ask(); err != nil {
				return written, err
			}
		}
		k := min(int64(len(p)), b.room)
		n, err := b.w.Write(p[:k])
		written += n
		b.room -= int64(n)
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

func (b *budgetSink) Close() error { return b.w.Close() }

// ask measures state_dir under the budget lock and grants the next slice, or refuses.
func (b *budgetSink) ask() error {
	f, err := os.OpenFile(filepath.Join(b.root, budgetLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("state budget: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("state budget: %w", err)
	}
	used, err := b.usage(b.root)
	if err != nil {
		return fmt.Errorf("state budget: %w", err)
	}
	grant := slice(used, b.max)
	if used+2*grant > b.max {
		return fmt.Errorf("%w (%d bytes in use of %d)", errBudget, used, b.max)
	}
	b.room = grant
	return nil
}

// diskUsage is the disk space the files under root take.
func diskUsage(root string) (int64, error) {
	var total int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked: a job ended
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += fi.Size()
		}
		return nil
	})
	return total, err
}
