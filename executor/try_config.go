package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery"
	"github.com/chatops-executor/chatops-executor/delivery/mattermostrecorder"
	"github.com/chatops-executor/chatops-executor/delivery/slackrecorder"
	"github.com/chatops-executor/chatops-executor/jobuser"
	"github.com/chatops-executor/chatops-executor/policy"
	"github.com/chatops-executor/chatops-executor/replies"
	"github.com/chatops-executor/chatops-executor/tryjob"
)

// trySetup is the executor config try runs with.
type trySetup struct {
	path       string
	fake       *slackrecorder.Server // nil when replies go to the real Slack (--post)
	slackToken string                // for the runner's environment; "" when the config has a file
	// apiURL and tokenFile are the Slack a denial is shown through (set with a *deniedError).
	apiURL, tokenFile string
	// mm is the fake Mattermost for a Mattermost channel (nil with --post); mmURL and
	// mmTokenFile the Mattermost the executor and a denial use.
	mm                 *mattermostrecorder.Server
	mmURL, mmTokenFile string
	// approval is what the admin's rule asks before the job runs (nil: nothing).
	approval *policy.Approval
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

// tryUIDs is the job_uids of a try run: a random range of its own, so that runs side by
// side (and the host's executor) never share a uid.
func tryUIDs() jobuser.Range { return jobuser.RandomRange(8) }

// tryRequest is what the policy sees of try's chat request.
type tryRequest struct {
	job, project, channel, chatUser, input, user string
	approveAs                                    []string // --approve-as
}

// deniedError is the admin's policy refusing the request: try shows the requester's
// ephemeral message instead of running the job.
type deniedError struct{ d policy.Decision }

func (e *deniedError) Error() string { return "denied: " + e.d.Reason }

// tryConfig writes the executor config for this run into dir, and settles the policy.
// Without --config: everything private to the run, every request allowed. With it: the
// admin's executor and Slack settings with the directories moved into dir, and the
// admin's policy evaluated here as `policy explain` does (the given user counts as
// verified, since a made-up job cannot be verified with GitLab); the run itself then
// allows the job. Replies go to an in-process fake Slack unless post is set.
//
// A denial is a *deniedError, returned with the setup the denial is shown through.
func (a *app) tryConfig(ctx context.Context, dir string, post bool, req tryRequest) (*trySetup, error) {
	s := &trySetup{path: filepath.Join(dir, "config.toml")}
	builds, cache, state, audit := filepath.Join(dir, "builds"), filepath.Join(dir, "cache"),
		filepath.Join(dir, "state"), filepath.Join(dir, "audit.jsonl")
	if a.configFlag == "" {
		apiURL := config.Default().Slack.APIURL
		if post && config.IsMattermostID(req.channel) {
			return nil, usagef("try --post to a Mattermost channel needs --config with [mattermost] url and token_file")
		}
		if post {
			if s.slackToken = strings.TrimSpace(a.getenv("SLACK_BOT_TOKEN")); s.slackToken == "" {
				return nil, usagef("try --post needs a Slack token: $SLACK_BOT_TOKEN, or --config with slack.token_file")
			}
		} else {
			if err := a.startFakeSlack(s); err != nil {
				return nil, err
			}
			apiURL = s.fake.APIURL()
		}
		uids := ""
		if os.Geteuid() == 0 {
			uids = fmt.Sprintf("job_uids = %q\n", tryUIDs())
		}
		text := fmt.Sprintf(tryDefaults, builds, cache, state, uids, apiURL, audit)
		if config.IsMattermostID(req.channel) {
			if err := a.startFakeMattermost(s, dir, req); err != nil {
				return nil, err
			}
			text += mattermostTOML(s)
		}
		return s, os.WriteFile(s.path, []byte(text), 0o600)
	}
	cfg, err := config.Load(a.configFlag)
	if err != nil {
		return nil, err
	}
	d, err := a.tryPolicy(ctx, cfg, req)
	if err != nil {
		return nil, err
	}
	cfg.Executor.BuildsDir, cfg.Executor.CacheDir, cfg.Executor.StateDir = builds, cache, state
	cfg.Policy.AuditLog = audit
	if os.Geteuid() == 0 && cfg.Executor.RunAs == "" {
		// The leases live in state_dir, which try keeps private: the host's real range
		// could hand try's job a uid a real job holds.
		cfg.Executor.JobUIDs = tryUIDs().String()
	}
	// The policy was settled above; the run only carries it out — under the deciding
	// rule's name, so that what the rule allows the job's reply (allow_mentions) holds.
	rules := []config.Rule(nil)
	for _, r := range cfg.Policy.Rules {
		if d.Allow && r.Name != "" && r.Name == d.Rule {
			rules = []config.Rule{{Name: r.Name, Action: "allow", AllowMentions: r.AllowMentions}}
		}
	}
	cfg.Policy.Default, cfg.Policy.Rules = "allow", rules
	cfg.GitLab.VerifyIdentity, cfg.GitLab.TokenFile = false, ""
	switch {
	case post && config.IsMattermostID(req.channel):
		// Checked below: the reply goes to [mattermost].
	case post:
		if !cfg.SlackEnabled(a.getenv) {
			return nil, usagef("try --post: %s has no slack.token_file and $SLACK_BOT_TOKEN is not set", a.configFlag)
		}
		if cfg.Slack.TokenFile == "" {
			s.slackToken = strings.TrimSpace(a.getenv("SLACK_BOT_TOKEN"))
		}
	default:
		if err := a.startFakeSlack(s); err != nil {
			return nil, err
		}
		cfg.Slack.APIURL, cfg.Slack.TokenFile = s.fake.APIURL(), ""
	}
	if config.IsMattermostID(req.channel) {
		switch {
		case post && !cfg.MattermostEnabled():
			return nil, usagef("try --post: %s has no [mattermost] url and token_file for channel %s", a.configFlag, req.channel)
		case post:
			s.mmURL, s.mmTokenFile = cfg.Mattermost.URL, cfg.Mattermost.TokenFile
		default:
			if err := a.startFakeMattermost(s, dir, req); err != nil {
				return nil, err
			}
			cfg.Mattermost.URL, cfg.Mattermost.TokenFile = s.mmURL, s.mmTokenFile
		}
	}
	if !d.Allow {
		s.apiURL, s.tokenFile = cfg.Slack.APIURL, cfg.Slack.TokenFile
		return s, &deniedError{d: d}
	}
	if d.Approval != nil {
		s.approval = d.Approval
		tryApprovalRule(cfg, d.Rule, d.Approval, !post, req.approveAs)
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

// tryPolicy evaluates cfg's policy for req with the code `policy explain` and prepare use
// (policy.Engine.Explain), the user counting as verified, and says on stderr what it found.
func (a *app) tryPolicy(ctx context.Context, cfg *config.Config, req tryRequest) (policy.Decision, error) {
	var notes []string
	e, err := policy.New(cfg)
	if tokenOnly(err) {
		notes = append(notes, fmt.Sprintf("%v; group and access-level conditions are treated as not holding", err))
		e, err = policy.NewOffline(cfg)
	}
	if err != nil {
		return policy.Decision{}, err
	}
	e.Audit = nil // a preview is not a decision
	in := policy.Input{Job: req.job, Project: req.project, Channel: req.channel, ChatUser: req.chatUser, ChatInput: req.input}
	u, err := e.ResolveUser(ctx, req.user)
	if err != nil {
		u = policy.ParseUser(req.user)
		notes = append(notes, fmt.Sprintf("could not look user %q up in GitLab (%v): group and access-level conditions cannot hold", req.user, err))
	}
	in.User, in.Verified = u, true
	d := e.Explain(ctx, in).Decision()
	verdict := "allows"
	if !d.Allow {
		verdict = "denies"
	}
	fmt.Fprintf(a.stderr, "%s: try: using %s's policy as `policy explain` does (%s counts as verified): it %s job %s (rule %q)\n",
		name, a.configFlag, req.user, verdict, req.job, d.Rule)
	for _, n := range notes {
		fmt.Fprintf(a.stderr, "%s: try: %s\n", name, n)
	}
	fmt.Fprintf(a.stderr, "%s: try: builds, cache, state and audit log go to a temporary directory, removed when try ends\n", name)
	return d, nil
}

// startFakeSlack starts the loopback Slack the executor replies to when no real token is
// configured, with a throwaway token: the reply takes the executor's real delivery path.
func (a *app) startFakeSlack(s *trySetup) error {
	tok, err := randomToken("xoxb-try-")
	if err != nil {
		return err
	}
	fake, err := slackrecorder.Start(tok)
	if err != nil {
		return fmt.Errorf("try: start the local Slack: %w", err)
	}
	s.fake, s.slackToken = fake, tok
	return nil
}

func randomToken(prefix string) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("try: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

// showDenial tells the requester why, as the executor's prepare would: the ephemeral
// message, through the fake Slack (rendered) or, with --post, the real one.
func (a *app) showDenial(ctx context.Context, s *trySetup, chat tryjob.Chat, job *tryjob.Job, de *deniedError) error {
	if s.fake != nil {
		defer s.fake.Close()
	}
	if config.IsMattermostID(chat.Channel) {
		return a.showMattermostDenial(ctx, s, chat, job, de)
	}
	token := s.slackToken
	if s.tokenFile != "" {
		t, err := config.ReadSecret(s.tokenFile)
		if err != nil {
			return fmt.Errorf("try: read slack.token_file: %w", err)
		}
		token = t
	}
	j := replies.Job{
		ID: chat.JobID, Name: job.Name, Project: chat.Project, ChatUser: chat.UserID, Input: chat.Input,
		URL: fmt.Sprintf("%s/%s/-/jobs/%d", chat.ServerURL, chat.Project, chat.JobID),
	}
	text := replies.DeniedText(j.ID, de.d.Rule, j.URL)
	poster, err := delivery.NewSlack(token, s.apiURL)
	if err == nil {
		err = poster.PostEphemeral(ctx, chat.Channel, chat.UserID, text)
	}
	switch {
	case s.fake != nil:
		fmt.Fprintf(a.stdout, "\n── what the requester would see (nothing was posted to Slack; --post posts it) ──\n")
		if rerr := tryjob.Render(a.stdout, s.fake.Messages(), map[string]string{chat.UserID: chat.User}); rerr != nil {
			return rerr
		}
	case err != nil:
		fmt.Fprintf(a.stdout, "\n── the denial could not be posted to Slack: %v ──\n", err)
	default:
		fmt.Fprintf(a.stdout, "\n── the denial was posted to Slack, channel %s, for %s only ──\n", chat.Channel, chat.UserID)
	}
	return fmt.Errorf("job %s was refused by the policy: %s", job.Name, de.d.Reason)
}
