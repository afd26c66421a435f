package jobuser

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts processes as other uids and changes owners")
	}
}

func TestParseRange(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Range
		err  string
	}{
		{"64000-64099", Range{64000, 64099}, ""},
		{" 70000 - 70000 ", Range{70000, 70000}, ""},
		{"64000", Range{}, "want FIRST-LAST"},
		{"64099-64000", Range{}, "first uid 64099 is above last uid 64000"},
		{"0-10", Range{}, "uids below 1000 belong to the system"},
		{"a-b", Range{}, "two decimal uids"},
		{"4294967290-4294967295", Range{}, "(uid_t)-1"},
	} {
		got, err := ParseRange(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want || got.Size() != int(tt.want.Last-tt.want.First)+1 {
			t.Errorf("%q = %v, %v", tt.in, got, err)
		}
	}
}

func TestRandomRangesDiffer(t *testing.T) {
	a, b := RandomRange(100), RandomRange(100)
	if a.Size() != 100 || a.First < 1<<20 || a.Last >= 1<<31 {
		t.Errorf("RandomRange(100) = %v", a)
	}
	if a == b {
		t.Errorf("two random ranges are both %v", a)
	}
}

func TestOverlaps(t *testing.T) {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	os.WriteFile(passwd, []byte("root:x:0:0::/:/bin/sh\nbad line\nci:x:64001:100::/:/bin/sh\n"), 0o644)
	got, err := Range{64000, 64010}.Overlaps(passwd, filepath.Join(dir, "missing"))
	if err != nil || len(got) != 1 || got[0] != (Account{"user", "ci", 64001}) {
		t.Errorf("Overlaps = %v, %v", got, err)
	}
}

func newLeaser(t *testing.T, r Range, busy map[uint32]bool, exists func(int64) bool) *Leaser {
	return &Leaser{Dir: filepath.Join(t.TempDir(), "uids"), Range: r, JobExists: exists,
		inUse: func(Range) (map[uint32]bool, error) { return busy, nil }}
}

func TestLease(t *testing.T) {
	l := newLeaser(t, Range{70000, 70002}, map[uint32]bool{70001: true}, func(int64) bool { return true })
	a, err := l.Lease(1)
	if err != nil || a != 70000 {
		t.Fatalf("first lease = %d, %v", a, err)
	}
	// A retried prepare gets the same uid.
	if again, err := l.Lease(1); err != nil || again != a {
		t.Errorf("second Lease for the same job = %d, %v; want %d", again, err, a)
	}
	// 70001 has processes: skipped.
	b, err := l.Lease(2)
	if err != nil || b != 70002 {
		t.Fatalf("lease of job 2 = %d, %v; want 70002 (70001 is busy)", b, err)
	}
	_, err = l.Lease(3)
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "70000-70002: 2 leased to running jobs, 1 held by processes that outlived their job") {
		t.Errorf("exhausted: %v", err)
	}
	if uid, ok, err := l.Held(2); !ok || err != nil || uid != 70002 {
		t.Errorf("Held(2) = %d %v %v", uid, ok, err)
	}
	if freed, err := l.Release(1); !freed || err != nil {
		t.Errorf("Release(1) = %v, %v", freed, err)
	}
	if _, ok, _ := l.Held(1); ok {
		t.Error("job 1 still holds a uid after Release")
	}
	// Uids rotate: the next lease starts after the last one handed out.
	c, err := l.Lease(4)
	if err != nil || c != 70000 {
		t.Errorf("lease of job 4 = %d, %v", c, err)
	}
	if freed, err := l.Release(99); freed || err != nil {
		t.Errorf("Release of a job without lease = %v, %v", freed, err)
	}
}

func TestLeaseTakesBackStaleLeases(t *testing.T) {
	alive := map[int64]bool{1: true}
	l := newLeaser(t, Range{70000, 70000}, map[uint32]bool{}, func(id int64) bool { return alive[id] })
	if _, err := l.Lease(1); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Lease(2); !errors.Is(err, ErrExhausted) {
		t.Fatalf("lease while job 1 lives: %v", err)
	}
	delete(alive, 1) // job 1's state is gone (its cleanup died after removing it)
	if uid, err := l.Lease(2); err != nil || uid != 70000 {
		t.Errorf("stale lease not taken back: %d, %v", uid, err)
	}
}

