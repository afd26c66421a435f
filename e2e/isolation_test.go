package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/emulator"
	"github.com/chatops-executor/chatops-executor/jobuser"
)

// These tests attack the executor from inside real jobs, as real uids: they need root.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: jobs run as uids leased from executor.job_uids, which only root can switch to")
	}
}

var runningAs = regexp.MustCompile(`Running as uid (\d+), leased to this job alone`)

// leasedUID is the uid the job log says the job ran as; it must be from the host's range.
func (h *host) leasedUID(res *emulator.Result) uint32 {
	h.t.Helper()
	m := runningAs.FindSubmatch(res.RawTrace)
	if m == nil {
		h.t.Fatalf("job log does not say which uid the job ran as:\n%s", res.RawTrace)
	}
	n, _ := strconv.ParseUint(string(m[1]), 10, 32)
	if !h.uids.Contains(uint32(n)) {
		h.t.Fatalf("job ran as uid %d, outside the host's job_uids %s", n, h.uids)
	}
	return uint32(n)
}

// assertNoProcesses checks that nothing of uid is left running.
func assertNoProcesses(t *testing.T, uid uint32) {
	t.Helper()
	if !jobuser.Wait(uid, 5*time.Second) {
		left, _ := jobuser.Processes(uid)
		t.Errorf("uid %d still has processes after its job's cleanup: %v", uid, left)
	}
}

// The takeover: a job anyone may run leaves a loop behind that waits for the
// next job, rewrites what it finds in that job's build dir and reads its processes'
// environment. The later job, with its deploy token, must run untouched, and the loop
// must be gone by the time it starts.
func TestCrossJobTakeover(t *testing.T) {
	requireRoot(t)
	h := newHost(t, allowAll)
	loot := filepath.Join(h.public, "loot")
	builds := filepath.Join(h.dir, "builds")
	loop := fmt.Sprintf(`setsid sh -c 'echo $$ > %[1]s.pid; while :; do
  for d in %[2]s/*/; do echo "echo ATTACKER-WAS-HERE" > "$d/evil.sh" 2>/dev/null; cp "$d"/ops/infra/*.sh "$d"/ops/infra/.. 2>/dev/null; done
  for f in /proc/[0-9]*/environ; do tr "\0" "\n" < "$f" 2>/dev/null; done | grep -e DEPLOY_TOKEN -e CI_JOB_TOKEN >> %[1]s
  sleep 0.05
done' </dev/null >/dev/null 2>&1 &`, loot, builds)
	attacker := h.run(context.Background(), emulator.Job{
		Response: response(t, 800, map[string]string{"CHAT_INPUT": "status"}),
		Script:   []string{loop, "sleep 0.5", "echo status: all good"},
	})
	if attacker.State != "success" {
		t.Fatalf("attacker job: state %s\n%s", attacker.State, attacker.RawTrace)
	}
	uid := h.leasedUID(attacker)
	assertNoProcesses(t, uid)
	h.assertClean(800)

	const victimToken = "dt-victim-only-5f1e2d"
	victim := h.run(context.Background(), emulator.Job{
		Response: response(t, 801, map[string]string{"DEPLOY_TOKEN": victimToken}),
		Script:   []string{"sleep 1", `echo "deploying with ${#DEPLOY_TOKEN}-character token"`, "ls -a $CI_BUILDS_DIR"},
	})
	if victim.State != "success" {
		t.Fatalf("victim job: state %s\n%s", victim.State, victim.RawTrace)
	}
	if bytes.Contains(victim.RawTrace, []byte("ATTACKER-WAS-HERE")) || bytes.Contains(victim.RawTrace, []byte("evil.sh")) {
		t.Errorf("the attacker's loop reached the next job:\n%s", victim.RawTrace)
	}
	// The loop read its own job's tokens while that job ran; the victim's must not be there.
	if data, _ := os.ReadFile(loot); bytes.Contains(data, []byte(victimToken)) {
		t.Errorf("the attacker's loop read the victim's DEPLOY_TOKEN")
	}
	if h.leasedUID(victim) == uid {
		t.Errorf("the victim got the attacker's uid %d straight away (uids should rotate)", uid)
	}
}

