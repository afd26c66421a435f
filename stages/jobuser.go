package stages

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/chatops-executor/chatops-executor/failure"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/jobuser"
)

// Isolation names who a job's scripts run as. Prepare decides it and records it for run
// and cleanup.
type Isolation string

// The isolations a job can run under.
const (
	// OwnUID: a uid from executor.job_uids, leased to this job alone.
	OwnUID Isolation = "job_uids"
	// RunAsUser: executor.run_as, one user every job shares (root only when set so).
	RunAsUser Isolation = "run_as"
	// SameUser: the executor is not root and cannot change uids; jobs run as it.
	SameUser Isolation = "none"
)

// jobUser is who a job's scripts run as.
type jobUser struct {
	Isolation Isolation
	UID, GID  uint32
	Groups    []uint32 // supplementary groups: none for a leased uid
	Name      string   // run_as's user name
	Home      string
}

func (s *Stages) euid() int {
	if s.Geteuid != nil {
		return s.Geteuid()
	}
	return os.Geteuid()
}

// leaser returns the uid leases of executor.job_uids, and false when it is not set.
func (s *Stages) leaser() (*jobuser.Leaser, bool) {
	r, ok := s.Cfg.JobUIDRange()
	if !ok {
		return nil, false
	}
	stateDir := s.Cfg.Executor.StateDir
	return &jobuser.Leaser{
		Dir:   filepath.Join(stateDir, "uids"),
		Range: r,
		JobExists: func(id int64) bool {
			return OpenState(stateDir, id).Exists()
		},
	}, true
}

// chooseUser decides, in prepare, who the job runs as, leasing its uid when job_uids is
// set. A prepare the runner retries finds the lease the first attempt took.
func (s *Stages) chooseUser(j *job.Response, buildDir string) (jobUser, error) {
	e := s.Cfg.Executor
	root := s.euid() == 0
	switch {
	case !root && (e.JobUIDs != "" || e.RunAs != ""):
		key := "job_uids"
		if e.RunAs != "" {
			key = "run_as"
		}
		return jobUser{}, failure.WithHint(
			failure.Systemf("executor.%s needs the executor to run as root to change uids, and it runs as uid %d", key, s.euid()),
			"run gitlab-runner as root, or remove executor."+key+" (jobs then run as the runner's own user, with its rights)")
	case !root:
		uid, gid := uint32(s.euid()), uint32(os.Getegid())
		home, _ := os.UserHomeDir()
		return jobUser{Isolation: SameUser, UID: uid, GID: gid, Home: home}, nil
	case e.RunAs != "":
		cred, home, err := lookupCredential(e.RunAs)
		if err != nil {
			return jobUser{}, err
		}
		return jobUser{Isolation: RunAsUser, UID: cred.Uid, GID: cred.Gid, Groups: cred.Groups, Name: e.RunAs, Home: home}, nil
	case e.JobUIDs == "":
		return jobUser{}, failure.WithHint(
			failure.Systemf("the executor runs as root and neither executor.job_uids nor executor.run_as is set: jobs never run as root unless the config says so"),
			`set executor.job_uids = "64000-64099" (a uid per job), or run_as = "root" to run jobs as root knowingly`)
	}
	l, _ := s.leaser()
	uid, err := l.Lease(j.ID)
	if err != nil {
		return jobUser{}, failure.Systemf("%w", err)
	}
	// Normally cleanup has done this; a cleanup that died has not.
	if _, err := jobuser.RemoveLeftovers(uid, jobuser.SharedTempDirs); err != nil {
		return jobUser{}, failure.Systemf("uid %d: %w", uid, err)
	}
	return jobUser{Isolation: OwnUID, UID: uid, GID: uid, Home: buildDir}, nil
}

// userOf is the job's user as prepare recorded it.
func (s *Stages) userOf(rec JobRecord) (jobUser, error) {
	switch rec.Isolation {
	case OwnUID:
		return jobUser{Isolation: OwnUID, UID: rec.UID, GID: rec.GID, Home: rec.BuildDir}, nil
	case RunAsUser:
		cred, home, err := lookupCredential(rec.RunAs)
		if err != nil {
			return jobUser{}, err
		}
		return jobUser{Isolation: RunAsUser, UID: cred.Uid, GID: cred.Gid, Groups: cred.Groups, Name: rec.RunAs, Home: home}, nil
	case SameUser:
		home, _ := os.UserHomeDir()
		return jobUser{Isolation: SameUser, UID: rec.UID, GID: rec.GID, Home: home}, nil
	}
	return jobUser{}, failure.Systemf("job record has no isolation (written by an older executor?): run prepare again")
}

// credential is what the script's process is started with; nil: the executor's own.
func (u jobUser) credential() *syscall.Credential {
	if u.Isolation == SameUser {
		return nil
	}
	// Groups, even empty, makes os/exec call setgroups: a leased uid keeps none of root's.
	groups := u.Groups
	if groups == nil {
		groups = []uint32{}
	}
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: groups}
}

