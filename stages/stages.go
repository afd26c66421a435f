// Package stages implements the four calls of gitlab-runner's custom executor protocol —
// config, prepare, run and cleanup — for chat jobs.
//
// Every call is a separate process started by the runner, so each method here begins by
// reading the job from the runner's JOB_RESPONSE_FILE and, after prepare, the job's state
// directory. Methods return errors tagged with package failure; the command in package main
// turns them into the exit codes the runner expects.
package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gitlab.com/gitlab-org/gitlab-runner/executors/custom/api"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/failure"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/policy"
)

// DriverName is the executor's name in the runner's job log ("Using Custom executor with
// driver chatops-executor …").
const DriverName = "chatops-executor"

// Decision is the policy's answer for one job. The type belongs to package policy: the
// stages orchestrate, the policy decides, so policy never imports stages.
type Decision = policy.Decision

// Decider decides whether a job may run. prepare calls it once per job; the policy package
// provides the real one.
type Decider interface {
	Decide(ctx context.Context, j *job.Response) (Decision, error)
}

// AllowAll is the Decider used when no policy is wired in (tests): every job may run. The
// command always wires in the policy engine, which also enforces executor.non_chat_jobs.
type AllowAll struct{}

// Decide implements Decider.
func (AllowAll) Decide(context.Context, *job.Response) (Decision, error) {
	return Decision{Allow: true, Rule: "default", Reason: "no policy configured"}, nil
}

// Stages runs the protocol calls. Its fields are the outside world, so tests can replace them.
type Stages struct {
	Cfg     *config.Config
	Getenv  func(string) string
	Stdout  io.Writer // the job log for prepare and run; the runner log for config and cleanup
	Stderr  io.Writer
	Now     func() time.Time
	Decider Decider
	Version string
	// Signals delivers the runner's SIGTERM (and SIGINT) to a running stage.
	Signals <-chan os.Signal
	// NewPoster makes the Slack client; nil means delivery.NewSlack.
	NewPoster NewPoster
	// NewMattermost makes the Mattermost client; nil means delivery.NewMattermost.
	NewMattermost NewMattermostPoster
	// Geteuid is the executor's effective uid; nil means os.Geteuid.
	Geteuid func() int
	// GitLab, when set, tells cleanup how GitLab sees a job the runner stopped.
	GitLab JobSource
	// Control records approvals and cancels from chat in the audit log; nil falls back to
	// the Decider when it can (the policy engine), else writes none.
	Control ControlAuditor
}

func (s *Stages) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// loadJob reads the runner's job response. Without it the executor cannot know which job
// it serves, which is a system failure (the runner's install is broken, not the job).
func (s *Stages) loadJob() (*job.Response, error) {
	j, err := job.Load(s.Getenv(api.JobResponseFileVariable))
	if err != nil {
		return nil, failure.WithHint(failure.Systemf("%w", err),
			"the runner writes JOB_RESPONSE_FILE before calling the executor; is this running under gitlab-runner's custom executor?")
	}
	return j, nil
}

func (s *Stages) buildDir(j *job.Response) string {
	return filepath.Join(s.Cfg.Executor.BuildsDir, j.IDString())
}

// Config prints the runner's ConfigExecOutput. The builds directory is per job: the custom
// executor's builds_dir_is_shared defaults to false, so with one fixed directory two
// concurrent jobs of the same project would share, and clobber, one project directory.
func (s *Stages) Config(context.Context) error {
	j, err := s.loadJob()
	if err != nil {
		return err
	}
	hostname, err := os.Hostname()
	if err != nil {
		return failure.Systemf("get hostname: %w", err)
	}
	name, version := DriverName, s.Version
	buildsDir, cacheDir := s.buildDir(j), s.Cfg.Executor.CacheDir
	shared := false
	out := api.ConfigExecOutput{
		Driver:            &api.DriverInfo{Name: &name, Version: &version},
		Hostname:          &hostname,
		BuildsDir:         &buildsDir,
		CacheDir:          &cacheDir,
		BuildsDirIsShared: &shared,
	}
	if sh := filepath.Base(s.Cfg.Executor.Shell); sh == "bash" || sh == "sh" {
		out.Shell = &sh
	}
	data, err := json.Marshal(out)
	if err != nil {
		return failure.Systemf("encode config output: %w", err)
	}
	if _, err := fmt.Fprintf(s.Stdout, "%s\n", data); err != nil {
		return failure.Systemf("write config output: %w", err)
	}
	return nil
}