// A job must not reach anything of the executor: its environment (the Slack token the
// runner gave it), the token files, state_dir with other jobs' raw output and the outbox,
// the leases, the audit log — nor plant a reply in its own outbox.
func TestExecutorSecretsUnreachableFromJob(t *testing.T) {
	requireRoot(t)
	dir := traversableTempDir(t)
	slackFile := filepath.Join(dir, "slack-token")
	gitlabFile := filepath.Join(dir, "gitlab-token")
	audit := filepath.Join(dir, "audit", "audit.jsonl")
	for _, f := range []string{slackFile, gitlabFile} {
		if err := os.WriteFile(f, []byte(slackToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := newHost(t, fmt.Sprintf("[gitlab]\ntoken_file = %q\nverify_identity = false\n[policy]\ndefault = \"allow\"\naudit_log = %q\n", gitlabFile, audit))
	// A job of another chat user runs beside the attacker, its raw output in state_dir.
	other := make(chan *emulator.Result, 1)
	go func() {
		res, _ := h.runner.Run(context.Background(), emulator.Job{
			Response: response(t, 821, nil),
			Script:   []string{"echo other-job-output-$DEPLOY_TOKEN", "sleep 3"},
		})
		other <- res
	}()
	state := filepath.Join(h.dir, "state")
	probe := func(what, cmd string) string {
		return fmt.Sprintf(`if %s >/dev/null 2>&1; then echo "REACHED %s"; else echo "denied %s"; fi`, cmd, what, what)
	}
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 820, nil),
		Script: []string{
			"sleep 1",
			probe("executor environment", "grep -a SLACK_BOT_TOKEN /proc/$PPID/environ"),
			probe("runner environment", "grep -a SLACK_BOT_TOKEN /proc/[0-9]*/environ"),
			probe("slack token file", "cat "+slackFile),
			probe("gitlab token file", "cat "+gitlabFile),
			probe("audit log", "cat "+audit),
			probe("state dir", "ls "+state),
			probe("other job's state", "ls "+filepath.Join(state, "821")),
			probe("own state", "ls "+filepath.Join(state, "820")),
			probe("leases", "ls "+filepath.Join(state, "uids")),
			probe("outbox", "touch "+filepath.Join(state, "outbox", "820", "planted")),
			probe("builds dir listing", "ls "+filepath.Join(h.dir, "builds")),
			probe("other job's build dir", "ls "+filepath.Join(h.dir, "builds", "821")),
			probe("runner's temp dir", "ls "+filepath.Join(h.dir, "runner")),
			"echo probes done",
		},
	})
	if res.State != "success" {
		t.Fatalf("state %s\n%s", res.State, res.RawTrace)
	}
	trace := string(res.RawTrace)
	if regexp.MustCompile(`(?m)^REACHED`).MatchString(trace) || !strings.Contains(trace, "\nprobes done\n") {
		t.Errorf("the job reached the executor's things:\n%s", trace)
	}
	for _, s := range []string{slackToken, "other-job-output"} {
		if strings.Contains(trace, s) {
			t.Errorf("job log holds %q", s)
		}
	}
	if o := <-other; o == nil || o.State != "success" {
		t.Errorf("the other job failed: %+v", o)
	}
}

// run_as (one named user) and job_uids must each run a real job to the end: the stage
// script reaches the job's user, and its build dir is its own.
func TestRunAsAndJobUIDsRunARealJob(t *testing.T) {
	requireRoot(t)
	for _, tt := range []struct{ name, config string }{
		{"job_uids", ""},
		{"run_as", "run_as = \"nobody\"\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHost(t, tt.config+allowAll)
			res := h.run(context.Background(), emulator.Job{
				Response: response(t, 830, nil),
				Script: []string{
					`echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"`,
					`echo "build dir: $(stat -c '%u %a' $CI_BUILDS_DIR)"`,
					`echo hello > greeting && cat greeting`,
					`echo "home=$HOME"`,
				},
				AfterScript: []string{"echo after as $(id -u)"},
			})
			if res.State != "success" {
				t.Fatalf("state %s (%v)\n%s", res.State, res.Err, res.RawTrace)
			}
			trace := string(res.RawTrace)
			uid := "65534"
			if tt.name == "job_uids" {
				uid = strconv.FormatUint(uint64(h.leasedUID(res)), 10)
				if !strings.Contains(trace, "uid="+uid+" gid="+uid+" groups="+uid+"\n") {
					t.Errorf("a leased uid must have its own gid and no other group:\n%s", trace)
				}
			} else if !strings.Contains(trace, "warning: running as run_as user nobody (uid 65534), which every job of this runner shares") {
				t.Errorf("job log does not say what run_as gives up:\n%s", trace)
			}
			for _, want := range []string{"build dir: " + uid + " 700\n", "hello\n", "after as " + uid + "\n"} {
				if !strings.Contains(trace, want) {
					t.Errorf("job log lacks %q:\n%s", want, trace)
				}
			}
			h.assertClean(830)
		})
	}
}

