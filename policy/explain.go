package policy

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/gitlab"
)

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
	// Approval, when set, says the job may run only once approved in chat.
	Approval *Approval
	// AllowMentions: the deciding rule lets the job notify a channel (allow_mentions).
	AllowMentions bool
}

// Decision is the policy's answer for one job, in the form the prepare stage consumes.
type Decision struct {
	Allow  bool
	Rule   string // the rule that decided, or "default"
	Reason string // why, in words the requester can act on
	// TellRequester says a denial may be shown to the requester in chat: the job is a
	// chat job (as GitLab says, when identities are verified) whose identity checked out.
	// A denied push job, or a spoofing attempt, names CHAT_USER_ID and CHAT_CHANNEL
	// itself: the bot must not message whoever it chose.
	TellRequester bool
	// Approval, when set on an allow, says the job runs only once approved in chat.
	Approval *Approval
	// AllowMentions says the rule that let the job run sets allow_mentions: its rich reply
	// may notify a channel or a user group. Decided here, with the rest, so that a config
	// changed while the job runs cannot change it.
	AllowMentions bool
}

// Decision returns r in the form prepare consumes.
func (r Result) Decision() Decision {
	return Decision{Allow: r.Allow, Rule: r.Rule, Reason: r.Reason, Approval: r.Approval, AllowMentions: r.AllowMentions}
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
			res.Allow, res.Rule, res.Approval = r.allow, r.name, r.approval()
			res.AllowMentions = r.allow && r.cfg.AllowMentions
			verb := "denies"
			switch {
			case r.approve:
				verb = "allows, once approved by " + res.Approval.Plain() + ","
			case r.allow:
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
			return outcome{failed: "projects", detail: fmt.Sprintf("no project given (the runner's job_info.project_full_path is empty, and CI_PROJECT_PATH is the job's own claim), and the rule needs one of %s", list(c.Projects))}
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