func TestLeaseCorruptFile(t *testing.T) {
	l := newLeaser(t, Range{70000, 70001}, nil, nil)
	os.MkdirAll(l.Dir, 0o700)
	os.WriteFile(filepath.Join(l.Dir, "70000"), []byte("garbage"), 0o600)
	if _, err := l.Lease(1); err == nil || !strings.Contains(err.Error(), "70000 is corrupt") {
		t.Errorf("corrupt lease: %v", err)
	}
}

// startAs starts a shell command as uid and reaps it when the test ends.
func startAs(t *testing.T, uid uint32, command string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// Everything of the uid, which the test took at random for itself: sh forks its
		// command, and some tests start processes in other groups.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = Stop(uid, 10*time.Second)
		<-done
	})
	return cmd
}

func TestStopKillsEveryProcessOfTheUidOnly(t *testing.T) {
	needRoot(t)
	r := RandomRange(2)
	mine, other := r.First, r.Last
	pidFile := filepath.Join(t.TempDir(), "pids")
	os.Chmod(filepath.Dir(pidFile), 0o777)
	startAs(t, mine, "setsid sh -c 'echo $$ >> "+pidFile+"; exec sleep 300' & (sleep 300 &) ; sleep 300")
	bystander := startAs(t, other, "sleep 300")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ps, _ := Processes(mine); len(ps) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the test's processes did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	used, err := InUse(r)
	if err != nil || !used[mine] || !used[other] {
		t.Errorf("InUse = %v, %v", used, err)
	}
	if err := Stop(mine, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if ps, _ := Processes(mine); len(ps) != 0 {
		t.Errorf("uid %d still has %v", mine, ps)
	}
	if err := syscall.Kill(bystander.Process.Pid, 0); err != nil {
		t.Errorf("Stop hit a process of another uid: %v", err)
	}
	// The lease of a uid with processes stays taken.
	l := &Leaser{Dir: filepath.Join(t.TempDir(), "uids"), Range: r}
	if _, err := l.Lease(1); err != nil {
		t.Fatal(err) // mine is free now
	}
	l2 := &Leaser{Dir: l.Dir, Range: Range{other, other}}
	if _, err := l2.Lease(2); !errors.Is(err, ErrExhausted) {
		t.Errorf("a uid with a live process was leased: %v", err)
	}
}

func TestReleaseKeepsABusyUid(t *testing.T) {
	needRoot(t)
	r := RandomRange(1)
	l := &Leaser{Dir: filepath.Join(t.TempDir(), "uids"), Range: r}
	uid, err := l.Lease(1)
	if err != nil {
		t.Fatal(err)
	}
	startAs(t, uid, "sleep 300")
	for Wait(uid, 0) { // until the process shows
		time.Sleep(10 * time.Millisecond)
	}
	if freed, err := l.Release(1); freed || err != nil {
		t.Errorf("Release with a live process = %v, %v; want kept", freed, err)
	}
	if _, ok, _ := l.Held(1); !ok {
		t.Error("the lease went while its uid had a process")
	}
}

func TestReadStat(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	if err != nil || st.PGID != syscall.Getpgrp() || st.Start == 0 {
		t.Errorf("ReadStat(self) = %+v, %v", st, err)
	}
	if _, err := ReadStat(1 << 30); err == nil {
		t.Error("ReadStat of a missing pid succeeded")
	}
}

func TestKillGroupLeavesAReusedNumberAlone(t *testing.T) {
	needRoot(t)
	uid := RandomRange(1).First
	cmd := startAs(t, uid, "sleep 300")
	pgid := cmd.Process.Pid
	st, err := ReadStat(pgid)
	if err != nil {
		t.Fatal(err)
	}
	// A record whose leader started at another time names another group: untouched.
	if n, err := KillGroup(pgid, uid, st.Start+1); n != 0 || err != nil {
		t.Errorf("KillGroup with a wrong start time = %d, %v", n, err)
	}
	// Another uid: untouched.
	if n, err := KillGroup(pgid, uid+1, st.Start); n != 0 || err != nil {
		t.Errorf("KillGroup with a wrong uid = %d, %v", n, err)
	}
	if n, err := KillGroup(pgid, uid, st.Start); n < 1 || err != nil {
		t.Errorf("KillGroup = %d, %v", n, err)
	}
}

func TestFreshDir(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	root, err := OpenRoot(filepath.Join(base, "builds"))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if fi, _ := os.Stat(root.Name()); fi.Mode().Perm() != RootMode {
		t.Errorf("builds_dir mode %v", fi.Mode())
	}
	old := filepath.Join(root.Name(), "1")
	os.MkdirAll(filepath.Join(old, "leftover"), 0o755)
	if err := FreshDir(root, "1", 70000, 70000); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(old)
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 70000 || st.Gid != 70000 || fi.Mode().Perm() != 0o700 {
		t.Errorf("build dir %v %d:%d", fi.Mode(), st.Uid, st.Gid)
	}
	if _, err := os.Stat(filepath.Join(old, "leftover")); err == nil {
		t.Error("build dir not fresh")
	}
	target := filepath.Join(base, "target")
	os.Mkdir(target, 0o755)
	os.Symlink(target, filepath.Join(root.Name(), "2"))
	os.WriteFile(filepath.Join(root.Name(), "3"), nil, 0o600)
	for name, want := range map[string]string{"2": "is a symbolic link", "3": "is a file, not a directory"} {
		if err := FreshDir(root, name, 70000, 70000); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("FreshDir over %s: %v, want %q", name, err, want)
		}
	}
	if fi, _ := os.Stat(target); fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Error("the link's target changed hands")
	}
	if err := FreshDir(root, "..", 70000, 70000); err == nil {
		t.Error("FreshDir accepted ..")
	}
}

