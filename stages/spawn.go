package stages

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// scriptFile copies the runner's stage script into a sealed memfd, handed to the shell as
// /dev/fd/3. The runner writes the script 0700 in its private temporary directory; bash
// re-opens /dev/fd/3 by path, which for a plain file checks the runner's file and fails for
// any other uid. A memfd is readable through /proc/self/fd by the process that holds it
// and by no one else (another uid cannot open its /proc/<pid>/fd), and once sealed not
// even the job can change what later reads of it see.
func scriptFile(path string) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open stage script: %w", err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("stage-script", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("stage script: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "stage-script")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, fmt.Errorf("copy stage script: %w", err)
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal stage script: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("stage script: %w", err)
	}
	return f, nil
}

// jobProcessLimit is RLIMIT_NPROC for a job with a leased uid: the uid is the job's alone,
// so this bounds the job's processes, and a fork bomb cannot outrun the executor stopping
// the uid.
const jobProcessLimit = 4096

// startScript starts cmd. A job with a leased uid is started with no_new_privs: a setuid
// file a job left anywhere on the host (such as a copy of a shell, setuid to its uid in
// /tmp) would otherwise let a later job become that uid while another job holds it, and
// setuid-root programs could not help a job that has no account anyway. It also gets
// RLIMIT_NPROC (jobProcessLimit), set on the executor for the moment of the fork: root is
// not held to it, the job's uid is.
//
// no_new_privs belongs to a thread and is inherited by what it forks, so it is set on a
// thread locked to this goroutine, which starts the child and is then discarded (the
// goroutine ends without unlocking, so the runtime retires the thread).
func startScript(cmd *exec.Cmd, noNewPrivs bool) error {
	if !noNewPrivs {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			errc <- fmt.Errorf("set no_new_privs: %w", err)
			return
		}
		var old unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NPROC, &old); err != nil {
			errc <- fmt.Errorf("read RLIMIT_NPROC: %w", err)
			return
		}
		lim := unix.Rlimit{Cur: jobProcessLimit, Max: jobProcessLimit}
		if err := unix.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
			errc <- fmt.Errorf("set RLIMIT_NPROC: %w", err)
			return
		}
		err := cmd.Start()
		_ = unix.Setrlimit(unix.RLIMIT_NPROC, &old)
		errc <- err
	}()
	return <-errc
}

// waitExit blocks until process pid has exited, without reaping it: while it is a zombie
// its pid, and the process group it leads, cannot be reused, so the group can be killed
// safely before cmd.Wait lets the number go.
func waitExit(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}
