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
// What is verified and what is not: the GitLab user, job id, project and pipeline source
// are confirmed by GitLab; group membership and access levels are asked of GitLab; the job
// name and project path come from the runner's job response (GitLab's, not the job's
// variables). CHAT_CHANNEL, CHAT_USER_ID and CHAT_INPUT are pipeline variables that GitLab
// sets from the slash command, and no API confirms them: channels and chat_users
// conditions trust them, so pair them with users or groups where it matters.
package policy

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/audit"
	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/gitlab"
	"github.com/chatops-executor/chatops-executor/job"
	"github.com/chatops-executor/chatops-executor/stages"
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

// Engine is the configured policy. It implements stages.Decider. Its exported fields are
// the outside world, set by New from the config; tests may replace them.
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

	def         string // policy.default
	nonChatJobs string // executor.non_chat_jobs
	unverified  string // why identities are not verified, when Jobs is nil
	rules       []*rule
}

var _ stages.Decider = (*Engine)(nil)

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
		Audit:       &audit.Log{Path: AuditPath(cfg)},
		Now:         time.Now,
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
type Input struct {
	Job     string
	Project string // full path, e.g. "ops/infra"
	// ProjectID is the project for the members API; 0 means use Project's path.
	ProjectID int64
	Channel   string
	ChatUser  string
	ChatInput string
	User      gitlab.User // ID and/or Username; zero when unknown
	// Verified says User was confirmed by GitLab (or, in explain, given by the admin).
	// users, groups and min_access_level conditions hold only when it is true.
	Verified bool
	// Unverified says why User is not verified, for the trace; empty uses the engine's
	// reason (for example "gitlab.url is not set").
	Unverified string
}

// Step is what happened to one rule during an evaluation, for explain and for the reason
// a denied requester sees.
type Step struct {
	Rule    string // the rule's name, or "policy.rule[N]"
	Action  string // "allow" or "deny"
	Reached bool   // false: an earlier rule decided
	Held    bool   // all its conditions held, so it decided
	Failed  string // not held: the key of the first condition that did not ("channels")
	Detail  string // held: what held; not held: why Failed did not
	Notes   []string
}

// Result is a decision with its explanation.
type Result struct {
	Allow  bool
	Rule   string // the deciding rule's name, or "default"
	Reason string
	Steps  []Step // one per rule, in order
}

// Decision returns r in the form prepare consumes.
func (r Result) Decision() stages.Decision {
	return stages.Decision{Allow: r.Allow, Rule: r.Rule, Reason: r.Reason}
}

// DefaultRule names the decision made by policy.default when no rule held.
const DefaultRule = "default"

// Explain evaluates the rules for in. It performs no identity check and writes no audit
// record; the only calls it makes are the group and access-level look-ups that rules
// reaching them need (ctx bounds them), each asked at most once.
//
// A look-up that fails makes its condition not hold. For an allow rule that is safe: the
// outcome can only be what a non-member gets. For a deny rule it is not, so a failed
// look-up there denies the job outright (fail closed).
func (e *Engine) Explain(ctx context.Context, in Input) Result {
	ev := &evaluation{e: e, ctx: ctx, in: in, groups: map[string]lookup{}}
	res := Result{}
	decided := false
	var lookupNotes []string
	unchecked := map[int]bool{} // rules whose look-ups failed, reported once in lookupNotes
	for _, r := range e.rules {
		st := Step{Rule: r.name, Action: r.action()}
		if decided {
			res.Steps = append(res.Steps, st)
			continue
		}
		st.Reached = true
		o := ev.holds(r)
		st.Held, st.Failed, st.Detail, st.Notes = o.held, o.failed, o.detail, o.notes
		res.Steps = append(res.Steps, st)
		switch lookupErr := o.err; {
		case lookupErr != nil && !r.allow:
			decided = true
			res.Allow, res.Rule = false, r.name
			res.Reason = fmt.Sprintf("rule %q (deny) could not be checked, so the job is denied to be safe: %v", r.name, lookupErr)
			res.Steps[len(res.Steps)-1].Detail = "could not be checked, which denies: " + lookupErr.Error()
		case lookupErr != nil:
			unchecked[len(res.Steps)-1] = true
			lookupNotes = append(lookupNotes, fmt.Sprintf("rule %q could not be checked: %v", r.name, lookupErr))
		case o.held:
			decided = true
			res.Allow, res.Rule = r.allow, r.name
			verb := "denies"
			if r.allow {
				verb = "allows"
			}
			res.Reason = fmt.Sprintf("rule %q %s it: %s", r.name, verb, o.detail)
		}
	}
	if !decided {
		res.Allow, res.Rule = e.def == "allow", DefaultRule
		res.Reason = fmt.Sprintf("no rule decided, so policy.default %q applies", e.def)
		if !res.Allow {
			if closest := closestMisses(e.rules, res.Steps, unchecked); closest != "" {
				res.Reason += "; " + closest
			}
		}
	}
	if !res.Allow && len(lookupNotes) > 0 {
		res.Reason += "; " + strings.Join(lookupNotes, "; ")
	}
	return res
}

