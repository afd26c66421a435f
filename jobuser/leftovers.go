package jobuser

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SharedTempDirs are the world-writable directories where a job's files outlive it unless
// removed: a later job leased the same uid would own them, and could read what an earlier
// job left or find files an earlier job planted for it.
var SharedTempDirs = []string{"/tmp", "/var/tmp", "/dev/shm"}

// RemoveLeftovers deletes what uid left behind outside its directories, once it has no
// process: the entries it owns at the top of dirs (with everything under them, links
// removed, never followed), and its System V shared memory segments, semaphore sets and
// message queues. It returns how many things it removed.
func RemoveLeftovers(uid uint32, dirs []string) (int, error) {
	n := 0
	var errs []error
	for _, d := range dirs {
		k, err := removeOwned(d, uid)
		n += k
		if err != nil {
			errs = append(errs, err)
		}
	}
	k, err := removeIPC(uid)
	n += k
	if err != nil {
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

func removeOwned(dir string, uid uint32) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return 0, nil
	}
	if err != nil {
		return 0, notPlainDir(dir, err)
	}
	defer unix.Close(fd)
	names, err := readNames(fd, dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Uid != uid {
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := unix.Unlinkat(fd, name, 0); err == nil {
				n++
			}
			continue
		}
		// os.RemoveAll works with openat/unlinkat and never follows a link; dir itself is
		// root's (a sticky /tmp), so only uid's entry can be renamed under us, and uid has
		// no process left to do it.
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return n, fmt.Errorf("remove uid %d's %s: %w", uid, filepath.Join(dir, name), err)
		}
		n++
	}
	return n, nil
}

// removeIPC removes uid's System V IPC objects, listed in /proc/sysvipc (an object is
// removed when its owner or creator is uid).
func removeIPC(uid uint32) (int, error) {
	n := 0
	var errs []error
	for _, kind := range []struct {
		file    string
		uidCols [2]int // owner uid and creator uid columns
		idCol   int
		remove  func(id int) error
	}{
		{"shm", [2]int{7, 9}, 1, func(id int) error { _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); return err }},
		{"sem", [2]int{4, 6}, 1, semRemove},
		{"msg", [2]int{7, 9}, 1, msgRemove},
	} {
		f, err := os.Open(procDir + "/sysvipc/" + kind.file)
		if err != nil {
			continue // no System V IPC in this kernel
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			cols := strings.Fields(sc.Text())
			if len(cols) <= max(kind.uidCols[0], kind.uidCols[1]) {
				continue
			}
			if cols[kind.uidCols[0]] != strconv.FormatUint(uint64(uid), 10) && cols[kind.uidCols[1]] != strconv.FormatUint(uint64(uid), 10) {
				continue
			}
			id, err := strconv.Atoi(cols[kind.idCol])
			if err != nil {
				continue
			}
			if err := kind.remove(id); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EIDRM) {
				errs = append(errs, fmt.Errorf("remove uid %d's System V %s %d: %w", uid, kind.file, id, err))
				continue
			}
			n++
		}
		f.Close()
	}
	return n, errors.Join(errs...)
}

// semctl(id, 0, IPC_RMID) and msgctl(id, IPC_RMID, NULL), which x/sys/unix does not wrap.
func semRemove(id int) error {
	return errnoErr(unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, unix.IPC_RMID, 0, 0, 0))
}

func msgRemove(id int) error {
	return errnoErr(unix.Syscall(unix.SYS_MSGCTL, uintptr(id), unix.IPC_RMID, 0))
}

func errnoErr(_, _ uintptr, e unix.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}
