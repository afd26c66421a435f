package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery"
	"github.com/chatops-executor/chatops-executor/failure"
	"github.com/chatops-executor/chatops-executor/stages"
)

// runFlush delivers the chat messages waiting in the outbox (Slack was down, slow or rate
// limiting when their job ended) and says, per job, what was delivered, what still waits
// and why. Exit 0 when nothing is left waiting or failed afterwards, 1 otherwise, so that
// `chatops-executor flush` in cron or a systemd timer alerts when replies are stuck.
//
// Safe to run at any time and several at once: a job is delivered by one process at a time
// and each message at most once (see package delivery).
func runFlush(ctx context.Context, a *app, args []string) error {
	flags := a.newFlags("flush")
	job := flags.String("job", "", "only the messages of the job with this `ID`")
	budget := flags.Duration("budget", 30*time.Second, "how long to retry each job (a `DURATION`, e.g. 2m) before leaving it to the next flush")
	status := flags.Bool("status", false, "only list what is waiting; send nothing")
	retryFailed := flags.Bool("retry-failed", false, "send failed, expired and unknown-outcome messages again (unknown ones may then appear twice)")
	discard := flags.Bool("discard", false, "delete the --job's messages from the outbox, delivered or not")
	if err := a.parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usagef("flush takes no arguments, got %q", flags.Args())
	}
	if *discard && *job == "" {
		return usagef("flush --discard needs --job ID: it deletes messages, one job at a time")
	}
	if *budget <= 0 {
		return usagef("flush --budget must be positive, got %s", *budget)
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var jobs []string
	if *job != "" {
		jobs = []string{*job}
	}

	var poster delivery.Poster
	token, err := cfg.SlackToken(a.getenv)
	if err != nil {
		// A host not set up yet (no token file) runs the flush timer too: with nothing to
		// deliver, that is no failure.
		if reps, serr := delivery.Open(cfg.Executor.StateDir, nil, delivery.Options{Budget: *budget}).Status(); serr == nil &&
			len(flushFilterJobs(reps, jobs)) == 0 && !*discard {
			fmt.Fprintln(a.stdout, "outbox is empty")
			return nil
		}
		return fmt.Errorf("flush: slack token: %w", err)
	}
	if token != "" {
		s, err := delivery.NewSlack(token, cfg.Slack.APIURL)
		if err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		if poster, err = delivery.HostBudget(s, cfg.Executor.StateDir, cfg.Slack.RateShare); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
	}
	mm, err := mattermostPoster(cfg)
	if err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	m := stages.Metrics(cfg)
	ob := delivery.Open(cfg.Executor.StateDir, poster, stages.DeliveryOptions(m, delivery.Options{Budget: *budget}, a.stderr))
	if mm != nil {
		ob.Use(delivery.BackendMattermost, mm)
	}
	defer stages.WriteMetrics(cfg, m, a.stderr)
	if *job != "" {
		if _, err := ob.Job(*job); err != nil {
			return usagef("flush --job: %v", err)
		}
	}

	switch {
	case *discard:
		rep, err := ob.Discard(ctx, *job)
		if err != nil {
			return err
		}
		for _, s := range append(rep.Waiting, rep.Failed...) {
			fmt.Fprintf(a.stdout, "job %s: discarded %s\n", rep.Job, s)
		}
		fmt.Fprintf(a.stdout, "job %s: removed from the outbox\n", *job)
		return nil
	case *status:
		reps, err := ob.Status()
		if err != nil {
			return err
		}
		s := &stages.Stages{Cfg: cfg, Getenv: a.getenv, Stdout: a.stdout, Stderr: a.stderr, Version: a.version}
		unfinished := s.Unfinished()
		for _, id := range unfinished {
			fmt.Fprintf(a.stdout, "job %s: its cleanup did not finish; 'chatops-executor flush' queues its reply and removes its output\n", id)
		}
		leftAlone := s.LeftAlone()
		for _, r := range leftAlone {
			fmt.Fprintf(a.stdout, "job %s: %s\n", r.JobID, r.What)
		}
		err = printFlush(a.stdout, ob, flushFilterJobs(reps, jobs))
		if err == nil && len(unfinished)+len(leftAlone) > 0 {
			err = &exitError{code: exitFailure}
		}
		return err
	}

	// Jobs whose cleanup died still have their raw output and no reply queued: finish
	// them first, so that what they queue is delivered below.
	if err := sweepState(ctx, a, cfg); err != nil {
		return err
	}

	if poster == nil && mm == nil {
		reps, err := ob.Status()
		if err == nil && len(flushFilterJobs(reps, jobs)) == 0 {
			fmt.Fprintln(a.stdout, "outbox is empty")
			return nil
		}
		return failure.WithHint(errors.New("flush: no Slack token and no [mattermost], so nothing can be delivered"),
			"set slack.token_file in the config (or SLACK_BOT_TOKEN in the executor's environment), or [mattermost] url and token_file")
	}

	if *retryFailed {
		ids := jobs
		if ids == nil {
			reps, err := ob.Status()
			if err != nil {
				return err
			}
			for _, r := range reps {
				if len(r.Failed) > 0 {
					ids = append(ids, r.Job)
				}
			}
		}
		for _, id := range ids {
			n, err := ob.Requeue(ctx, id)
			if err != nil {
				return err
			}
			if n > 0 {
				fmt.Fprintf(a.stdout, "job %s: %d message%s queued again\n", id, n, flushPlural(n))
			}
		}
	}

	reps, err := ob.Flush(ctx, delivery.FlushOptions{Jobs: jobs, JobBudget: *budget, Wait: true})
	perr := printFlush(a.stdout, ob, reps)
	if errors.Is(err, fs.ErrPermission) {
		return failure.WithHint(err, "run flush as the user gitlab-runner runs the executor as: the outbox is private to it")
	}
	if err == nil {
		err = perr
	}
	return err
}