// closestMisses names why the allow rules for this job did not hold: usually what the
// requester needs to know ("channel … is not one of …").
func closestMisses(rules []*rule, steps []Step, skip map[int]bool) string {
	var out []string
	for i, r := range rules {
		// A rule for other jobs says nothing useful to this requester.
		if !r.allow || steps[i].Held || !steps[i].Reached || steps[i].Failed == "jobs" || skip[i] {
			continue
		}
		out = append(out, fmt.Sprintf("rule %q would allow it, but %s", r.name, steps[i].Detail))
		if len(out) == 2 {
			break
		}
	}
	return strings.Join(out, "; ")
}

type lookup struct {
	level int
	err   error
}

// evaluation is one Explain call: the input and the look-ups made so far.
type evaluation struct {
	e       *Engine
	ctx     context.Context
	in      Input
	groups  map[string]lookup
	project *lookup
}

// outcome is what holds found for one rule.
type outcome struct {
	held   bool
	failed string // the config key of the first condition that did not hold
	detail string // what held, or why failed did not
	notes  []string
	err    error // a look-up that could not be made
}

// holds checks r's conditions in order of cost, the local ones first.
func (ev *evaluation) holds(r *rule) outcome {
	in, c := ev.in, r.cfg
	var held []string
	if len(r.jobs) > 0 {
		i := matchAny(r.jobs, in.Job)
		if i < 0 {
			return outcome{failed: "jobs", detail: fmt.Sprintf("job %q matches none of %s", in.Job, list(c.Jobs))}
		}
		held = append(held, fmt.Sprintf("job %q matches %q", in.Job, c.Jobs[i]))
	}
	if len(r.projects) > 0 {
		if in.Project == "" {
			return outcome{failed: "projects", detail: fmt.Sprintf("no project given, and the rule needs one of %s", list(c.Projects))}
		}
		i := matchAny(r.projects, in.Project)
		if i < 0 {
			return outcome{failed: "projects", detail: fmt.Sprintf("project %q matches none of %s", in.Project, list(c.Projects))}
		}
		held = append(held, fmt.Sprintf("project %q matches %q", in.Project, c.Projects[i]))
	}
	if len(c.Channels) > 0 {
		if !contains(c.Channels, in.Channel) {
			return outcome{failed: "channels", detail: fmt.Sprintf("channel %q is not one of %s", in.Channel, list(c.Channels))}
		}
		held = append(held, fmt.Sprintf("channel %q", in.Channel))
	}
	if len(c.ChatUsers) > 0 {
		if !contains(c.ChatUsers, in.ChatUser) {
			return outcome{failed: "chat_users", detail: fmt.Sprintf("chat user %q is not one of %s", in.ChatUser, list(c.ChatUsers))}
		}
		held = append(held, fmt.Sprintf("chat user %q", in.ChatUser))
	}
	if r.input != nil {
		// The input itself is not quoted: it may hold a secret, and the reason reaches
		// the job log and chat.
		if !r.input.MatchString(in.ChatInput) {
			why := fmt.Sprintf("the input does not match the rule's pattern %q as a whole", c.Input)
			if strings.Contains(in.ChatInput, "\n") {
				why += " (it has several lines)"
			}
			return outcome{failed: "input", detail: why}
		}
		held = append(held, "the input matches the rule's pattern")
	}
	if !r.needsIdentity() {
		if len(held) == 0 {
			return outcome{held: true, detail: "the rule has no conditions"}
		}
		return outcome{held: true, detail: strings.Join(held, ", ")}
	}
	if !in.Verified {
		why := "the rule needs a verified GitLab identity, and this one is not verified"
		if in.Unverified != "" {
			why += " (" + in.Unverified + ")"
		} else if ev.e.unverified != "" {
			why += " (" + ev.e.unverified + ")"
		}
		return outcome{failed: identityKey(c), detail: why}
	}
	who := userString(in.User)
	if len(c.Users) > 0 {
		i := matchUser(c.Users, in.User)
		if i < 0 {
			return outcome{failed: "users", detail: fmt.Sprintf("GitLab user %s is not one of %s", who, list(c.Users))}
		}
		held = append(held, fmt.Sprintf("GitLab user %s is %q", who, c.Users[i]))
	}
	if len(c.Groups) > 0 || c.MinAccessLevel > 0 {
		key := "groups"
		if len(c.Groups) == 0 {
			key = "min_access_level"
		}
		switch {
		case ev.e.Members == nil:
			why := "group and access-level conditions cannot be evaluated offline (no readable gitlab.token_file); treated as not holding"
			return outcome{failed: key, detail: why, notes: []string{why}}
		case in.User.ID <= 0:
			why := fmt.Sprintf("GitLab user %s has no known numeric id, so group and access-level conditions cannot be evaluated; treated as not holding", who)
			return outcome{failed: key, detail: why, notes: []string{why}}
		}
	}
	if len(c.Groups) > 0 {
		member := ""
		var firstErr error
		for _, g := range c.Groups {
			l, ok := ev.groups[g]
			if !ok {
				l.level, l.err = ev.e.Members.GroupAccess(ev.ctx, g, in.User.ID)
				ev.groups[g] = l
			}
			if l.err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("group %q membership: %w", g, l.err)
				}
				continue
			}
			// Minimal access (5) lets a user see that the group exists and nothing more;
			// it does not make them one of its members for a policy.
			if l.level >= gitlab.GuestAccess {
				member = g
				break
			}
		}
		if member == "" {
			if firstErr != nil {
				return outcome{failed: "groups", detail: firstErr.Error(), err: firstErr}
			}
			return outcome{failed: "groups", detail: fmt.Sprintf("GitLab user %s is not a member of %s", who, list(c.Groups))}
		}
		held = append(held, fmt.Sprintf("GitLab user %s is a member of %q", who, member))
	}
	if c.MinAccessLevel > 0 {
		project := in.Project
		if in.ProjectID > 0 {
			project = strconv.FormatInt(in.ProjectID, 10)
		}
		if project == "" {
			why := "no project given, so the access level cannot be evaluated; treated as not holding"
			return outcome{failed: "min_access_level", detail: why, notes: []string{why}}
		}
		if ev.project == nil {
			var l lookup
			l.level, l.err = ev.e.Members.ProjectAccess(ev.ctx, project, in.User.ID)
			ev.project = &l
		}
		if err := ev.project.err; err != nil {
			err = fmt.Errorf("project access level: %w", err)
			return outcome{failed: "min_access_level", detail: err.Error(), err: err}
		}
		if lvl := ev.project.level; lvl < c.MinAccessLevel {
			return outcome{failed: "min_access_level", detail: fmt.Sprintf("GitLab user %s has %s in the project, below the required %s", who, levelName(lvl), levelName(c.MinAccessLevel))}
		}
		held = append(held, fmt.Sprintf("GitLab user %s has %s in the project (at least %s)", who, levelName(ev.project.level), levelName(c.MinAccessLevel)))
	}
	return outcome{held: true, detail: strings.Join(held, ", ")}
}