// The project's cache belongs to the job that runs, and goes back to root when it ends.
func TestCacheHandedToTheJob(t *testing.T) {
	requireRoot(t)
	h := newHost(t, allowAll)
	cache := filepath.Join(h.dir, "cache", "ops", "infra")
	for i, id := range []int64{840, 841} {
		res := h.run(context.Background(), emulator.Job{
			Response: response(t, id, nil),
			Script:   []string{"cat " + cache + "/count 2>/dev/null || echo none", "echo " + strconv.Itoa(i) + " > " + cache + "/count"},
		})
		if res.State != "success" {
			t.Fatalf("job %d: state %s\n%s", id, res.State, res.RawTrace)
		}
		want := "none\n"
		if i == 1 {
			want = "\n0\n"
		}
		if !strings.Contains(string(res.RawTrace), want) {
			t.Errorf("job %d log lacks %q:\n%s", id, want, res.RawTrace)
		}
		fi, err := os.Stat(cache)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 || owner(fi) != 0 {
			t.Errorf("after job %d the project cache is %v owned by %d, want 0700 root", id, fi.Mode(), owner(fi))
		}
	}
}

// A link planted where the job's build dir or cache will be is refused, never followed:
// with the old layout a job could write builds_dir, and prepare's chown followed the link
// to hand a root-owned directory to the job user.
func TestPlantedSymlinkIsNotFollowed(t *testing.T) {
	requireRoot(t)
	for _, where := range []string{"builds/850", "cache/ops/infra"} {
		t.Run(where, func(t *testing.T) {
			t.Parallel()
			h := newHost(t, allowAll)
			victim := filepath.Join(h.dir, "victim")
			if err := os.Mkdir(victim, 0o755); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(h.dir, where)
			if err := os.MkdirAll(filepath.Dir(link), 0o711); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, link); err != nil {
				t.Fatal(err)
			}
			res := h.run(context.Background(), emulator.Job{Response: response(t, 850, nil), Script: []string{"touch planted-file", "pwd"}})
			if want := link + " is a symbolic link, not a directory: refusing to follow it"; !strings.Contains(string(res.RawTrace), want) {
				t.Errorf("job log does not name the cause %q:\n%s", want, res.RawTrace)
			}
			if where == "cache/ops/infra" && (res.State != "failed" || res.FailureReason != emulator.RunnerSystemFailure) {
				// Nothing of the executor removes a cache: every attempt refuses it.
				t.Errorf("state %s reason %s, want a system failure\n%s", res.State, res.FailureReason, res.RawTrace)
			}
			// A planted build dir link is removed (not followed) by the cleanup after the
			// refused attempt, and the runner's retry then gets a fresh directory.
			if entries, _ := os.ReadDir(victim); len(entries) > 0 {
				t.Errorf("the job wrote through the link into %s", victim)
			}
			fi, err := os.Stat(victim)
			if err != nil {
				t.Fatal(err)
			}
			if owner(fi) != 0 || fi.Mode().Perm() != 0o755 {
				t.Errorf("the link's target was changed: %v owned by %d", fi.Mode(), owner(fi))
			}
		})
	}
}