// Prepare identifies the job, decides whether it may run, and creates its state and build
// directory. A job that may not run fails here, as a build failure, before any of its
// script has run.
//
// The runner retries a prepare that failed or died (up to three attempts, each after a
// cleanup), so Prepare is idempotent: a retry reuses the recorded decision (the audit log
// notes the retry instead of deciding again) and the start message already queued.
func (s *Stages) Prepare(ctx context.Context) error {
	j, err := s.loadJob()
	if err != nil {
		return err
	}
	defer s.countCall("prepare", s.now())
	st := OpenState(s.Cfg.Executor.StateDir, j.ID)
	if err := st.Create(); err != nil {
		return failure.Systemf("%w", err)
	}
	unlock := s.lockForCall(st)
	defer unlock()
	rec, err := s.beginPrepare(st, j)
	if err != nil {
		return failure.Systemf("%w", err)
	}
	chat := j.Chat()
	fmt.Fprintf(s.Stdout, "Preparing chat job %d (%s) of %s with %s %s\n", j.ID, j.Info.Name, rec.Project, DriverName, s.Version)
	if rec.Attempts > 1 {
		fmt.Fprintf(s.Stdout, "This is the runner's attempt %d to prepare the job\n", rec.Attempts)
	}
	if chat.UserID != "" {
		fmt.Fprintf(s.Stdout, "Requested by chat user %s in channel %s\n", chat.UserID, chat.Channel)
	}
	d, err := s.decide(ctx, j, st, &rec)
	if err != nil {
		return failure.Systemf("policy decision: %w", err)
	}
	if d.Allow && d.Approval != nil && !rec.Approved {
		if err := s.awaitApproval(ctx, j, st, &rec, d); err != nil {
			return err // approve.go: denied, told and recorded
		}
	}
	if !d.Allow {
		rec.Prepared = true
		if err := st.WriteJob(rec); err != nil {
			return failure.Systemf("%w", err)
		}
		s.announce(ctx, j, &d)
		return failure.Buildf("job denied: %s", d.Reason)
	}

	u, err := s.chooseUser(j, rec.BuildDir)
	if err != nil {
		return err
	}
	rec.Isolation, rec.UID, rec.GID, rec.RunAs = u.Isolation, u.UID, u.GID, u.Name
	if err := s.makeJobDirs(j, u); err != nil {
		return err
	}
	fmt.Fprintln(s.Stdout, u.describe())
	s.announce(ctx, j, nil)
	// Last: a record that says "prepared" must mean everything above happened.
	rec.Prepared = true
	if err := st.WriteJob(rec); err != nil {
		return failure.Systemf("%w", err)
	}
	return nil
}

