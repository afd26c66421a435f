package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chatops-executor/chatops-executor/emulator"
)

// nsLastPid is the kernel's last allocated pid; writing it makes the next fork take the
// number after it, which is how pid wrap-around is simulated.
const nsLastPid = "/proc/sys/kernel/ns_last_pid"

// nsLastPidLock serialises writers of ns_last_pid across test processes on the host.
const nsLastPidLock = "/tmp/chatops-executor-ns_last_pid.lock"

// decoy is an unrelated program that got a recycled pid, leading its own process group.
type decoy struct {
	pid  int
	wrap *exec.Cmd // the shell that started it and waits for it
}

func (d *decoy) stop() {
	_ = syscall.Kill(d.pid, syscall.SIGKILL)
	_ = d.wrap.Wait()
}

// spawnAtPid starts `sleep 300` (as uid, when not 0) with pid want, in a process group of
// its own. The write to ns_last_pid and the fork happen in one shell: a Go program starts
// threads at will, and each takes a pid.
func spawnAtPid(want int, uid int) (*decoy, error) {
	lock, err := os.OpenFile(nsLastPidLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, err
	}
	saved, err := os.ReadFile(nsLastPid)
	if err != nil {
		return nil, err
	}
	defer func() {
		// Put the counter back where it was, so this host's pids keep going up.
		cur, _ := os.ReadFile(nsLastPid)
		s, _ := strconv.Atoi(strings.TrimSpace(string(saved)))
		c, _ := strconv.Atoi(strings.TrimSpace(string(cur)))
		if s > c {
			_ = os.WriteFile(nsLastPid, saved, 0o644)
		}
	}()
	run := "sleep 300"
	if uid != 0 {
		run = fmt.Sprintf("setpriv --reuid %d --regid %d --clear-groups sleep 300", uid, uid)
	}
	for range 50 {
		if _, err := os.Stat("/proc/" + strconv.Itoa(want)); err == nil {
			return nil, fmt.Errorf("pid %d is in use by another process", want)
		}
		// set -m: the background job leads a process group of its own.
		cmd := exec.Command("bash", "-c", fmt.Sprintf("set -m; echo %d > %s; %s </dev/null >/dev/null 2>&1 & echo $!; wait", want-1, nsLastPid, run))
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		line := make([]byte, 32)
		n, _ := out.Read(line)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(line[:n])))
		d := &decoy{pid: pid, wrap: cmd}
		if pid == want {
			return d, nil
		}
		d.stop() // another fork on the host took the number first
	}
	return nil, errors.New("could not get the pid after 50 tries")
}

var pgidLine = regexp.MustCompile(`PGID (\d+)\n`)

// A stage's process group number is only a number: once the stage is over it can be
// reused by anyone. Cleanup used to kill every group number ever recorded, so a recycled
// number cost an unrelated program its life. Here the build_script's group number is
// recycled (with ns_last_pid) for an unrelated process group before cleanup runs — as
// root, and for run_as as the very same uid — and it must survive.
func TestRecycledProcessGroupIsNotKilled(t *testing.T) {
	requireRoot(t)
	for _, tt := range []struct {
		name, config string
		decoyAs      int
	}{
		{"job_uids", "", 0},
		{"run_as", "run_as = \"nobody\"\n", 65534},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, tt.config+allowAll)
			goFile := filepath.Join(h.public, "go")
			var (
				mu    sync.Mutex
				buf   bytes.Buffer
				once  sync.Once
				decoy *decoy
				dErr  error
			)
			h.runner.TraceSink = writerFunc(func(p []byte) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				buf.Write(p)
				// The job log as GitLab gets it: timestamped lines, commands echoed.
				if !bytes.Contains(buf.Bytes(), []byte("AFTER-2\n")) {
					return len(p), nil
				}
				once.Do(func() {
					defer func() { _ = os.WriteFile(goFile, nil, 0o644) }()
					var pgid int
					if m := pgidLine.FindSubmatch(buf.Bytes()); m != nil {
						pgid, _ = strconv.Atoi(string(m[1]))
					}
					if pgid == 0 {
						dErr = errors.New("the job did not print its process group")
						return
					}
					decoy, dErr = spawnAtPid(pgid, tt.decoyAs)
				})
				return len(p), nil
			})
			res := h.run(context.Background(), emulator.Job{
				Response: response(t, 860, nil),
				Script:   []string{`echo "PGID $(ps -o pgid= -p $$ | tr -d ' ')"`, "echo started"},
				AfterScript: []string{"echo AFTER-$((1+1))",
					"for i in $(seq 300); do [ -e " + goFile + " ] && break; sleep 0.1; done"},
			})
			if dErr != nil {
				t.Skipf("could not recycle the stage's process group number: %v", dErr)
			}
			if decoy == nil {
				t.Fatalf("the after_script never ran:\n%s", res.RawTrace)
			}
			defer decoy.stop()
			if res.State != "success" {
				t.Fatalf("state %s\n%s", res.State, res.RawTrace)
			}
			time.Sleep(100 * time.Millisecond) // a SIGKILL is delivered at once; give it a moment anyway
			if !alive(decoy.pid) {
				t.Errorf("cleanup killed process %d, an unrelated program that got the job's recycled process group number", decoy.pid)
			}
		})
	}
}