// identityKey names the first condition of c that needs a verified identity.
func identityKey(c config.Rule) string {
	switch {
	case len(c.Users) > 0:
		return "users"
	case len(c.Groups) > 0:
		return "groups"
	}
	return "min_access_level"
}

func matchAny(res []*regexp.Regexp, s string) int {
	for i, re := range res {
		if re.MatchString(s) {
			return i
		}
	}
	return -1
}

// matchUser finds u among entries. An all-digit entry is a user id and nothing else, so a
// username that happens to be digits cannot stand in for the user with that id.
func matchUser(entries []string, u gitlab.User) int {
	for i, e := range entries {
		if id, err := strconv.ParseInt(e, 10, 64); err == nil {
			if u.ID > 0 && id == u.ID {
				return i
			}
			continue
		}
		if u.Username != "" && strings.EqualFold(e, u.Username) {
			return i
		}
	}
	return -1
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func list(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func userString(u gitlab.User) string {
	switch {
	case u.Username != "" && u.ID > 0:
		return fmt.Sprintf("%q (id %d)", u.Username, u.ID)
	case u.Username != "":
		return strconv.Quote(u.Username)
	case u.ID > 0:
		return fmt.Sprintf("id %d", u.ID)
	}
	return "(unknown)"
}

func levelName(l int) string {
	names := map[int]string{
		gitlab.NoAccess: "no access", gitlab.MinimalAccess: "Minimal Access", gitlab.GuestAccess: "Guest",
		gitlab.PlannerAccess: "Planner", gitlab.ReporterAccess: "Reporter", gitlab.DeveloperAccess: "Developer",
		gitlab.MaintainerAccess: "Maintainer", gitlab.OwnerAccess: "Owner",
	}
	if n, ok := names[l]; ok {
		return fmt.Sprintf("%s (%d)", n, l)
	}
	return fmt.Sprintf("access level %d", l)
}

// ParseUser reads a user given as a username or a numeric id (all digits), as in
// policy.rule users and explain's --user.
func ParseUser(nameOrID string) gitlab.User {
	if id, err := strconv.ParseInt(nameOrID, 10, 64); err == nil && id > 0 {
		return gitlab.User{ID: id}
	}
	return gitlab.User{Username: nameOrID}
}

// ResolveUser turns explain's --user (a username or a numeric id) into a user, completing
// the other half through the users API when a token is configured. Without one, the user
// is returned half-known, as ParseUser reads it.
func (e *Engine) ResolveUser(ctx context.Context, nameOrID string) (gitlab.User, error) {
	u := ParseUser(nameOrID)
	if e.Users == nil {
		return u, nil
	}
	if u.ID > 0 {
		return e.Users.UserByID(ctx, u.ID)
	}
	return e.Users.UserByUsername(ctx, u.Username)
}

// Decide implements stages.Decider: it verifies who started j, evaluates the rules, and
// appends one audit record. Every failure to verify is a deny decision, not an error; the
// only error is an allow decision that could not be audited, since a job must not run
// unrecorded.
func (e *Engine) Decide(ctx context.Context, j *job.Response) (stages.Decision, error) {
	chat := j.Chat()
	rec := audit.Record{
		JobID:          j.ID,
		JobName:        j.Info.Name,
		Project:        j.ProjectPath(),
		PipelineSource: j.PipelineSource(),
		ChatUser:       chat.UserID,
		Channel:        chat.Channel,
		Input:          chat.Input,
	}
	rec.User.Username = j.Get("GITLAB_USER_LOGIN")
	rec.User.ID, _ = strconv.ParseInt(j.Get("GITLAB_USER_ID"), 10, 64)
	in := Input{
		Job:       j.Info.Name,
		Project:   j.ProjectPath(),
		ProjectID: j.Info.ProjectID,
		Channel:   chat.Channel,
		ChatUser:  chat.UserID,
		ChatInput: chat.Input,
	}

	res, ok := e.identify(ctx, j, &in, &rec)
	if ok {
		res = e.Explain(ctx, in)
	}
	d := res.Decision()
	rec.Rule, rec.Reason = d.Rule, d.Reason
	rec.Decision = "deny"
	if d.Allow {
		rec.Decision = "allow"
	}
	if e.Audit != nil {
		now := time.Now
		if e.Now != nil {
			now = e.Now
		}
		rec.Time = now().UTC()
		if err := e.Audit.Append(rec, audit.NewRedactor(j.Secrets(), j.Features.TokenMaskPrefixes)); err != nil {
			if d.Allow {
				return stages.Decision{}, fmt.Errorf("the job was allowed, but the decision could not be recorded, so it does not run: %w", err)
			}
			d.Reason += fmt.Sprintf(" (the decision could not be written to the audit log: %v)", err)
		}
	}
	return d, nil
}

// IdentityRule names decisions made by the identity check, before any rule.
const IdentityRule = "identity-check"

// NonChatRule names decisions made because the pipeline did not come from chat.
const NonChatRule = "executor.non_chat_jobs"

// identify settles who started j: verified with GitLab when configured, else as the
// variables claim (unverified). It fills in and rec, and returns ok, or a deny Result.
func (e *Engine) identify(ctx context.Context, j *job.Response, in *Input, rec *audit.Record) (Result, bool) {
	deny := func(rule, format string, args ...any) (Result, bool) {
		return Result{Rule: rule, Reason: fmt.Sprintf(format, args...)}, false
	}
	source := j.PipelineSource()
	if e.Jobs == nil {
		// Unverified: the rules see no user at all, so user conditions cannot hold on a
		// claim. The audit record keeps the claim, marked unverified.
		if source != "chat" && e.nonChatJobs != "run" {
			return deny(NonChatRule, "this runner only runs jobs started from chat, and this one's pipeline source is %q (executor.non_chat_jobs = \"reject\")", source)
		}
		return Result{}, true
	}
	gj, err := e.Jobs.CurrentJob(ctx, j.Token)
	if err != nil {
		return deny(IdentityRule, "could not confirm with GitLab who started this job, so it is denied (fail closed): %v; run the command again, and if this keeps happening, ask the runner admin to check that this runner can reach gitlab.url and that it is the GitLab that runs this job", err)
	}
	rec.User = audit.User{ID: gj.User.ID, Username: gj.User.Username}
	rec.Verified = true
	if gj.Pipeline.Source != "" {
		rec.PipelineSource = gj.Pipeline.Source
	}
	spoof := func(what string, claimed, actual any) (Result, bool) {
		return deny(IdentityRule, "possible spoofing attempt: the job's variable %s says %v, but GitLab says %v; denied", what, claimed, actual)
	}
	if gj.ID != j.ID {
		return deny(IdentityRule, "possible spoofing attempt: the job token belongs to job %d, not to job %d; denied", gj.ID, j.ID)
	}
	if v, ok := j.Var("CI_JOB_ID"); ok && v != strconv.FormatInt(gj.ID, 10) {
		return spoof("CI_JOB_ID", strconv.Quote(v), gj.ID)
	}
	if v, ok := j.Var("GITLAB_USER_ID"); ok && v != strconv.FormatInt(gj.User.ID, 10) {
		return spoof("GITLAB_USER_ID", strconv.Quote(v), fmt.Sprintf("the job was started by user id %d (%s)", gj.User.ID, gj.User.Username))
	}
	if v, ok := j.Var("GITLAB_USER_LOGIN"); ok && v != gj.User.Username {
		return spoof("GITLAB_USER_LOGIN", strconv.Quote(v), fmt.Sprintf("the job was started by %q", gj.User.Username))
	}
	if gj.Pipeline.Source != "" && source != gj.Pipeline.Source {
		return spoof("CI_PIPELINE_SOURCE", strconv.Quote(source), fmt.Sprintf("the pipeline source is %q", gj.Pipeline.Source))
	}
	if gj.Pipeline.ProjectID > 0 && j.Info.ProjectID > 0 && gj.Pipeline.ProjectID != j.Info.ProjectID {
		return deny(IdentityRule, "GitLab says the job belongs to project %d, but the runner was given project %d; denied", gj.Pipeline.ProjectID, j.Info.ProjectID)
	}
	if e.nonChatJobs != "run" {
		switch gj.Pipeline.Source {
		case "chat":
		case "":
			return deny(NonChatRule, "GitLab's answer does not say the pipeline's source, so it cannot be confirmed that the job was started from chat (executor.non_chat_jobs = \"reject\"); denied")
		default:
			return deny(NonChatRule, "this runner only runs jobs started from chat, and GitLab says this one's pipeline source is %q (executor.non_chat_jobs = \"reject\")", gj.Pipeline.Source)
		}
	}
	in.User, in.Verified = gj.User, true
	if gj.Pipeline.ProjectID > 0 {
		in.ProjectID = gj.Pipeline.ProjectID
	}
	return Result{}, true
}