func TestOpenRootRefusesOthers(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	theirs := filepath.Join(base, "theirs")
	os.Mkdir(theirs, 0o777)
	os.Chown(theirs, 70000, 70000)
	if _, err := OpenRoot(theirs); err == nil || !strings.Contains(err.Error(), "owned by uid 70000") {
		t.Errorf("OpenRoot of a job-owned dir: %v", err)
	}
	os.Symlink(base, filepath.Join(base, "link"))
	if _, err := OpenRoot(filepath.Join(base, "link")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("OpenRoot of a link: %v", err)
	}
}

func TestHandOverAndPark(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	root, err := OpenRoot(filepath.Join(base, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	jobs := Range{70000, 70099}
	// The first job gets a fresh project cache, the upper level root's.
	if n, err := HandOver(root, "ops/infra", 70000, 70000, jobs.Contains); err != nil || n != 0 {
		t.Fatalf("HandOver = %d, %v", n, err)
	}
	proj := filepath.Join(root.Name(), "ops", "infra")
	assertOwner(t, filepath.Join(root.Name(), "ops"), 0, RootMode)
	assertOwner(t, proj, 70000, 0o700)
	// What the job leaves: a file, a directory, a link to a root file, a hard link to a
	// root file, and a file of a real user.
	secret := filepath.Join(base, "secret")
	os.WriteFile(secret, []byte("root only"), 0o600)
	os.MkdirAll(filepath.Join(proj, "sub"), 0o755)
	os.WriteFile(filepath.Join(proj, "sub", "data"), nil, 0o644)
	os.Symlink(secret, filepath.Join(proj, "link"))
	os.Link(secret, filepath.Join(proj, "hard"))
	os.WriteFile(filepath.Join(proj, "users"), nil, 0o644)
	for _, p := range []string{"sub", "sub/data", "link"} {
		os.Lchown(filepath.Join(proj, p), 70000, 70000)
	}
	os.Chown(filepath.Join(proj, "users"), 1000, 1000)
	if err := Park(root, "ops/infra", 70001); err != nil {
		t.Fatal(err)
	}
	assertOwner(t, proj, 70000, 0o700) // another uid's: not parked
	if err := Park(root, "ops/infra", 70000); err != nil {
		t.Fatal(err)
	}
	assertOwner(t, proj, 0, 0o700)
	// The next job of the project takes it all, except what is not a job's.
	n, err := HandOver(root, "ops/infra", 70005, 70005, jobs.Contains)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("skipped %d entries, want 2 (the hard link and the real user's file)", n)
	}
	assertOwner(t, proj, 70005, 0o700)
	assertOwner(t, filepath.Join(proj, "sub", "data"), 70005, 0o644)
	var st syscall.Stat_t
	syscall.Lstat(filepath.Join(proj, "link"), &st)
	if st.Uid != 70005 {
		t.Errorf("the link itself is owned by %d", st.Uid)
	}
	assertOwner(t, secret, 0, 0o600) // neither the link nor the hard link was followed
	assertOwner(t, filepath.Join(proj, "users"), 1000, 0o644)
	// A link where a level should be is refused.
	os.Symlink(base, filepath.Join(root.Name(), "evil"))
	if _, err := HandOver(root, "evil/proj", 70005, 70005, jobs.Contains); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("HandOver through a link: %v", err)
	}
	// A project dir of a real user is refused.
	os.MkdirAll(filepath.Join(root.Name(), "other", "p"), 0o700)
	os.Chown(filepath.Join(root.Name(), "other", "p"), 1000, 1000)
	if _, err := HandOver(root, "other/p", 70005, 70005, jobs.Contains); err == nil || !strings.Contains(err.Error(), "neither root nor a job's uid") {
		t.Errorf("HandOver of a real user's dir: %v", err)
	}
}