// printFlush writes the per-job report and returns exit 1 (as an exitError) when anything
// is still waiting or failed.
func printFlush(w io.Writer, ob *delivery.Outbox, reps []delivery.Report) error {
	stuck := 0
	for _, r := range reps {
		var head []string
		if n := len(r.Delivered); n > 0 {
			head = append(head, fmt.Sprintf("%d delivered", n))
		}
		if n := len(r.Waiting); n > 0 {
			head = append(head, fmt.Sprintf("%d waiting", n))
		}
		if n := len(r.Failed); n > 0 {
			head = append(head, fmt.Sprintf("%d failed", n))
		}
		if n := len(r.Quarantined); n > 0 {
			head = append(head, fmt.Sprintf("%d unreadable file%s set aside", n, flushPlural(n)))
		}
		if r.Busy {
			head = append(head, "another process is delivering it")
		}
		if r.Newer != nil {
			head = append(head, "left alone")
		}
		if len(head) == 0 {
			continue
		}
		fmt.Fprintf(w, "job %s: %s\n", r.Job, strings.Join(head, ", "))
		for _, s := range r.Delivered {
			fmt.Fprintf(w, "  delivered %s\n", s)
			if s.Note != "" {
				fmt.Fprintf(w, "    note: %s\n", s.Note)
			}
		}
		for _, s := range append(append([]delivery.OpStatus(nil), r.Waiting...), r.Failed...) {
			fmt.Fprintf(w, "  %s %s\n", flushVerb(s.State), s)
			if s.Err != "" {
				fmt.Fprintf(w, "    why: %s\n", s.Err)
			}
			if s.Hint != "" {
				fmt.Fprintf(w, "    hint: %s\n", s.Hint)
			}
		}
		for _, q := range r.Quarantined {
			fmt.Fprintf(w, "  set aside %s\n", q)
		}
		if r.Newer != nil {
			fmt.Fprintf(w, "  %v\n", r.Newer)
		}
		if len(r.Quarantined) > 0 {
			fmt.Fprintf(w, "    hint: the files are in %s/%s/quarantine; once looked at, 'chatops-executor flush --discard --job %s' removes the job's queue\n", ob.Dir(), r.Job, r.Job)
		}
		if !r.Clear() {
			stuck++
		}
	}
	if stuck == 0 {
		fmt.Fprintln(w, "outbox is empty")
		return nil
	}
	fmt.Fprintf(w, "%d job%s with messages left in %s\n", stuck, flushPlural(stuck), ob.Dir())
	return &exitError{code: exitFailure}
}

func flushVerb(s delivery.State) string {
	switch s {
	case delivery.StatePending, delivery.StateInFlight:
		return "waiting"
	case delivery.StateUnknown:
		return "unknown outcome"
	case delivery.StateExpired:
		return "expired"
	}
	return "failed"
}

func flushFilterJobs(reps []delivery.Report, jobs []string) []delivery.Report {
	if len(jobs) == 0 {
		return reps
	}
	var out []delivery.Report
	for _, r := range reps {
		for _, j := range jobs {
			if r.Job == j {
				out = append(out, r)
			}
		}
	}
	return out
}

func flushPlural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// sweepState finishes the jobs whose executor died before its cleanup was done (see
// stages.Sweep) and says what it did.
func sweepState(ctx context.Context, a *app, cfg *config.Config) error {
	s := &stages.Stages{Cfg: cfg, Getenv: a.getenv, Stdout: a.stdout, Stderr: a.stderr, Version: a.version}
	recovered, err := s.Sweep(ctx, 0)
	for _, r := range recovered {
		fmt.Fprintf(a.stdout, "job %s: %s\n", r.JobID, r.What)
	}
	if errors.Is(err, fs.ErrPermission) {
		return failure.WithHint(err, "run flush as the user gitlab-runner runs the executor as: the state is private to it")
	}
	return err
}

// mattermostPoster is the Mattermost client of [mattermost], nil when it is not set. Its
// messages wait (and are reported waiting) while it is not.
func mattermostPoster(cfg *config.Config) (delivery.Poster, error) {
	token, err := cfg.MattermostToken()
	if err != nil || token == "" {
		if err != nil {
			err = fmt.Errorf("mattermost token: %w", err)
		}
		return nil, err
	}
	return delivery.NewMattermost(token, cfg.Mattermost.URL)
}
