package stages

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chatops-executor/chatops-executor/atomicfile"
	"github.com/chatops-executor/chatops-executor/job"
)

// A job's state outlives any one executor process, and any of them may be killed at any
// moment: the runner's SIGKILL after graceful_kill_timeout, the OOM killer, a reboot. So
// every step that matters leaves a record before it acts, and whoever comes next — the
// runner's retry of prepare, cleanup, a later job's cleanup, `flush` — can tell from the
// records how far the job got and finish its reply:
//
//   - state/<id>/lock is flock'ed by every executor call of the job while it runs, so a
//     sweeper never touches a job a process is working on;
//   - response.json is prepare's copy of the job, for finishing a reply once the runner's
//     JOB_RESPONSE_FILE is gone;
//   - cleanup.json says cleanup started, with what the runner told it (CI_JOB_STATUS);
//   - the reply is queued in the outbox in one atomic step, its first message named
//     "final", so that it is queued once whoever queues it;
//   - the state is renamed away before it is deleted, so it is either there whole or in
//     a trash directory any sweeper deletes.

const (
	lockFile     = "lock"
	responseCopy = "response.json"
	cleanupMark  = "cleanup.json"
	trashPrefix  = ".removed-"
	// finalName names the reply's first message in the outbox.
	finalName = "final"
)

// prepareAttempts is how often the runner tries to prepare a job (common.PreparationRetries
// in gitlab-runner): a cleanup after the last failed attempt ends the job.
const prepareAttempts = 3

// retryWindow is how long a job whose prepare did not finish may wait for the runner's
// next attempt (the runner pauses 3 s between attempts) before a sweeper ends it.
const retryWindow = 2 * time.Minute

// keepUnqueued bounds how long a job's raw output is kept for a reply the outbox keeps
// refusing (its disk full): after that the output goes, and the log says the reply is lost.
const keepUnqueued = 24 * time.Hour

// goneAfterTimeout is how long past its timeout a job's state is kept when nothing else
// says the job is over (the runner itself died and never removed its temporary directory).
const goneAfterTimeout = time.Hour

// Lock takes the job's lock: with wait, blocking until it is free or ctx ends; without,
// failing at once with errLocked when another process holds it. The lock is the kernel's
// (flock), so a killed holder releases it.
func (s State) Lock(ctx context.Context, wait bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.Dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock job state: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock job state: %w", err)
		}
		if !wait {
			f.Close()
			return nil, errLocked
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock job state: %w", errLocked)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var errLocked = errors.New("another executor process holds the job")

// lockForCall takes the job's lock for a protocol call: a sweeper holds it only for as
// long as it takes to look, so waiting a little is enough; past that the call goes on
// without it rather than fail the job.
func (s *Stages) lockForCall(st State) func() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unlock, err := st.Lock(ctx, true)
	if err != nil {
		fmt.Fprintf(s.Stderr, "%s: warning: %v\n", DriverName, err)
		return func() {}
	}
	return unlock
}