// describe is the job log's line about who the job runs as and what that gives up.
func (u jobUser) describe() string {
	switch {
	case u.Isolation == OwnUID:
		return fmt.Sprintf("Running as uid %d, leased to this job alone until cleanup has stopped every process of it", u.UID)
	case u.Isolation == RunAsUser && u.UID == 0:
		return fmt.Sprintf("%s: warning: run_as = %q: the job runs as root and can reach everything on this host, the executor's secrets included", DriverName, u.Name)
	case u.Isolation == RunAsUser:
		return fmt.Sprintf("%s: warning: running as run_as user %s (uid %d), which every job of this runner shares: jobs can reach one another's processes and files; job_uids gives each job its own uid", DriverName, u.Name, u.UID)
	}
	return fmt.Sprintf("%s: warning: the executor runs as uid %d, not root, so it cannot change uids: the job runs as uid %d with the executor's own rights and can read its state, token files and other jobs' output", DriverName, u.UID, u.UID)
}

// makeJobDirs creates the job's build directory, fresh and owned by the job's user, and
// hands the project's cache to it — both without following any link a job could plant.
func (s *Stages) makeJobDirs(j *job.Response, u jobUser) error {
	builds, err := jobuser.OpenRoot(s.Cfg.Executor.BuildsDir)
	if err != nil {
		return failure.Systemf("builds_dir: %w", err)
	}
	defer builds.Close()
	if err := jobuser.FreshDir(builds, j.IDString(), int(u.UID), int(u.GID)); err != nil {
		return failure.Systemf("build dir: %w", err)
	}
	if err := makeReplyDir(builds, j, u); err != nil {
		return failure.Systemf("%w", err)
	}
	if u.Isolation != SameUser {
		if err := jobuser.Reachable(filepath.Join(s.Cfg.Executor.BuildsDir, j.IDString()), u.UID, append([]uint32{u.GID}, u.Groups...)); err != nil {
			return failure.WithHint(failure.Systemf("build dir: %w", err), "run 'chatops-executor check' to see every directory the job's user cannot reach")
		}
	}
	if u.Isolation == SameUser {
		// Jobs run as the executor itself: there is no one to hand the cache to.
		if err := os.MkdirAll(filepath.Join(s.Cfg.Executor.CacheDir, j.CacheSlug()), 0o700); err != nil {
			return failure.Systemf("project cache: %w", err)
		}
		return nil
	}
	cache, err := jobuser.OpenRoot(s.Cfg.Executor.CacheDir)
	if err != nil {
		return failure.Systemf("cache_dir: %w", err)
	}
	defer cache.Close()
	prev := func(uint32) bool { return false }
	if r, ok := s.Cfg.JobUIDRange(); ok {
		prev = r.Contains
	}
	skipped, err := jobuser.HandOver(cache, j.CacheSlug(), int(u.UID), int(u.GID), prev)
	if err != nil {
		return failure.Systemf("project cache: %w", err)
	}
	if skipped > 0 {
		fmt.Fprintf(s.Stdout, "%s: warning: %d entries of the project's cache were left to their owner (hard-linked, or not a job's)\n", DriverName, skipped)
	}
	return nil
}

// parkCache takes the project's cache back from a leased uid at cleanup, so the next job
// that gets the uid — of any project — cannot read it.
func (s *Stages) parkCache(j *job.Response, uid uint32) error {
	cache, err := jobuser.OpenRoot(s.Cfg.Executor.CacheDir)
	if err != nil {
		return fmt.Errorf("cache_dir: %w", err)
	}
	defer cache.Close()
	return jobuser.Park(cache, j.CacheSlug(), int(uid))
}

// releaseUID gives the job's uid back in cleanup, after its processes were stopped: the
// project's cache is taken back and the uid's files in /tmp and the like removed first,
// and the lease is only released when no process of
// the uid is left (else it stays taken, and is reclaimed once idle).
func (s *Stages) releaseUID(j *job.Response, uid uint32) error {
	var errs []error
	if err := s.parkCache(j, uid); err != nil {
		errs = append(errs, fmt.Errorf("project cache: %w", err))
	}
	if left, err := jobuser.Processes(uid); err == nil && len(left) == 0 {
		// What the job left in /tmp and the like would be the next holder's.
		if _, err := jobuser.RemoveLeftovers(uid, jobuser.SharedTempDirs); err != nil {
			errs = append(errs, err)
		}
	}
	l, _ := s.leaser()
	freed, err := l.Release(j.ID)
	if err != nil {
		errs = append(errs, err)
	} else if !freed {
		fmt.Fprintf(s.Stderr, "%s: job %d: uid %d still has processes: it stays leased until they are gone\n", DriverName, j.ID, uid)
	}
	if len(errs) > 0 {
		return failure.Systemf("release uid %d: %w", uid, errors.Join(errs...))
	}
	return nil
}

// retireUser does, for a job whose cleanup died, cleanup's share of isolation: it stops
// what is left of the job's processes and gives its uid back (taking the project's cache
// back first when the job, j, is known).
func (s *Stages) retireUser(jobID int64, st State, j *job.Response) {
	uid, held, err := s.stopLeftovers(jobID, st)
	if err != nil {
		fmt.Fprintf(s.Stderr, "%s: job %d: %v\n", DriverName, jobID, err)
	}
	if !held {
		return
	}
	if j != nil {
		if err := s.releaseUID(j, uid); err != nil {
			fmt.Fprintf(s.Stderr, "%s: job %d: %v\n", DriverName, jobID, err)
		}
		return
	}
	l, _ := s.leaser()
	if _, err := l.Release(jobID); err != nil {
		fmt.Fprintf(s.Stderr, "%s: job %d: %v\n", DriverName, jobID, err)
	}
}
