package config

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"

	"github.com/chatops-executor/chatops-executor/jobuser"
)

// Host is what Check needs to know about the machine beyond the file system it can look
// at: who the executor runs as, where accounts are listed and the runner's own config.
type Host struct {
	Euid          int
	Passwd, Group string // account files, normally /etc/passwd and /etc/group
	// RunnerConfig is gitlab-runner's config.toml, read for `concurrent`; "" or a missing
	// file skips that check.
	RunnerConfig string
}

// DefaultRunnerConfig is where a packaged gitlab-runner keeps its config when run as root.
const DefaultRunnerConfig = "/etc/gitlab-runner/config.toml"

// ThisHost describes the machine the executor is running on.
func ThisHost() Host {
	return Host{Euid: os.Geteuid(), Passwd: "/etc/passwd", Group: "/etc/group", RunnerConfig: DefaultRunnerConfig}
}

// checkIsolation reports what isolation the config gives jobs on h, and setups that cannot
// work: a job user that cannot reach its directories, a uid range overlapping real
// accounts or smaller than the runner's concurrent.
func (c *Config) checkIsolation(h Host) []Problem {
	var ps []Problem
	add := func(key string, warning bool, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Warning: warning, Msg: fmt.Sprintf(format, args...)})
	}
	e := c.Executor
	root := h.Euid == 0
	switch {
	case !root && e.JobUIDs != "":
		add("executor.job_uids", false, "a uid per job needs the executor to run as root to change uids (it runs as uid %d): prepare fails every job", h.Euid)
	case !root && e.RunAs != "":
		add("executor.run_as", false, "running job scripts as %q needs the executor to run as root (it runs as uid %d)", e.RunAs, h.Euid)
	case !root:
		add("executor.job_uids", true, "the executor runs as uid %d, not root, so it cannot change uids: every job runs as uid %d with the executor's own rights, and can read state_dir (other jobs' raw output, the outbox), the token files, the audit log and the executor's environment; run gitlab-runner as root with job_uids to isolate jobs", h.Euid, h.Euid)
	case e.RunAs == "" && e.JobUIDs == "":
		add("executor.job_uids", false, `not set, and neither is run_as: the executor runs as root and jobs never run as root unless the config says so, so prepare fails every job; set job_uids = "64000-64099" (or run_as = "root" to run jobs as root knowingly)`)
	case e.RunAs == "root":
		add("executor.run_as", true, `"root": jobs run as root and can reach everything on this host, the executor's token files, state and environment included`)
	case e.RunAs != "":
		ps = append(ps, c.checkRunAs(h)...)
	default:
		ps = append(ps, c.checkJobUIDs(h)...)
	}
	return ps
}

func (c *Config) checkRunAs(h Host) []Problem {
	var ps []Problem
	u, err := user.Lookup(c.Executor.RunAs)
	if err != nil {
		return []Problem{{Key: "executor.run_as", Msg: fmt.Sprintf("no such user %q on this host", c.Executor.RunAs)}}
	}
	uid64, _ := strconv.ParseUint(u.Uid, 10, 32)
	uid := uint32(uid64)
	var gids []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				gids = append(gids, uint32(n))
			}
		}
	}
	ps = append(ps, Problem{Key: "executor.run_as", Warning: true, Msg: fmt.Sprintf(
		"every job runs as %s (uid %d): jobs share one uid, so a job can signal, trace and read the environment of jobs running beside or after it, read and change their files, and a process that leaves its process group (setsid) outlives cleanup; job_uids gives each job a uid of its own", c.Executor.RunAs, uid)})
	ps = append(ps, c.checkReach(uid, gids)...)
	ps = append(ps, c.checkPrivate(uid, gids, "run_as user "+c.Executor.RunAs)...)
	return ps
}

