package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
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

// runTry runs one chat job from a .gitlab-ci.yml through this executor's own
// config/prepare/run/cleanup, under the runner emulator, and shows the reply.
func runTry(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("try", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ciFile := fs.String("ci", ".gitlab-ci.yml", "the CI file")
	channel := fs.String("channel", "C0LOCALTRY", "CHAT_CHANNEL: the Slack channel id")
	user := fs.String("user", "", "GITLAB_USER_LOGIN: who asks (default $USER)")
	chatUser := fs.String("chat-user", "U0LOCALTRY", "CHAT_USER_ID: the requester's Slack id")
	project := fs.String("project", "", "the project's path (default local/<directory of the CI file>)")
	play := fs.Bool("play", false, "run a when: manual job")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(a.stdout, "usage: %s [--config FILE] try [--ci FILE] [--channel ID] [--user NAME] [--chat-user ID] [--project PATH] [--play] JOB [INPUT…]\n", name)
			return nil
		}
		return usagef("try: %v", err)
	}
	if fs.NArg() == 0 {
		return usagef("try needs a JOB name: try [--ci FILE] [--channel ID] [--user NAME] [--play] JOB [INPUT…]")
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
	job, err := ci.Job(jobName, tryjob.Options{Play: *play, Vars: chat.PipelineVars(), Ref: chat.Ref})
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
	if len(job.Notes) > 0 {
		fmt.Fprintf(a.stderr, "%s: try: ignoring %s (they do not change what runs)\n", name, strings.Join(job.Notes, ", "))
	}

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

	setup, err := a.tryConfig(dir)
	if err != nil {
		return err
	}
	if setup.fake != nil {
		defer setup.fake.Close()
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

	colour := isTerminal(a.stdout)
	out := newTraceWriter(a.stdout, colour)
	var progress *progressLine
	if isTerminal(a.stderr) {
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
	fmt.Fprintf(a.stdout, "%s   (as %s, Slack user %s, in #%s; emulated gitlab-runner %s)\n\n", what, *user, *chatUser, *channel, emulator.RunnerVersion)
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

	if setup.fake != nil {
		fmt.Fprintf(a.stdout, "\n── what the channel shows (no Slack token: rendered here) ──\n")
		if err := tryjob.Render(a.stdout, setup.fake.Messages(), map[string]string{*chatUser: *user}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.stdout, "\n── the reply was posted to Slack, channel %s ──\n", *channel)
	}
	// The runner log is where cleanup reports deliveries it could not make.
	for _, line := range strings.Split(strings.TrimSpace(string(res.RunnerLog)), "\n") {
		if strings.Contains(line, "queued") || strings.Contains(line, "could not") || strings.Contains(line, "replies are off") {
			fmt.Fprintf(a.stderr, "%s: try: runner log: %s\n", name, line)
		}
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

// trySetup is the executor config try runs with.
type trySetup struct {
	path       string
	fake       *slacktest.Server // nil when replies go to the real Slack
	slackToken string            // for the runner's environment; "" when the config has a file
}

// tryDefaults is the config without --config: everything private to the run, every
// request allowed, replies to the in-process fake Slack.
const tryDefaults = `[executor]
builds_dir = %q
cache_dir = %q
state_dir = %q
kill_grace = "3s"
%s
[slack]
api_url = %q

[policy]
default = "allow"
audit_log = %q
`

// tryConfig writes the executor config for this run into dir. Without --config, the
// embedded defaults; with it, the admin's policy and Slack settings with the directories
// moved into dir, and identity verification off (the job token is made up, so GitLab
// could not confirm it: every identity is unverified, as the policy then says).
func (a *app) tryConfig(dir string) (*trySetup, error) {
	s := &trySetup{path: filepath.Join(dir, "config.toml")}
	builds, cache, state, audit := filepath.Join(dir, "builds"), filepath.Join(dir, "cache"),
		filepath.Join(dir, "state"), filepath.Join(dir, "audit.jsonl")
	if a.configFlag == "" {
		if err := a.startFakeSlack(s); err != nil {
			return nil, err
		}
		uids := ""
		if os.Geteuid() == 0 {
			uids = fmt.Sprintf("job_uids = %q\n", tryUIDs())
		}
		text := fmt.Sprintf(tryDefaults, builds, cache, state, uids, s.fake.APIURL(), audit)
		return s, os.WriteFile(s.path, []byte(text), 0o600)
	}
	cfg, err := config.Load(a.configFlag)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(a.stderr, "%s: try: using %s's policy and Slack settings; builds, cache, state and audit log go to a temporary directory\n", name, a.configFlag)
	cfg.Executor.BuildsDir, cfg.Executor.CacheDir, cfg.Executor.StateDir = builds, cache, state
	cfg.Policy.AuditLog = audit
	cfg.GitLab.VerifyIdentity = false
	if os.Geteuid() == 0 && cfg.Executor.RunAs == "" {
		// The leases live in state_dir, which try keeps private: the host's real range
		// could hand try's job a uid a real job holds.
		cfg.Executor.JobUIDs = tryUIDs().String()
	}
	if cfg.SlackEnabled(a.getenv) {
		if cfg.Slack.TokenFile == "" {
			s.slackToken = strings.TrimSpace(a.getenv("SLACK_BOT_TOKEN"))
		}
	} else {
		if err := a.startFakeSlack(s); err != nil {
			return nil, err
		}
		cfg.Slack.APIURL = s.fake.APIURL()
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		if s.fake != nil {
			s.fake.Close()
		}
		return nil, fmt.Errorf("try: write the config: %w", err)
	}
	if err := os.WriteFile(s.path, buf.Bytes(), 0o600); err != nil {
		if s.fake != nil {
			s.fake.Close()
		}
		return nil, fmt.Errorf("try: write the config: %w", err)
	}
	return s, nil
}

// startFakeSlack starts the loopback Slack the executor replies to when no real token is
// configured, with a throwaway token: the reply takes the executor's real delivery path.
func (a *app) startFakeSlack(s *trySetup) error {
	tok, err := randomToken("xoxb-try-")
	if err != nil {
		return err
	}
	fake, err := slacktest.Start(tok)
	if err != nil {
		return fmt.Errorf("try: start the local Slack: %w", err)
	}
	s.fake, s.slackToken = fake, tok
	return nil
}

// tryUIDs is the job_uids of a try run: a random range of its own, so that runs side by
// side (and the host's executor) never share a uid.
func tryUIDs() jobuser.Range { return jobuser.RandomRange(8) }

func randomToken(prefix string) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("try: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// traceWriter shows the job log on a terminal, one whole line at a time: the runner's
// section markers dropped, and without colour, ANSI escapes and \r redraws too (only the
// final text of a redrawn line stays). A line longer than maxTraceLine is shown in pieces,
// which bounds its memory.
type traceWriter struct {
	mu     sync.Mutex
	w      io.Writer
	colour bool
	buf    []byte
	before func() // called with mu held before a line is written (clears the progress line)
	after  func()
}

const maxTraceLine = 64 << 10

var (
	deniedLine    = regexp.MustCompile(`(?m)` + name + `: job denied: (.*)$`)
	sectionMarker = regexp.MustCompile(`section_(?:start|end):[0-9]+:[a-zA-Z0-9_.-]+(?:\[[^\]]*\])?\r?\x1b\[0K`)
	ansiEscape    = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)`)
)

func newTraceWriter(w io.Writer, colour bool) *traceWriter {
	return &traceWriter{w: w, colour: colour}
}

func (t *traceWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			if len(t.buf) >= maxTraceLine {
				t.line(t.buf)
				t.buf = t.buf[:0]
			}
			return len(p), nil
		}
		t.line(t.buf[:i])
		t.buf = append(t.buf[:0], t.buf[i+1:]...)
	}
}

// Flush writes what is left of an unfinished last line.
func (t *traceWriter) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > 0 {
		t.line(t.buf)
		t.buf = t.buf[:0]
	}
}

// line writes one line; t.mu is held.
func (t *traceWriter) line(raw []byte) {
	s := sectionMarker.ReplaceAllString(string(raw), "")
	if s == "" && len(raw) > 0 {
		return // a line that held only markers
	}
	if !t.colour {
		s = ansiEscape.ReplaceAllString(s, "")
		if i := strings.LastIndexByte(strings.TrimRight(s, "\r"), '\r'); i >= 0 {
			s = s[i+1:]
		}
		s = strings.TrimRight(s, "\r")
	}
	if t.before != nil {
		t.before()
	}
	io.WriteString(t.w, s+"\n")
	if t.after != nil {
		t.after()
	}
}

// progressLine shows the job's elapsed time on a terminal's last line while it runs,
// redrawn every second and cleared around each line of job output.
type progressLine struct {
	done chan struct{}
	wg   sync.WaitGroup
	t    *traceWriter
	draw func()
	wipe func()
}

func startProgress(w io.Writer, job string, t *traceWriter) *progressLine {
	start := time.Now()
	p := &progressLine{done: make(chan struct{}), t: t}
	p.draw = func() {
		fmt.Fprintf(w, "\r\x1b[K⏳ %s running · %s", job, time.Since(start).Round(time.Second))
	}
	p.wipe = func() { io.WriteString(w, "\r\x1b[K") }
	t.mu.Lock()
	t.before, t.after = p.wipe, p.draw
	t.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-tick.C:
				t.mu.Lock()
				p.draw()
				t.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *progressLine) stop() {
	close(p.done)
	p.wg.Wait()
	p.t.mu.Lock()
	p.wipe()
	p.t.before, p.t.after = nil, nil
	p.t.mu.Unlock()
}