// Cleanup ends the job: it kills whatever the job left running, derives the final status,
// queues the reply, removes the build directory and the state, and then delivers. It
// reports problems in the runner's log but fails only when the job's files could not be
// removed: chat being unreachable is never a reason to fail a job.
//
// Every step is safe to be killed at: see lifecycle.go for how the next sweeper (a later
// cleanup, `flush`) finishes what this one could not.
func (s *Stages) Cleanup(ctx context.Context) error {
	started := s.now()
	j, err := s.loadJob()
	if err != nil {
		return err
	}
	st := OpenState(s.Cfg.Executor.StateDir, j.ID)
	leased, hasLease, stopErr := s.stopLeftovers(j.ID, st)
	if stopErr != nil {
		fmt.Fprintf(s.Stderr, "%s: job %d: %v\n", DriverName, j.ID, stopErr)
	}
	if !st.Exists() {
		// config or prepare failed before the state existed: nothing ran.
		_, err := st.ReadJob()
		fmt.Fprintf(s.Stderr, "%s: job %d: %v\n", DriverName, j.ID, err)
		s.sweep(ctx, j.ID)
		return s.removeBuildDir(j)
	}
	unlock := s.lockForCall(st)
	rec, err := st.ReadJob()
	if err != nil {
		unlock()
		fmt.Fprintf(s.Stderr, "%s: job %d: %v\n", DriverName, j.ID, err)
		s.sweep(ctx, j.ID)
		return nil // a prepare that died before recording anything; its retry starts over
	}
	runner := RunnerJobStatus(j, s.Getenv)
	if s.preparePending(st, rec, runner) {
		if rec.Prepared {
			// The attempt may have failed after all: a sweeper must wait for the retry.
			rec.Prepared, rec.AttemptEnded = false, true
			if err := st.WriteJob(rec); err != nil {
				fmt.Fprintf(s.Stderr, "%s: job %d: warning: %v\n", DriverName, j.ID, err)
			}
		}
		unlock()
		fmt.Fprintf(s.Stderr, "%s: job %d: prepare attempt %d did not finish; the job's state is kept for the runner's next attempt\n", DriverName, j.ID, rec.Attempts)
		return nil
	}
	// Also after a job whose reply cannot be queued: the outbox may have changed, and the
	// file's age tells the admin the executor is alive.
	defer func() { WriteMetrics(s.Cfg, Metrics(s.Cfg), s.Stderr) }()
	if err := st.writeCleanup(cleanupRecord{StartedAt: started, Runner: runner}); err != nil {
		fmt.Fprintf(s.Stderr, "%s: job %d: warning: %v\n", DriverName, j.ID, err)
	}
	outcome := s.askGitLab(ctx, j, s.finalOutcome(j, st, rec, runner, started))
	fmt.Fprintf(s.Stderr, "%s: job %d (%s) %s\n", DriverName, j.ID, rec.Name, outcome)
	if note := readLossNote(st); note != "" {
		fmt.Fprintf(s.Stderr, "%s: job %d: the chat reply is incomplete: %s\n", DriverName, j.ID, noteText(note))
	}
	if recs, err := st.Stages(); err == nil {
		s.countJob(outcome, recs)
	}
	c, qerr := s.queueReply(j, st, outcome)
	firstErr := s.removeBuildDir(j)
	if hasLease {
		if err := s.releaseUID(j, leased); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if qerr != nil {
		// Kept for a later cleanup or `flush` to queue the reply (within a bound).
		fmt.Fprintf(s.Stderr, "%s: job %d: %v; the job's state is kept for 'chatops-executor flush'\n", DriverName, j.ID, qerr)
	} else if err := removeState(st); err != nil && firstErr == nil {
		// The reply is queued whole: the raw output goes before anything is sent, so a
		// cleanup killed while Slack is slow leaves none behind.
		firstErr = failure.Systemf("%w", err)
	}
	unlock()
	if c != nil {
		s.deliverReply(ctx, c)
	}
	s.countCall("cleanup", started) // up to here: the reply is what takes time
	s.sweep(ctx, j.ID)
	if c != nil {
		s.flushOthers(ctx, j, c)
	}
	return firstErr
}

func (s *Stages) removeBuildDir(j *job.Response) error {
	if err := os.RemoveAll(s.buildDir(j)); err != nil {
		return failure.Systemf("remove build dir: %w", err)
	}
	if err := s.removeReplyDir(j.ID); err != nil {
		return failure.Systemf("%w", err)
	}
	return nil
}

// sweep finishes other jobs whose cleanup died, within slack.flush_budget, and reports
// in the runner log.
func (s *Stages) sweep(ctx context.Context, self int64) {
	ctx, cancel := context.WithTimeout(ctx, s.Cfg.Slack.FlushBudget.D())
	defer cancel()
	recovered, err := s.Sweep(ctx, self)
	for _, r := range recovered {
		fmt.Fprintf(s.Stderr, "%s: job %s: %s\n", DriverName, r.JobID, r.What)
	}
	if err != nil {
		fmt.Fprintf(s.Stderr, "%s: sweeping state: %v\n", DriverName, err)
	}
}