// 50 jobs at once, each with a secret of its own in its environment and its build dir,
// each trying to read everyone else's: none may see another's.
func TestFiftyConcurrentJobsCannotReadOneAnother(t *testing.T) {
	requireRoot(t)
	h := newHost(t, allowAll)
	const n = 50
	secret := func(i int) string { return fmt.Sprintf("sekrit-%02d-%x", i, time.Now().UnixNano()%1e6) }
	secrets := make([]string, n)
	for i := range secrets {
		secrets[i] = secret(i)
	}
	builds := filepath.Join(h.dir, "builds")
	results := make([]*emulator.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = h.runner.Run(context.Background(), emulator.Job{
				Response: response(t, int64(2000+i), map[string]string{"MY_SECRET": secrets[i]}),
				Script: []string{
					`echo "$MY_SECRET" > mine`,
					"sleep 20 & sleep 2", // the background sleep holds the secret in its environment
					"{ for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done; } 2>/dev/null | grep -o 'sekrit-[0-9a-f-]*' | sort -u || true",
					"cat " + builds + "/*/mine " + builds + "/*/*/*/mine 2>/dev/null || true",
					"ls " + builds + " 2>&1 | head -3 || true",
					"echo done",
				},
			})
		}(i)
	}
	wg.Wait()
	leaked := 0
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("job %d: %v", i, errs[i])
		}
		res := results[i]
		if res.State != "success" || !bytes.Contains(res.RawTrace, []byte("done\n")) {
			t.Errorf("job %d: state %s\n%s", i, res.State, res.RawTrace)
			continue
		}
		for j, s := range secrets {
			if j != i && bytes.Contains(res.RawTrace, []byte(s)) {
				leaked++
			}
		}
		h.assertClean(int64(2000 + i))
	}
	if leaked > 0 {
		t.Errorf("%d times a job read another job's secret", leaked)
	}
}

func owner(fi os.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return 1<<32 - 1
}

// What a job leaves in /tmp, /dev/shm or System V IPC would belong to the next job
// leased its uid: cleanup removes it.
func TestLeftoversOfTheUidAreRemoved(t *testing.T) {
	requireRoot(t)
	h := newHost(t, allowAll)
	name := fmt.Sprintf("chatops-e2e-leftover-%d", time.Now().UnixNano())
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 870, nil),
		Script: []string{
			"echo secret > /tmp/" + name,
			"mkdir -p /dev/shm/" + name + "/deep && echo secret > /dev/shm/" + name + "/deep/f",
			"ipcmk -M 4096 && ipcmk -Q && ipcmk -S 1",
		},
	})
	if res.State != "success" {
		t.Fatalf("state %s\n%s", res.State, res.RawTrace)
	}
	uid := h.leasedUID(res)
	for _, p := range []string{"/tmp/" + name, "/dev/shm/" + name} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s outlived the job", p)
			os.RemoveAll(p)
		}
	}
	for _, f := range []string{"shm", "msg", "sem"} {
		data, _ := os.ReadFile("/proc/sysvipc/" + f)
		for _, line := range strings.Split(string(data), "\n")[1:] {
			if fields := strings.Fields(line); len(fields) > 7 && strings.Contains(" "+strings.Join(fields[4:10], " ")+" ", " "+strconv.FormatUint(uint64(uid), 10)+" ") {
				t.Errorf("the job's System V %s outlived it: %s", f, line)
			}
		}
	}
}

// An executor that is not root cannot change uids: the job runs as the executor's user,
// and the job log says plainly what that means. (The test is root, so it runs the
// executor as nobody through setpriv.)
func TestNotRootExecutorSaysUidsCannotChange(t *testing.T) {
	requireRoot(t)
	const nobody = 65534
	h := newHost(t, allowAll+"# no job_uids: the executor is not root\n")
	for _, d := range []string{"builds", "cache", "state", "runner"} {
		p := filepath.Join(h.dir, d)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(h.config, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(h.dir, "as-nobody")
	// The emulated runner is root and writes its files (job response, scripts) as root; a
	// runner running as nobody would have written them as nobody.
	script := fmt.Sprintf("#!/bin/sh\nchown -R %d:%d \"$TMPDIR\"\nexec setpriv --reuid=%d --regid=%d --clear-groups %s \"$@\"\n", nobody, nobody, nobody, nobody, binary)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h.runner.Executable = wrapper
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 880, nil),
		Script:   []string{`echo "job uid $(id -u)"`},
	})
	if res.State != "success" {
		t.Fatalf("state %s (%v)\n%s", res.State, res.Err, res.RawTrace)
	}
	trace := string(res.RawTrace)
	for _, want := range []string{
		"chatops-executor: warning: the executor runs as uid 65534, not root, so it cannot change uids: the job runs as uid 65534 with the executor's own rights",
		"\njob uid 65534\n",
	} {
		if !strings.Contains(trace, want) {
			t.Errorf("job log lacks %q:\n%s", want, trace)
		}
	}
	h.assertClean(880)
}