func assertOwner(t *testing.T, path string, uid uint32, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Sys().(*syscall.Stat_t).Uid; got != uid || fi.Mode().Perm() != mode {
		t.Errorf("%s: owner %d mode %04o, want %d %04o", path, got, fi.Mode().Perm(), uid, mode)
	}
}

func TestReachable(t *testing.T) {
	base := t.TempDir()
	closed := filepath.Join(base, "closed")
	os.Mkdir(closed, 0o700)
	os.Chmod(closed, 0o700)
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o711)
	os.Chmod(filepath.Dir(base), 0o711)
	os.Chmod(base, 0o711)
	if err := Reachable(filepath.Join(open, "x", "y"), 70000, nil); err != nil {
		t.Errorf("open: %v", err)
	}
	err := Reachable(filepath.Join(closed, "x"), 70000, nil)
	if err == nil || !strings.Contains(err.Error(), "uid 70000 cannot pass through "+closed+" (mode 0700") {
		t.Errorf("closed: %v", err)
	}
	if err := Reachable(closed, 0, nil); err != nil {
		t.Errorf("root: %v", err)
	}
}

func TestRemoveLeftovers(t *testing.T) {
	needRoot(t)
	uid := RandomRange(1).First
	tmp := t.TempDir()
	os.Chmod(tmp, 0o1777)
	mk := func(name string, owner uint32, dir bool) string {
		p := filepath.Join(tmp, name)
		if dir {
			os.MkdirAll(filepath.Join(p, "inner"), 0o755)
			os.WriteFile(filepath.Join(p, "inner", "f"), nil, 0o644)
		} else {
			os.WriteFile(p, nil, 0o644)
		}
		os.Lchown(p, int(owner), int(owner))
		return p
	}
	file, dir := mk("job-file", uid, false), mk("job-dir", uid, true)
	other := mk("someone-else", uid+1, false)
	target := mk("root-target", 0, false)
	link := filepath.Join(tmp, "job-link")
	os.Symlink(target, link)
	os.Lchown(link, int(uid), int(uid))
	n, err := RemoveLeftovers(uid, []string{tmp, filepath.Join(tmp, "missing")})
	if err != nil || n != 3 {
		t.Errorf("RemoveLeftovers = %d, %v; want 3", n, err)
	}
	for _, p := range []string{file, dir, link} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s survived", p)
		}
	}
	for _, p := range []string{other, target} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}
