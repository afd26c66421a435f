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
	// Geteuid is the executor's effective uid; nil means os.Geteuid.
	Geteuid func() int
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
func (s *Stages) Prepare(ctx context.Context) error {
	j, err := s.loadJob()
	if err != nil {
		return err
	}
	st := OpenState(s.Cfg.Executor.StateDir, j.ID)
	if err := st.Create(); err != nil {
		return failure.Systemf("%w", err)
	}
	rec := JobRecord{
		JobID:          j.ID,
		Name:           j.Info.Name,
		Project:        j.ProjectPath(),
		PreparedAt:     s.now(),
		TimeoutSeconds: j.RunnerInfo.Timeout,
		BuildDir:       s.buildDir(j),
	}
	chat := j.Chat()
	fmt.Fprintf(s.Stdout, "Preparing chat job %d (%s) of %s with %s %s\n", j.ID, j.Info.Name, rec.Project, DriverName, s.Version)

	deny := func(reason string) error {
		rec.Denied, rec.DenyReason = true, reason
		if err := st.WriteJob(rec); err != nil {
			return failure.Systemf("%w", err)
		}
		s.announce(ctx, j, true, reason)
		return failure.Buildf("job denied: %s", reason)
	}
	if chat.UserID != "" {
		fmt.Fprintf(s.Stdout, "Requested by chat user %s in channel %s\n", chat.UserID, chat.Channel)
	}
	decider := s.Decider
	if decider == nil {
		decider = AllowAll{}
	}
	d, err := decider.Decide(ctx, j)
	if err != nil {
		return failure.Systemf("policy decision: %w", err)
	}
	if !d.Allow {
		return deny(d.Reason)
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
	if err := st.WriteJob(rec); err != nil {
		return failure.Systemf("%w", err)
	}
	s.announce(ctx, j, false, "")
	return nil
}

// Cleanup ends the job: it kills whatever the job left running, derives the final status,
// and removes the build directory and the state. It reports problems in the runner's log
// but fails only when the job's files could not be removed: chat being unreachable is
// never a reason to fail a job.
func (s *Stages) Cleanup(ctx context.Context) error {
	j, err := s.loadJob()
	if err != nil {
		return err
	}
	st := OpenState(s.Cfg.Executor.StateDir, j.ID)
	leased, hasLease, stopErr := s.stopLeftovers(j.ID, st)
	if stopErr != nil {
		fmt.Fprintf(s.Stderr, "%s: job %d: %v\n", DriverName, j.ID, stopErr)
	}
	var outcome Outcome
	rec, err := st.ReadJob()
	if err != nil {
		// config or prepare failed before the state existed: nothing ran.
		fmt.Fprintf(s.Stderr, "%s: job %d: %v\n", DriverName, j.ID, err)
	} else {
		stagesRun, serr := st.Stages()
		if serr != nil {
			fmt.Fprintf(s.Stderr, "%s: job %d: %v\n", DriverName, j.ID, serr)
		}
		outcome = Derive(rec, stagesRun, s.now())
		fmt.Fprintf(s.Stderr, "%s: job %d (%s) %s\n", DriverName, j.ID, rec.Name, outcome)
		s.reply(ctx, j, st, outcome)
	}
	var firstErr error
	if err := os.RemoveAll(s.buildDir(j)); err != nil {
		firstErr = failure.Systemf("remove build dir: %w", err)
	}
	if hasLease {
		if err := s.releaseUID(j, leased); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := st.Remove(); err != nil && firstErr == nil {
		firstErr = failure.Systemf("%w", err)
	}
	return firstErr
}