// saveResponse copies the runner's job response into the state.
func (s *Stages) saveResponse(st State) error {
	data, err := os.ReadFile(s.Getenv("JOB_RESPONSE_FILE"))
	if err != nil {
		return fmt.Errorf("keep a copy of the job: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(st.Dir, responseCopy), data, 0o600)
}

// cleanupRecord is cleanup.json.
type cleanupRecord struct {
	Format    int          `json:"format"` // stateFormat; see readJSON
	StartedAt time.Time    `json:"started_at"`
	Runner    RunnerStatus `json:"runner_status,omitempty"`
}

func (st State) writeCleanup(r cleanupRecord) error {
	r.Format = stateFormat
	return writeJSON(filepath.Join(st.Dir, cleanupMark), r)
}

func (st State) readCleanup() (cleanupRecord, bool) {
	var r cleanupRecord
	if err := readJSON(filepath.Join(st.Dir, cleanupMark), &r); err != nil {
		return r, false
	}
	return r, true
}

// removeState deletes the job's state: renamed away first, so that no reader ever sees
// half of it, and a process killed while deleting leaves only trash.
func removeState(st State) error {
	trash := filepath.Join(filepath.Dir(st.Dir), fmt.Sprintf("%s%s-%d", trashPrefix, filepath.Base(st.Dir), time.Now().UnixNano()))
	if err := os.Rename(st.Dir, trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove job state: %w", err)
	}
	atomicfile.SyncDir(filepath.Dir(st.Dir))
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove job state: %w", err)
	}
	return nil
}

// gone reports whether the job of rec is over for the runner, as far as a sweeper can
// tell with the job's lock held: its cleanup started (and died, since the lock was free),
// the runner removed its temporary directory (an attempt's end), or it is long past its
// timeout. A job whose prepare did not finish gets retryWindow for the runner's retry.
func gone(st State, rec JobRecord, now time.Time) bool {
	if _, ok := st.readCleanup(); ok {
		return true
	}
	last := rec.PreparedAt
	if fi, err := os.Stat(filepath.Join(st.Dir, "job.json")); err == nil && fi.ModTime().After(last) {
		last = fi.ModTime()
	}
	if timeout := time.Duration(rec.TimeoutSeconds) * time.Second; timeout > 0 && now.Sub(last) > timeout+goneAfterTimeout {
		return true
	}
	runnerGone := false
	if rec.RunnerFile != "" {
		_, err := os.Stat(rec.RunnerFile)
		runnerGone = errors.Is(err, fs.ErrNotExist)
	}
	if !runnerGone {
		return false
	}
	if rec.Prepared || rec.Denied {
		return true
	}
	return now.Sub(last) > retryWindow
}

// Recovered is what Sweep did with one job.
type Recovered struct {
	JobID string
	// What happened, for the log: "reply queued", "raw output removed", …
	What string
}

// Sweep finishes the jobs whose executor died before their cleanup was done: it queues
// their reply from the saved capture (once: a reply already queued is not queued again)
// and removes their raw output. Jobs another process is working on, and jobs that may
// still be running, are left alone. skip is the caller's own job. Problems with one job
// are reported and the others are still swept.
func (s *Stages) Sweep(ctx context.Context, skip int64) ([]Recovered, error) {
	root := s.Cfg.Executor.StateDir
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweep state: %w", err)
	}
	var out []Recovered
	var errs []error
	for _, e := range ents {
		if ctx.Err() != nil {
			break
		}
		name := e.Name()
		if strings.HasPrefix(name, trashPrefix) {
			if err := os.RemoveAll(filepath.Join(root, name)); err != nil {
				errs = append(errs, fmt.Errorf("sweep state: %w", err))
			}
			continue
		}
		id, ok := parseJobDir(name)
		if !ok || !e.IsDir() || id == skip {
			continue
		}
		r, err := s.sweepJob(ctx, OpenState(root, id))
		if err != nil {
			errs = append(errs, fmt.Errorf("job %d: %w", id, err))
		}
		if r.What != "" {
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}

func parseJobDir(name string) (int64, bool) {
	var id int64
	if name == "" || len(name) > 19 {
		return 0, false
	}
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
		id = id*10 + int64(c-'0')
	}
	return id, id > 0
}

// Unfinished lists the jobs a Sweep would finish now, without touching them: their
// executor died before their cleanup was done.
func (s *Stages) Unfinished() []string {
	root := s.Cfg.Executor.StateDir
	ents, _ := os.ReadDir(root)
	var out []string
	for _, e := range ents {
		id, ok := parseJobDir(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		st := OpenState(root, id)
		unlock, err := st.Lock(context.Background(), false)
		if err != nil {
			continue
		}
		if rec, err := st.ReadJob(); err == nil && gone(st, rec, s.now()) {
			out = append(out, e.Name())
		}
		unlock()
	}
	return out
}

// LeftAlone lists the jobs whose state a newer chatops-executor wrote, with why: Sweep and
// cleanup leave them whole for an upgrade.
func (s *Stages) LeftAlone() []Recovered {
	root := s.Cfg.Executor.StateDir
	ents, _ := os.ReadDir(root)
	var out []Recovered
	for _, e := range ents {
		id, ok := parseJobDir(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		if _, err := OpenState(root, id).ReadJob(); errors.Is(err, ErrNewerFormat) {
			out = append(out, Recovered{JobID: e.Name(), What: "left alone: " + err.Error()})
		}
	}
	return out
}

func (s *Stages) sweepJob(ctx context.Context, st State) (Recovered, error) {
	r := Recovered{JobID: filepath.Base(st.Dir)}
	unlock, err := st.Lock(ctx, false)
	if errors.Is(err, errLocked) {
		return r, nil
	}
	if err != nil {
		if !st.Exists() {
			return r, nil // removed under us
		}
		return r, err
	}
	defer unlock()
	now := s.now()
	rec, err := st.ReadJob()
	if errors.Is(err, ErrNewerFormat) {
		r.What = "left alone: " + err.Error()
		return r, nil
	}
	if err != nil {
		// Prepare died before it recorded the job: nothing was announced or run. Raw output
		// cannot be there, but leave it for the retry window all the same.
		if fi, serr := os.Stat(st.Dir); serr == nil && now.Sub(fi.ModTime()) > retryWindow {
			r.What = "removed the state of a prepare that never finished"
			return r, removeState(st)
		}
		return r, nil
	}
	if !gone(st, rec, now) {
		return r, nil
	}
	j, err := loadSavedJob(st)
	s.retireUser(rec.JobID, st, j) // j is nil when it could not be read
	if err != nil {
		// Without the job nothing can be said in chat; the raw output must go regardless.
		r.What = "raw output removed; no reply: " + err.Error()
		return r, removeState(st)
	}
	c, _ := st.readCleanup()
	o := s.finalOutcome(j, st, rec, c.Runner, c.StartedAt)
	r.What = fmt.Sprintf("%s; its cleanup did not finish", o)
	ch, qerr := s.queueReply(j, st, o)
	if err := s.removeReplyDir(j.ID); err != nil {
		r.What += "; " + err.Error()
	}
	if qerr != nil {
		if now.Sub(c.StartedAt) < keepUnqueued || c.StartedAt.IsZero() && now.Sub(rec.PreparedAt) < keepUnqueued {
			return r, qerr // the outbox's disk may recover; try again next time
		}
		r.What += fmt.Sprintf("; reply lost after %s of trying: %v", keepUnqueued, qerr)
	} else if ch != nil {
		r.What += "; reply queued"
	}
	return r, removeState(st)
}

// loadSavedJob reads prepare's copy of the job.
func loadSavedJob(st State) (*job.Response, error) {
	return job.Load(filepath.Join(st.Dir, responseCopy))
}

// finalOutcome derives the job's outcome; at is when cleanup started (zero: now).
func (s *Stages) finalOutcome(j *job.Response, st State, rec JobRecord, runner RunnerStatus, at time.Time) Outcome {
	if at.IsZero() {
		at = s.now()
	}
	recs, err := st.Stages()
	if err != nil {
		fmt.Fprintf(s.Stderr, "%s: job %d: %v\n", DriverName, j.ID, err)
	}
	o := Derive(rec, recs, runner, at)
	switch {
	case rec.Prepared || rec.AttemptEnded || rec.Denied || len(recs) > 0:
	case rec.Attempts >= prepareAttempts:
		// The runner's last attempt failed too: GitLab shows a system failure.
		o.Status, o.Stage, o.ExitCode = Failed, "", 0
		o.Reason = fmt.Sprintf("the executor could not prepare the job (%d attempts)", rec.Attempts)
	default:
		// The runner gave up before its last attempt: the job was cancelled, or stopped,
		// while it was being prepared.
		o.Status, o.Stage, o.ExitCode = Stopped, "", 0
		o.Reason = "the job ended while it was being prepared: cancelled, or stopped by the runner"
	}
	return o
}
