package stages

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/jobuser"
)

// leasedFixture is a fixture whose jobs run as uids of their own, with directories a
// job's uid can pass through.
func leasedFixture(t *testing.T) *fixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: jobs run as leased uids")
	}
	f := newFixture(t, nil)
	for _, d := range []string{filepath.Dir(f.dir), f.dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	f.stages.Cfg.Executor.RunAs = ""
	f.stages.Cfg.Executor.JobUIDs = jobuser.RandomRange(3).String()
	return f
}

// The runner retries a prepare that failed: the retry must find the uid the first
// attempt leased, not take a second one.
func TestPrepareTwiceKeepsTheLease(t *testing.T) {
	f := leasedFixture(t)
	ctx := context.Background()
	if err := f.stages.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := f.state().ReadJob()
	if err := f.stages.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	second, _ := f.state().ReadJob()
	if first.Isolation != OwnUID || first.UID == 0 || second.UID != first.UID {
		t.Errorf("prepare twice: uid %d (%s), then %d", first.UID, first.Isolation, second.UID)
	}
	leases, _ := filepath.Glob(filepath.Join(f.dir, "state", "uids", "[0-9]*"))
	if len(leases) != 1 {
		t.Errorf("leases after two prepares of one job: %v", leases)
	}
	// The stage runs as that uid, with no group but its own and no_new_privs.
	if err := f.stages.Run(ctx, f.script(`echo "$(id -u) $(id -G) $(grep NoNewPrivs /proc/self/status | tr -d '\t') nproc=$(ulimit -u)"`), "build_script"); err != nil {
		t.Fatalf("run: %v\n%s", err, f.stdout)
	}
	uid := strconv.FormatUint(uint64(first.UID), 10)
	want := uid + " " + uid + " NoNewPrivs:1 nproc=" + strconv.Itoa(jobProcessLimit) + "\n"
	if !strings.Contains(f.stdout.String(), want) {
		t.Errorf("job output lacks %q:\n%s", want, f.stdout)
	}
	if err := f.stages.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if leases, _ := filepath.Glob(filepath.Join(f.dir, "state", "uids", "[0-9]*")); len(leases) != 0 {
		t.Errorf("leases after cleanup: %v", leases)
	}
}

func TestPrepareFailsWhenTheRangeIsExhausted(t *testing.T) {
	f := leasedFixture(t)
	r := jobuser.RandomRange(1)
	f.stages.Cfg.Executor.JobUIDs = r.String()
	l, _ := f.stages.leaser()
	if _, err := l.Lease(1); err != nil { // another job holds the only uid
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(f.dir, "state", "1"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := f.stages.Prepare(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no free uid in executor.job_uids "+r.String()+": 1 leased to running jobs") {
		t.Errorf("prepare with no free uid: %v", err)
	}
}

// As root with neither job_uids nor run_as, jobs would run as root: prepare refuses.
func TestPrepareRefusesToRunJobsAsRootByDefault(t *testing.T) {
	f := newFixture(t, nil)
	f.stages.Cfg.Executor.RunAs = ""
	f.stages.Geteuid = func() int { return 0 }
	err := f.stages.Prepare(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the executor runs as root and neither executor.job_uids nor executor.run_as is set") {
		t.Errorf("prepare: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "builds", "4242")); err == nil {
		t.Error("prepare made a build dir for a job it refused")
	}
}

// Not root, the executor cannot change uids: the job log says so, and asking for
// job_uids is an error rather than a silent downgrade.
func TestNotRootSaysJobsCannotChangeUids(t *testing.T) {
	euid := os.Geteuid()
	if euid == 0 {
		euid = 1000 // pretend; root can hand the build dir to anyone
	}
	f := newFixture(t, nil)
	f.stages.Cfg.Executor.RunAs = ""
	f.stages.Geteuid = func() int { return euid }
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := strconv.Itoa(euid)
	if want := "warning: the executor runs as uid " + n + ", not root, so it cannot change uids: the job runs as uid " + n + " with the executor's own rights"; !strings.Contains(f.stdout.String(), want) {
		t.Errorf("job log lacks %q:\n%s", want, f.stdout)
	}
	g := newFixture(t, nil)
	g.stages.Cfg.Executor.RunAs = ""
	g.stages.Cfg.Executor.JobUIDs = "64000-64099"
	g.stages.Geteuid = func() int { return euid }
	if err := g.stages.Prepare(context.Background()); err == nil || !strings.Contains(err.Error(), "executor.job_uids needs the executor to run as root to change uids, and it runs as uid "+n) {
		t.Errorf("job_uids when not root: %v", err)
	}
}

// When the runner had to SIGKILL the executor mid-stage, the job's processes are still
// there at cleanup, in any session: cleanup stops them all and only then frees the uid.
func TestCleanupStopsEveryProcessOfTheUid(t *testing.T) {
	f := leasedFixture(t)
	ctx := context.Background()
	if err := f.stages.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	rec, _ := f.state().ReadJob()
	for _, script := range []string{"setsid sleep 300", "sleep 300"} {
		cmd := exec.Command("sh", "-c", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: rec.UID, Gid: rec.GID, Groups: []uint32{}}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = cmd.Wait() }()
	}
	for jobuser.Wait(rec.UID, 0) { // until they show
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.stages.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if left, _ := jobuser.Processes(rec.UID); len(left) != 0 {
		t.Errorf("uid %d still has %v after cleanup", rec.UID, left)
	}
	if leases, _ := filepath.Glob(filepath.Join(f.dir, "state", "uids", "[0-9]*")); len(leases) != 0 {
		t.Errorf("leases after cleanup: %v", leases)
	}
}
