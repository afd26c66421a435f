package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/emulator"
	"github.com/chatops-executor/chatops-executor/jobuser"
	"github.com/chatops-executor/chatops-executor/tryjob"
)

// tryExecutable is the executor binary try drives through the emulated runner: this one.
// Tests point it at a built binary, since theirs is the test binary.
var tryExecutable = os.Executable

// tryJobID is the id of the job try makes up: its directories are private to the run.
const tryJobID = 1

// tryServerURL is the GitLab the made-up job claims to come from.
const tryServerURL = "https://gitlab.example.com"

// varFlag collects repeated KEY=VALUE flags.
type varFlag struct {
	vars   *[]tryjob.Var
	masked bool
}

func (v varFlag) String() string { return "" }

func (v varFlag) Set(s string) error {
	k, val, ok := strings.Cut(s, "=")
	if !ok || k == "" || strings.ContainsAny(k, " \t=$") {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	*v.vars = append(*v.vars, tryjob.Var{Key: k, Value: val, Masked: v.masked})
	return nil
}

// runTry runs one chat job from a .gitlab-ci.yml through this executor's own
// config/prepare/run/cleanup, under the runner emulator, and shows the reply.
func runTry(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("try")
	ciFile := fs.String("ci", ".gitlab-ci.yml", "the CI file")
	channel := fs.String("channel", "C0LOCALTRY", "CHAT_CHANNEL: the Slack channel id, or a Mattermost one (26 lower-case letters and digits)")
	user := fs.String("user", "", "GITLAB_USER_LOGIN: who asks (default $USER)")
	chatUser := fs.String("chat-user", "U0LOCALTRY", "CHAT_USER_ID: the requester's Slack id (for a Mattermost channel, default "+tryMattermostUser+")")
	project := fs.String("project", "", "the project's path (default local/<directory of the CI file>)")
	play := fs.Bool("play", false, "run a when: manual job")
	post := fs.Bool("post", false, "post the reply to Slack (--channel) instead of rendering it here")
	var approveAs []string
	fs.Var(listFlag{&approveAs}, "approve-as", "a Slack user id that approves the request, when the policy needs approval (repeatable; not with --post)")
	var extra []tryjob.Var
	fs.Var(varFlag{vars: &extra}, "var", "a CI/CD variable KEY=VALUE")
	fs.Var(varFlag{vars: &extra, masked: true}, "masked", "a masked CI/CD variable KEY=VALUE")
	if err := a.parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("try needs a JOB name: try [--ci FILE] [--channel ID] [--user NAME] [--play] JOB [INPUT…]")
	}
	channelSet, chatUserSet := false, false
	fs.Visit(func(f *flag.Flag) {
		channelSet = channelSet || f.Name == "channel"
		chatUserSet = chatUserSet || f.Name == "chat-user"
	})
	if config.IsMattermostID(*channel) && !chatUserSet {
		*chatUser = tryMattermostUser
	}
	if *post && !channelSet {
		return usagef("try --post needs --channel: the Slack channel to post the reply to")
	}
	if *post && len(approveAs) > 0 {
		return usagef("try --approve-as simulates approvals in the preview; with --post, approvers react in the channel themselves")
	}
	jobName, input := fs.Arg(0), strings.Join(fs.Args()[1:], " ")
	if *user == "" {
		*user = a.getenv("USER")
		if *user == "" {
			*user = "local"
		}
	}
	if *project == "" {
		abs, err := filepath.Abs(*ciFile)
		if err != nil {
			return err
		}
		*project = "local/" + filepath.Base(filepath.Dir(abs))
	}

	// The job, as GitLab would pick it for a chat pipeline.
	data, err := os.ReadFile(*ciFile)
	if err != nil {
		fmt.Fprintf(a.stderr, "%s: try: %v\n", name, err)
		return &exitError{code: exitUsage}
	}
	ci, err := tryjob.Parse(*ciFile, data)
	if err != nil {
		fmt.Fprintf(a.stderr, "%s: try: %v\n", name, err)
		return &exitError{code: exitUsage}
	}
	chat := tryjob.Chat{
		Input: input, Channel: *channel, UserID: *chatUser, User: *user, Project: *project,
		ServerURL: tryServerURL, Ref: "main", JobID: tryJobID, Created: time.Now(),
	}
	vars := chat.PipelineVars()
	for _, v := range extra {
		if _, predefined := vars[v.Key]; !predefined {
			vars[v.Key] = v.Value // rules see CI/CD variables too
		}
	}
	job, err := ci.Job(jobName, tryjob.Options{Play: *play, Vars: vars, Ref: chat.Ref})
	var refused *tryjob.RefusedError
	switch {
	case errors.As(err, &refused):
		fmt.Fprintf(a.stderr, "%s: try: %s\n", name, refused.Msg)
		if jobs := ci.Jobs(); len(jobs) > 0 && !strings.Contains(refused.Msg, "--play") {
			fmt.Fprintf(a.stderr, "%s: hint: the jobs in %s are: %s\n", name, *ciFile, strings.Join(jobs, ", "))
		}
		return &exitError{code: exitFailure}
	case err != nil:
		fmt.Fprintf(a.stderr, "%s: try: %v\n", name, err)
		return &exitError{code: exitUsage}
	}
	for _, w := range job.Warnings {
		fmt.Fprintf(a.stderr, "%s: try: %s\n", name, w)
	}
	job.AddVariables(extra)

	dir, err := os.MkdirTemp("", "chatops-executor-try-")
	if err != nil {
		return fmt.Errorf("try: %w", err)
	}
	defer os.RemoveAll(dir)
	// The job's uid must pass through to its build dir; state stays private (0700).
	if err := os.Chmod(dir, jobuser.RootMode); err != nil {
		return fmt.Errorf("try: %w", err)
	}
	if chat.Token, err = randomToken("glcbt-try-"); err != nil {
		return err
	}

	setup, err := a.tryConfig(ctx, dir, *post, tryRequest{job: jobName, project: *project, channel: *channel, chatUser: *chatUser, input: input, user: *user, approveAs: approveAs})
	if err != nil {
		var de *deniedError
		if errors.As(err, &de) {
			return a.showDenial(ctx, setup, chat, job, de)
		}
		return err
	}
	if setup.fake != nil {
		defer setup.fake.Close()
	}
	if setup.mm != nil {
		defer setup.mm.Close()
	}
	switch {
	case setup.approval != nil && setup.fake != nil && len(approveAs) > 0:
		stop := make(chan struct{})
		defer close(stop)
		go simulateApprovals(setup.fake, setup.approval, approveAs, stop)
	case setup.approval != nil && setup.fake != nil:
		fmt.Fprintf(a.stderr, "%s: try: the job needs %s; nobody approves in the preview, so the request expires after %s (--approve-as U… approves as that Slack user)\n", name, setup.approval.Plain(), tryPreviewTimeout)
	case setup.approval == nil && len(approveAs) > 0:
		fmt.Fprintf(a.stderr, "%s: try: --approve-as has nothing to approve: the policy does not ask for approval of this job\n", name)
	}
	response, err := tryjob.Response(job, chat)
	if err != nil {
		return fmt.Errorf("try: build the job response: %w", err)
	}
	exe, err := tryExecutable()
	if err != nil {
		return fmt.Errorf("try: find this executable: %w", err)
	}
	cargs := func(stage string) []string { return []string{"--config", setup.path, stage} }
	env := []string{"PATH=" + a.getenv("PATH")}
	for _, k := range []string{"HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ"} {
		if v := a.getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	if setup.slackToken != "" {
		env = append(env, "SLACK_BOT_TOKEN="+setup.slackToken)
	}

	out := newTraceWriter(a.stdout, useColour(a.stdout, a.getenv))
	var progress *progressLine
	if useProgressLine(a.stderr, a.getenv) {
		progress = startProgress(a.stderr, jobName, out)
	}
	r := &emulator.Runner{
		Executable: exe, ConfigArgs: cargs("config"), PrepareArgs: cargs("prepare"),
		RunArgs: cargs("run"), CleanupArgs: cargs("cleanup"),
		Env: env, WorkDir: filepath.Join(dir, "runner"),
		// Timestamps would put a date before every line of a terminal's output.
		FeatureFlags:             map[string]bool{"FF_TIMESTAMPS": false},
		GracefulKillTimeout:      5 * time.Second,
		ForcefulKillTimeout:      5 * time.Second,
		PreparationRetryInterval: -1,
		TraceSink:                out,
	}

	what := "/gitlab " + chat.Project + " run " + jobName
	if input != "" {
		what += " " + input
	}
	chatName := "Slack"
	if config.IsMattermostID(*channel) {
		chatName = "Mattermost"
	}
	fmt.Fprintf(a.stdout, "%s   (as %s, %s user %s, in #%s; emulated gitlab-runner %s)\n\n", what, *user, chatName, *chatUser, *channel, emulator.RunnerVersion)
	start := time.Now()
	res, err := r.Run(ctx, emulator.Job{Response: response, Script: job.Script, BeforeScript: job.BeforeScript, AfterScript: job.AfterScript})
	if progress != nil {
		progress.stop()
	}
	out.Flush()
	if err != nil {
		return fmt.Errorf("try: %w", err)
	}
	elapsed := time.Since(start).Round(100 * time.Millisecond)

	// The runner log is where the executor reports what it could not deliver.
	undelivered := chatProblems(dir, res.RawTrace, res.RunnerLog)
	for _, line := range undelivered {
		fmt.Fprintf(a.stderr, "%s: try: %s\n", name, line)
	}
	switch {
	case setup.mm != nil:
		fmt.Fprintf(a.stdout, "\n── what the Mattermost channel would show (nothing was posted; --post with --config posts it) ──\n")
		if err := renderMattermost(a.stdout, setup.mm, map[string]string{*chatUser: *user}); err != nil {
			return err
		}
	case config.IsMattermostID(*channel) && len(undelivered) > 0:
		fmt.Fprintf(a.stdout, "\n── the reply did not all reach Mattermost (channel %s): see the errors on stderr ──\n", *channel)
	case config.IsMattermostID(*channel):
		fmt.Fprintf(a.stdout, "\n── the reply was posted to Mattermost, channel %s ──\n", *channel)
	case setup.fake != nil:
		fmt.Fprintf(a.stdout, "\n── what the channel would show (nothing was posted to Slack; --post posts it) ──\n")
		if err := tryjob.Render(a.stdout, setup.fake.Messages(), map[string]string{*chatUser: *user}); err != nil {
			return err
		}
	case len(undelivered) > 0:
		fmt.Fprintf(a.stdout, "\n── the reply did not all reach Slack (channel %s): see the errors on stderr; try's outbox is removed when it ends ──\n", *channel)
	default:
		fmt.Fprintf(a.stdout, "\n── the reply was posted to Slack, channel %s ──\n", *channel)
	}
	if res.State != "success" {
		// The policy's reason is in the job log: prepare says it before failing.
		if m := deniedLine.FindSubmatch(res.RawTrace); m != nil {
			return fmt.Errorf("job %s was refused by the policy: %s", jobName, bytes.TrimSpace(m[1]))
		}
		return fmt.Errorf("job %s failed after %s: %v", jobName, elapsed, res.Err)
	}
	fmt.Fprintf(a.stdout, "\njob %s succeeded in %s\n", jobName, elapsed)
	return nil
}

// chatProblems are the executor's lines about chat delivery that did not go as planned
// (the executor says nothing when everything was delivered), from the runner log (cleanup)
// and the job log (prepare's start message), without advice that names try's temporary
// directory or its outbox, both gone when try ends.
func chatProblems(tmp string, logs ...[]byte) []string {
	var out []string
	for _, log := range logs {
		for _, line := range strings.Split(string(log), "\n") {
			line = strings.TrimSpace(ansiEscape.ReplaceAllString(line, ""))
			if !chatProblem.MatchString(line) {
				continue
			}
			line = flushAdvice.ReplaceAllString(line, "")
			out = append(out, strings.ReplaceAll(line, tmp, "<try's temporary directory>"))
		}
	}
	return out
}

// flushAdvice is the executor's advice to run flush later, which cannot work for try.
var flushAdvice = regexp.MustCompile(`(,? then run| \(run) '[^']*flush[^']*'( to retry\))?`)

var chatProblem = regexp.MustCompile(`\b` + name + `: (chat\b|no chat reply|cannot tell the requester in chat)`)
