package jobuser

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Stat is what /proc/<pid>/stat tells about a process's identity over time.
type Stat struct {
	PGID  int
	Start uint64 // clock ticks after boot: with the pid, names one process for good
}

// ReadStat reads pid's process group and start time.
func ReadStat(pid int) (Stat, error) {
	data, err := os.ReadFile(procDir + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	// The command name (field 2) may hold spaces and parentheses: fields count from the
	// last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("process %d: malformed stat", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); pgrp is field 5, starttime field 22.
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("process %d: malformed stat", pid)
	}
	pgid, err1 := strconv.Atoi(f[2])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return Stat{}, fmt.Errorf("process %d: malformed stat", pid)
	}
	return Stat{PGID: pgid, Start: start}, nil
}

// KillGroup kills what is left of a process group a stage ran in, for runs where the job
// has no uid of its own (run_as, or an executor that is not root). A group id is only a
// number: once the group is empty it can be reused by anyone, so only processes that are
// in the group, run as uid, and started no earlier than the group's leader did (start) are
// killed, and nothing at all when the number now leads a different group (its leader has
// another start time). It returns how many processes it signalled.
func KillGroup(pgid int, uid uint32, start uint64) (int, error) {
	if pgid <= 1 {
		return 0, nil
	}
	if lead, err := ReadStat(pgid); err == nil && lead.Start != start {
		return 0, nil // reused
	}
	all, err := pids()
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, pid := range all {
		if st, err := ReadStat(pid); err != nil || st.PGID != pgid || st.Start < start {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		// Checked again through the pidfd's process: the pid may have been reused since.
		st, serr := ReadStat(pid)
		ps, perr := readStatus(pid)
		if serr == nil && perr == nil && st.PGID == pgid && st.Start >= start && ps.uids[0] == uid && ps.live() {
			if err := unix.PidfdSendSignal(fd, syscall.SIGKILL, nil, 0); err == nil {
				n++
			} else if !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("signal process %d: %w", pid, err))
			}
		}
		unix.Close(fd)
	}
	return n, errors.Join(errs...)
}
