// Package policy decides whether a chat job may run, and records every decision.
//
// GitLab lets any Developer of a project run any of its chat jobs, and the variables a job
// could check (GITLAB_USER_ID, GITLAB_USER_LOGIN, CI_PIPELINE_SOURCE) can be overridden by
// project, group or pipeline variables. So before a rule looks at who asked, the Engine asks
// the trusted GitLab (gitlab.url from the executor's config, never CI_API_V4_URL) with the
// job's own token who started the job and from what kind of pipeline. An answer that
// disagrees with the variables is treated as a spoofing attempt, and no answer at all
// (GitLab down, slow, rejecting the token, answering garbage) as a denial: the engine fails
// closed.
//
// Rules are [[policy.rule]] tables tried in order; the first whose present conditions all
// hold decides, otherwise policy.default does. Explain is the evaluation itself, without
// identity checks or audit, shared by Decide and `chatops-executor policy explain` so that
// the dry run can never disagree with the real thing.
//
// The policy decides; it does not run jobs. It imports nothing of stages (which consumes its
// Decision through a small interface), so it can be used and tested without them.
//
// What is verified and what is not: the GitLab user, job id, project and pipeline source
// are confirmed by GitLab; group membership and access levels are asked of GitLab; the job
// name and project path come from the runner's job response (GitLab's, not the job's
// variables). CHAT_CHANNEL, CHAT_USER_ID and CHAT_INPUT are pipeline variables that GitLab
// sets from the slash command, and no API confirms them: channels and chat_users
// conditions trust them, so pair them with users or groups where it matters.
package policy

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/chatops-executor/chatops-executor/audit"
	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/gitlab"
)

// JobSource tells who started a job, given the job's token. *gitlab.Client implements it;
// tests may use a fake.
type JobSource interface {
	CurrentJob(ctx context.Context, jobToken string) (*gitlab.Job, error)
}

// Members tells a user's access level in a project or group (0: not a member).
// *gitlab.Client implements it.
type Members interface {
	ProjectAccess(ctx context.Context, project string, userID int64) (int, error)
	GroupAccess(ctx context.Context, group string, userID int64) (int, error)
}

// Users looks GitLab users up, so that `policy explain --user` can take a name or an id.
// *gitlab.Client implements it.
type Users interface {
	UserByUsername(ctx context.Context, username string) (gitlab.User, error)
	UserByID(ctx context.Context, id int64) (gitlab.User, error)
}

// Engine is the configured policy; the prepare stage consumes its Decide. Its exported
// fields are the outside world, set by New from the config; tests may replace them.
type Engine struct {
	// Jobs verifies identities; nil when gitlab.url is unset or verify_identity is off,
	// and then every identity is unverified.
	Jobs JobSource
	// Members answers group and access-level conditions; nil without gitlab.token_file.
	Members Members
	// Users resolves users for explain; nil without gitlab.token_file.
	Users Users
	// Audit receives one record per Decide; nil writes none (explain).
	Audit *audit.Log
	// Now stamps audit records.
	Now func() time.Time
	// Getenv reads the runner's resolved CUSTOM_ENV_FF_MASK_ALL_DEFAULT_TOKENS, so the
	// audit log masks what replies mask (replies.SecretsOf); nil asks only the job.
	Getenv func(string) string

	def         string // policy.default
	nonChatJobs string // executor.non_chat_jobs
	unverified  string // why identities are not verified, when Jobs is nil
	rules       []*rule
}

// AuditPath returns where decisions are logged: policy.audit_log, or, when that is empty,
// <executor.state_dir>/audit.jsonl, which is private to the runner's user already.
func AuditPath(cfg *config.Config) string {
	if cfg.Policy.AuditLog != "" {
		return cfg.Policy.AuditLog
	}
	return filepath.Join(cfg.Executor.StateDir, "audit.jsonl")
}

// New compiles cfg's policy and connects it to the configured GitLab. A bad rule is a
// *config.Error naming it ("policy.rule[2] (deployers).input: bad regular expression …"),
// as is an unreadable gitlab.token_file. New makes no network call.
func New(cfg *config.Config) (*Engine, error) {
	rules, ps := compile(cfg, false)
	var errs []config.Problem
	for _, p := range ps {
		if !p.Warning {
			errs = append(errs, p)
		}
	}
	e := &Engine{
		Audit:       &audit.Log{Path: AuditPath(cfg), Syslog: cfg.Policy.AuditSyslog},
		Now:         time.Now,
		Getenv:      os.Getenv,
		def:         cfg.Policy.Default,
		nonChatJobs: cfg.Executor.NonChatJobs,
		rules:       rules,
	}
	g := cfg.GitLab
	var token string
	if g.TokenFile != "" {
		t, err := config.ReadSecret(g.TokenFile)
		if err != nil {
			errs = append(errs, config.Problem{Key: "gitlab.token_file", Msg: err.Error()})
		}
		token = t
	}
	switch {
	case g.URL == "":
		e.unverified = "gitlab.url is not set, so no identity is verified"
	case len(errs) == 0:
		client, err := gitlab.New(g.URL, token, g.Timeout.D())
		if err != nil {
			errs = append(errs, config.Problem{Key: "gitlab.url", Msg: err.Error()})
			break
		}
		if g.VerifyIdentity {
			e.Jobs = client
		} else {
			e.unverified = "gitlab.verify_identity is off, so no identity is verified"
		}
		if token != "" {
			e.Members, e.Users = client, client
		}
	}
	if len(errs) > 0 {
		return nil, &config.Error{Path: cfg.Path, Problems: errs}
	}
	return e, nil
}

// NewOffline compiles cfg's policy for a dry run without GitLab: `policy explain` on a
// machine that cannot read gitlab.token_file. Identities are not verified, and group and
// access-level conditions cannot be evaluated, so they never hold. Bad rules are still a
// *config.Error. It must never back Decide: user conditions would silently not hold.
func NewOffline(cfg *config.Config) (*Engine, error) {
	rules, ps := compile(cfg, true)
	var errs []config.Problem
	for _, p := range ps {
		if !p.Warning {
			errs = append(errs, p)
		}
	}
	if len(errs) > 0 {
		return nil, &config.Error{Path: cfg.Path, Problems: errs}
	}
	return &Engine{def: cfg.Policy.Default, nonChatJobs: cfg.Executor.NonChatJobs, rules: rules,
		unverified: "offline: no GitLab to verify with"}, nil
}

// Input is everything a decision depends on, once the identity question is settled.
