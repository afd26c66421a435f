package jobuser

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// procDir is where processes are listed; a variable so tests of parsing can point it at
// a fake tree.
var procDir = "/proc"

// status is what /proc/<pid>/status says about a process that matters here.
type status struct {
	uids    [4]uint32 // real, effective, saved, filesystem
	state   byte
	threads int
}

// owns reports whether a process acts with uid in any of its four uids: a process that
// kept uid only as its saved or filesystem id can still return to it or use its files.
func (s status) owns(uid uint32) bool {
	for _, u := range s.uids {
		if u == uid {
			return true
		}
	}
	return false
}

// live is false for a finished process waiting to be reaped. A zombie thread-group leader
// whose other threads still run is live: signalling it reaches them.
func (s status) live() bool { return s.state != 'Z' && s.state != 'X' || s.threads > 1 }

func readStatus(pid int) (status, error) {
	data, err := os.ReadFile(procDir + "/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return status{}, err
	}
	var st status
	seen := 0
	for _, line := range bytes.Split(data, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		f := strings.Fields(string(v))
		switch string(k) {
		case "State":
			if len(f) > 0 && len(f[0]) > 0 {
				st.state, seen = f[0][0], seen|1
			}
		case "Uid":
			if len(f) != 4 {
				return status{}, fmt.Errorf("process %d: malformed Uid line %q", pid, line)
			}
			for i := range f {
				n, err := strconv.ParseUint(f[i], 10, 32)
				if err != nil {
					return status{}, fmt.Errorf("process %d: malformed Uid line %q", pid, line)
				}
				st.uids[i] = uint32(n)
			}
			seen |= 2
		case "Threads":
			if len(f) > 0 {
				st.threads, _ = strconv.Atoi(f[0])
			}
		}
	}
	if seen != 3 {
		return status{}, fmt.Errorf("process %d: status lacks State or Uid", pid)
	}
	return st, nil
}

// pids lists the process ids in /proc. Threads are not listed there, only their thread
// groups, which is what signals reach.
func pids() ([]int, error) {
	d, err := os.Open(procDir)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	out := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out, nil
}

// Processes returns the live processes that hold uid as any of their uids.
func Processes(uid uint32) ([]int, error) {
	all, err := pids()
	if err != nil {
		return nil, err
	}
	var out []int
	for _, pid := range all {
		st, err := readStatus(pid)
		if err != nil {
			continue // gone since the listing
		}
		if st.live() && st.owns(uid) {
			out = append(out, pid)
		}
	}
	return out, nil
}

// InUse returns the uids of r that some live process holds, in one pass over /proc.
func InUse(r Range) (map[uint32]bool, error) {
	all, err := pids()
	if err != nil {
		return nil, err
	}
	used := map[uint32]bool{}
	for _, pid := range all {
		st, err := readStatus(pid)
		if err != nil || !st.live() {
			continue
		}
		for _, u := range st.uids {
			if r.Contains(u) {
				used[u] = true
			}
		}
	}
	return used, nil
}

// Signal sends sig to every live process of uid and returns how many it reached.
//
// Each process is opened as a pidfd first and its uid checked after: a pid seen in the
// listing may have ended and been reused by an unrelated process, but a pidfd names one
// process for good, so the check and the signal are about the same process. A process
// that ended between the two is simply not signalled (ESRCH).
func Signal(uid uint32, sig syscall.Signal) (int, error) {
	n, _, err := signalAll(uid, sig)
	return n, err
}

// signalAll is Signal, also returning how many live processes of uid the listing showed.
func signalAll(uid uint32, sig syscall.Signal) (int, int, error) {
	list, err := Processes(uid)
	if err != nil {
		return 0, 0, err
	}
	n := 0
	var errs []error
	for _, pid := range list {
		ok, err := signalIfOwned(pid, uid, sig)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			n++
		}
	}
	return n, len(list), errors.Join(errs...)
}

func signalIfOwned(pid int, uid uint32, sig syscall.Signal) (bool, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open process %d: %w", pid, err)
	}
	defer unix.Close(fd)
	st, err := readStatus(pid)
	if err != nil || !st.owns(uid) {
		return false, nil // ended, or the pid now belongs to someone else
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return false, nil
		}
		return false, fmt.Errorf("signal process %d: %w", pid, err)
	}
	return true, nil
}

// pollInterval is how often Wait and Stop look at /proc again.
const pollInterval = 20 * time.Millisecond

// Wait polls until uid has no live process or d has passed, and reports whether none is
// left.
func Wait(uid uint32, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		list, err := Processes(uid)
		if err == nil && len(list) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
}

// Stop kills every process of uid and repeats — a process may fork between the listing and
// the signal — until none is left. A process with SIGKILL pending cannot fork, so every
// round can only shrink what is left unless something outside the uid keeps starting
// processes as it. It gives up after timeout, naming what survived.
func Stop(uid uint32, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, seen, err := signalAll(uid, syscall.SIGKILL)
		if err != nil {
			return fmt.Errorf("stop the processes of uid %d: %w", uid, err)
		}
		if seen == 0 {
			return nil // the usual case at the end of a stage: one pass over /proc
		}
		if n > 0 && Wait(uid, 200*time.Millisecond) {
			return nil
		}
		if time.Now().After(deadline) {
			left, _ := Processes(uid)
			return fmt.Errorf("uid %d still has %d processes after %s of SIGKILL (pids %v): they may be stuck in the kernel (state D)", uid, len(left), timeout, left)
		}
	}
}
