package stages

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chatops-executor/chatops-executor/jobuser"
)

// How a job's processes are stopped depends on whether the job has a uid of its own.
//
// With a leased uid every process of the uid is the job's, wherever it went: a new session
// (setsid), a new process group (set -m, setpgrp), a double fork re-parented to init. So
// the end of each stage, a cancel and cleanup all act on the uid, found in /proc and
// signalled through pidfds (jobuser.Signal, jobuser.Stop).
//
// Without one (run_as, or an executor that is not root) the uid is shared with other jobs
// and the only handle is the stage's process group, which a process can leave. That is
// the isolation run_as gives up, and `check` says so.

// stopTimeout bounds how long the executor keeps killing a uid's processes.
const stopTimeout = 30 * time.Second

// terminate is the runner's cancel (SIGTERM): every process of a leased uid, or the
// stage's process group, gets sig.
func terminate(u jobUser, pgid int, sig syscall.Signal) {
	_ = syscall.Kill(-pgid, sig)
	if u.Isolation == OwnUID {
		_, _ = jobuser.Signal(u.UID, sig)
	}
}

// endStage stops what the stage's script left behind once it has exited; its leader must
// not have been reaped yet (see waitExit), so the group id still names the stage's group.
func endStage(u jobUser, pgid int) error {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if u.Isolation == OwnUID {
		return jobuser.Stop(u.UID, stopTimeout)
	}
	return nil
}

// groupRecord is a stage's process group as run recorded it for cleanup: the number is
// only trusted together with the uid and the leader's start time.
type groupRecord struct {
	PGID  int
	UID   uint32
	Start uint64
}

// RecordGroup notes a running stage's process group, its uid and its leader's start time,
// so that cleanup can kill what is left of it if the runner had to SIGKILL this executor.
func (s State) RecordGroup(pgid int, uid uint32) error {
	st, err := jobuser.ReadStat(pgid)
	if err != nil {
		return fmt.Errorf("record process group: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, "pgids"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record process group: %w", err)
	}
	_, werr := fmt.Fprintf(f, "%d %d %d\n", pgid, uid, st.Start)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("record process group: %w", werr)
	}
	return nil
}

// groups returns the process groups recorded by RecordGroup.
func (s State) groups() ([]groupRecord, error) {
	f, err := os.Open(filepath.Join(s.Dir, "pgids"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read process groups: %w", err)
	}
	defer f.Close()
	var out []groupRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue // an older executor's bare number: not safe to act on
		}
		pgid, err1 := strconv.Atoi(fields[0])
		uid, err2 := strconv.ParseUint(fields[1], 10, 32)
		start, err3 := strconv.ParseUint(fields[2], 10, 64)
		if err1 == nil && err2 == nil && err3 == nil && pgid > 1 {
			out = append(out, groupRecord{PGID: pgid, UID: uint32(uid), Start: start})
		}
	}
	return out, sc.Err()
}

// stopLeftovers, in cleanup, stops every process the job left: all of its leased uid's,
// else what is left of the process groups its stages recorded. It returns the leased uid
// (0 and false without one).
func (s *Stages) stopLeftovers(jobID int64, st State) (uint32, bool, error) {
	if l, ok := s.leaser(); ok {
		uid, held, err := l.Held(jobID)
		if err != nil {
			return 0, false, err
		}
		if held {
			return uid, true, jobuser.Stop(uid, stopTimeout)
		}
	}
	groups, err := st.groups()
	if err != nil {
		return 0, false, err
	}
	for _, g := range groups {
		if _, err := jobuser.KillGroup(g.PGID, g.UID, g.Start); err != nil {
			return 0, false, err
		}
	}
	return 0, false, nil
}
