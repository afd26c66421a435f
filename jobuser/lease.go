package jobuser

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/chatops-executor/chatops-executor/atomicfile"
)

// Leaser hands out the uids of a range, one job at a time. Every executor process of a
// host serving the same state_dir shares the leases: they are files in Dir (one per leased
// uid, holding the job id), changed only under an exclusive flock of Dir/lock.
type Leaser struct {
	Dir   string
	Range Range
	// JobExists reports whether a job's state is still there. A lease whose job has no
	// state left (its cleanup died after removing it, or the host rebooted) is taken back
	// once its uid has no process. Nil means every lease is live until released.
	JobExists func(jobID int64) bool
	// inUse finds the uids with live processes; tests replace it.
	inUse func(Range) (map[uint32]bool, error)
}

// ErrExhausted means every uid of the range is leased or still has processes.
var ErrExhausted = errors.New("no free uid")

// Lease returns the uid leased to jobID, leasing one if the job has none. Running it again
// for the same job (the runner retries a prepare that failed) returns the same uid. A uid
// that any live process still holds is never leased, whatever the lease files say.
func (l *Leaser) Lease(jobID int64) (uint32, error) {
	var uid uint32
	err := l.locked(func(leases map[uint32]int64) error {
		for u, j := range leases {
			if j == jobID {
				uid = u
				return nil
			}
		}
		inUse := l.inUse
		if inUse == nil {
			inUse = InUse
		}
		busy, err := inUse(l.Range)
		if err != nil {
			return err
		}
		start := l.cursor()
		leased, lingering := 0, 0
		for i := 0; i < l.Range.Size(); i++ {
			u := l.Range.First + uint32((int(start-l.Range.First)+i)%l.Range.Size())
			if j, held := leases[u]; held && (l.JobExists == nil || l.JobExists(j)) {
				leased++
				continue
			}
			// Free, or leased to a job whose state is gone: taken back once idle.
			if busy[u] {
				lingering++
				continue
			}
			if err := atomicfile.WriteFile(l.path(u), []byte(strconv.FormatInt(jobID, 10)+"\n"), 0o600); err != nil {
				return fmt.Errorf("lease uid %d: %w", u, err)
			}
			next := u + 1
			if next > l.Range.Last {
				next = l.Range.First
			}
			_ = atomicfile.WriteFile(filepath.Join(l.Dir, "next"), []byte(strconv.FormatUint(uint64(next), 10)+"\n"), 0o600)
			uid = u
			return nil
		}
		return fmt.Errorf("%w in executor.job_uids %s: %d leased to running jobs, %d held by processes that outlived their job; widen the range or lower the runner's concurrent",
			ErrExhausted, l.Range, leased, lingering)
	})
	return uid, err
}

// Held returns the uid leased to jobID, if any.
func (l *Leaser) Held(jobID int64) (uint32, bool, error) {
	var uid uint32
	var ok bool
	err := l.locked(func(leases map[uint32]int64) error {
		for u, j := range leases {
			if j == jobID {
				uid, ok = u, true
			}
		}
		return nil
	})
	return uid, ok, err
}

// Release gives back jobID's uid, but only when no process holds it any more: a uid with
// processes left stays leased (to no one: Lease will not hand out a busy uid, and takes the
// lease back once it is idle and the job's state is gone). It reports whether the uid was
// freed; a job without a lease is not an error.
func (l *Leaser) Release(jobID int64) (bool, error) {
	freed := false
	err := l.locked(func(leases map[uint32]int64) error {
		for u, j := range leases {
			if j != jobID {
				continue
			}
			left, err := Processes(u)
			if err != nil {
				return err
			}
			if len(left) > 0 {
				return nil
			}
			if err := os.Remove(l.path(u)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("release uid %d: %w", u, err)
			}
			freed = true
		}
		return nil
	})
	return freed, err
}

func (l *Leaser) path(uid uint32) string {
	return filepath.Join(l.Dir, strconv.FormatUint(uint64(uid), 10))
}

// cursor is where the next search starts: uids are handed out in turn rather than lowest
// first, so a uid is reused as late as possible.
func (l *Leaser) cursor() uint32 {
	data, err := os.ReadFile(filepath.Join(l.Dir, "next"))
	if err != nil {
		return l.Range.First
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 32)
	if err != nil || !l.Range.Contains(uint32(n)) {
		return l.Range.First
	}
	return uint32(n)
}

// locked runs fn with the lease files read, under the lock.
func (l *Leaser) locked(fn func(leases map[uint32]int64) error) error {
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return fmt.Errorf("uid leases: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(l.Dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("uid leases: %w", err)
	}
	defer lock.Close()
	for {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("uid leases: lock %s: %w", lock.Name(), err)
	}
	entries, err := os.ReadDir(l.Dir)
	if err != nil {
		return fmt.Errorf("uid leases: %w", err)
	}
	leases := map[uint32]int64{}
	for _, e := range entries {
		u, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue // lock, next, temporary files
		}
		data, err := os.ReadFile(filepath.Join(l.Dir, e.Name()))
		if err != nil {
			return fmt.Errorf("uid leases: %w", err)
		}
		j, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil {
			return fmt.Errorf("uid leases: %s is corrupt (%q): remove it once uid %d has no process", e.Name(), data, u)
		}
		leases[uint32(u)] = j
	}
	return fn(leases)
}