// checkPrivate reports the executor's files that the job's user could read.
func (c *Config) checkPrivate(uid uint32, gids []uint32, who string) []Problem {
	var ps []Problem
	for _, s := range []struct{ key, path string }{
		{"slack.token_file", c.Slack.TokenFile}, {"gitlab.token_file", c.GitLab.TokenFile},
		{"policy.audit_log", c.Policy.AuditLog}, {"executor.state_dir", c.Executor.StateDir},
	} {
		if s.path == "" {
			continue
		}
		if why := reachableBy(s.path, uid, gids); why != "" {
			ps = append(ps, Problem{Key: s.key, Msg: fmt.Sprintf("%s is %s by %s: jobs would read it", s.path, why, who)})
		}
	}
	return ps
}

func (c *Config) checkJobUIDs(h Host) []Problem {
	var ps []Problem
	r, ok := c.JobUIDRange()
	if !ok {
		return nil // validate reported it
	}
	accounts, err := r.Overlaps(h.Passwd, h.Group)
	if err != nil {
		ps = append(ps, Problem{Key: "executor.job_uids", Msg: err.Error()})
	}
	if len(accounts) > 0 {
		var names []string
		for _, a := range accounts {
			names = append(names, fmt.Sprintf("%s %s (%d)", a.Kind, a.Name, a.ID))
		}
		ps = append(ps, Problem{Key: "executor.job_uids", Msg: fmt.Sprintf(
			"%s overlaps accounts of this host: %s; a job leased one of these ids would own that account's files: pick a range no account uses", r, strings.Join(names, ", "))})
	}
	if n, err := runnerConcurrent(h.RunnerConfig); err != nil {
		ps = append(ps, Problem{Key: "executor.job_uids", Warning: true, Msg: err.Error()})
	} else if n > r.Size() {
		ps = append(ps, Problem{Key: "executor.job_uids", Msg: fmt.Sprintf(
			"%s holds %d uids but %s lets gitlab-runner run %d jobs at once: jobs beyond %d would fail in prepare; widen the range", r, r.Size(), h.RunnerConfig, n, r.Size())})
	}
	ps = append(ps, c.checkReach(r.First, []uint32{r.First})...)
	ps = append(ps, c.checkPrivate(r.First, []uint32{r.First}, "the uids of job_uids")...)
	return ps
}

// checkReach reports builds_dir and cache_dir when the job's user cannot pass through to
// them: its script would fail to start in its build dir.
func (c *Config) checkReach(uid uint32, gids []uint32) []Problem {
	var ps []Problem
	for _, d := range []struct{ key, dir string }{
		{"executor.builds_dir", c.Executor.BuildsDir}, {"executor.cache_dir", c.Executor.CacheDir},
	} {
		if err := jobuser.Reachable(filepath.Join(d.dir, "x"), uid, gids); err != nil {
			ps = append(ps, Problem{Key: d.key, Msg: fmt.Sprintf("the job's user cannot reach it: %v", err)})
		}
	}
	return ps
}

// reachableBy says how uid can read path ("readable", "owned"), or "" when it cannot.
func reachableBy(path string, uid uint32, gids []uint32) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	st, ok := statOwner(fi)
	if !ok {
		return ""
	}
	if st.uid == uid {
		return "owned"
	}
	mode := fi.Mode().Perm()
	for _, g := range gids {
		if g == st.gid && mode&0o040 != 0 {
			return "group-readable"
		}
	}
	if mode&0o004 != 0 {
		return "readable"
	}
	return ""
}

// runnerConcurrent reads `concurrent` from gitlab-runner's config; 0 when there is none.
func runnerConcurrent(path string) (int, error) {
	if path == "" {
		return 0, nil
	}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cannot read the runner's %s to compare its concurrent with the range: %v", path, err)
	}
	var rc struct {
		Concurrent int `toml:"concurrent"`
	}
	if _, err := toml.Decode(string(data), &rc); err != nil {
		return 0, fmt.Errorf("cannot read concurrent from the runner's %s: %v", path, err)
	}
	return rc.Concurrent, nil
}

type owner struct{ uid, gid uint32 }

func statOwner(fi os.FileInfo) (owner, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return owner{}, false
	}
	return owner{uid: st.Uid, gid: st.Gid}, true
}
