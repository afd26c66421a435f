// Package config loads and checks chatops-executor's TOML configuration.
//
// The file is the runner admin's contract with the executor, so it is strict: an unknown or
// misspelt key, a wrong type, a bare-number duration or a bad enum value is an error that
// names the key and, where it can be found, the line. A typo that silently falls back to a
// default is how a deny-by-default policy turns into allow-all. Secrets (tokens) are read
// from files or, for Slack, the executor's own environment, never from job variables.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/chatops-executor/chatops-executor/jobuser"
)

// DefaultPath is the config file used when neither --config nor $CHATOPS_EXECUTOR_CONFIG
// names one.
const DefaultPath = "/etc/chatops-executor/config.toml"

// PathEnv names the environment variable that points at the config file.
const PathEnv = "CHATOPS_EXECUTOR_CONFIG"

// Config is the whole configuration file.
type Config struct {
	Executor Executor `toml:"executor"`
	GitLab   GitLab   `toml:"gitlab"`
	Slack    Slack    `toml:"slack"`
	// Mattermost is optional: see mattermost.go.
	Mattermost Mattermost `toml:"mattermost"`
	Policy     Policy     `toml:"policy"`
	Metrics    Metrics    `toml:"metrics"`

	// Path is the file the config was loaded from, for messages.
	Path string `toml:"-"`
	// raw is the file's text, kept so problems found later (policy rules) get a line too.
	raw []byte
}

// Executor configures where jobs run and how.
type Executor struct {
	BuildsDir   string   `toml:"builds_dir"`
	CacheDir    string   `toml:"cache_dir"`
	StateDir    string   `toml:"state_dir"`
	Shell       string   `toml:"shell"`
	RunAs       string   `toml:"run_as"`
	JobUIDs     string   `toml:"job_uids"`
	NonChatJobs string   `toml:"non_chat_jobs"`
	KillGrace   Duration `toml:"kill_grace"`
	// MaxStateSize bounds the disk all jobs' captured output may take in state_dir
	// together; what does not fit is left out of the replies, never out of the job.
	MaxStateSize Size `toml:"max_state_size"`
	// RunnerTimeouts holds prepare_exec_timeout (approval.go).
	RunnerTimeouts
}

// GitLab configures the trusted GitLab API used to verify who started a job.
type GitLab struct {
	URL            string   `toml:"url"`
	TokenFile      string   `toml:"token_file"`
	VerifyIdentity bool     `toml:"verify_identity"`
	Timeout        Duration `toml:"timeout"`
}

// Slack configures chat delivery.
type Slack struct {
	TokenFile        string   `toml:"token_file"`
	APIURL           string   `toml:"api_url"`
	Reply            string   `toml:"reply"`
	ReplyWindow      Duration `toml:"reply_window"`
	Ack              bool     `toml:"ack"`
	ProgressInterval Duration `toml:"progress_interval"`
	Thread           bool     `toml:"thread"`
	InlineLimit      int      `toml:"inline_limit"`
	// PrepareBudget, CleanupBudget and FlushBudget bound how long prepare (the start
	// message), cleanup (the reply) and cleanup's delivery of other jobs' waiting replies
	// may spend on Slack. What does not get through waits in the outbox for `flush`.
	PrepareBudget Duration `toml:"prepare_budget"`
	CleanupBudget Duration `toml:"cleanup_budget"`
	FlushBudget   Duration `toml:"flush_budget"`
	// RateShare is this host's share of Slack's rate limits (1/N for a fleet of N hosts
	// posting as one app); 0 turns the host's shared rate budget off.
	RateShare float64 `toml:"rate_share"`
	// What a job may share from its CHATOPS_REPLY_DIR: see replyfiles.go.
	ReplyFiles        string `toml:"reply_files"`
	ReplyMaxFiles     int    `toml:"reply_max_files"`
	ReplyMaxFileSize  Size   `toml:"reply_max_file_size"`
	ReplyMaxTotalSize Size   `toml:"reply_max_total_size"`
	// ChatControl holds cancellers and control_interval (approval.go).
	ChatControl
}

// Policy decides which chat jobs may run.
type Policy struct {
	Default  string `toml:"default"`
	AuditLog string `toml:"audit_log"`
	// AuditSyslog is the local syslog socket (/dev/log, which journald also serves) that
	// gets a copy of every audit record; empty: no copy.
	AuditSyslog string `toml:"audit_syslog"`
	Rules       []Rule `toml:"rule"`
}

// Metrics configures the Prometheus text file the executor keeps for node_exporter.
type Metrics struct {
	// Textfile is the .prom file cleanup and flush rewrite; empty: no metrics.
	Textfile string `toml:"textfile"`
}

// Rule is one [[policy.rule]]: when all its present conditions hold, Action decides.
type Rule struct {
	Name           string   `toml:"name"`
	Action         string   `toml:"action"`
	Jobs           []string `toml:"jobs"`
	Projects       []string `toml:"projects"`
	Channels       []string `toml:"channels"`
	ChatUsers      []string `toml:"chat_users"`
	Users          []string `toml:"users"`
	Groups         []string `toml:"groups"`
	MinAccessLevel int      `toml:"min_access_level"`
	Input          string   `toml:"input"`
	// AllowMentions lets the jobs this rule allows (or has approved) notify a channel or a
	// user group from
	// their message.md or blocks.json (<!here>, <!channel>, <!everyone>, <!subteam^…>).
	AllowMentions bool `toml:"allow_mentions"`
	// Approval holds the keys of action = "approve" (approval.go).
	Approval
}

// Default returns the configuration used for every key the file does not set.
func Default() Config {
	return Config{
		Executor: Executor{
			BuildsDir:      "/var/lib/chatops-executor/builds",
			CacheDir:       "/var/lib/chatops-executor/cache",
			StateDir:       "/var/lib/chatops-executor/state",
			Shell:          "bash",
			NonChatJobs:    "reject",
			KillGrace:      Duration(10 * time.Second),
			MaxStateSize:   Size(4 << 30),
			RunnerTimeouts: RunnerTimeouts{PrepareExecTimeout: Duration(DefaultPrepareExecTimeout)},
		},
		GitLab: GitLab{
			VerifyIdentity: true,
			Timeout:        Duration(10 * time.Second),
		},
		Slack: Slack{
			APIURL:           "https://slack.com/api/",
			Reply:            "always",
			ReplyWindow:      Duration(30 * time.Minute),
			Ack:              true,
			ProgressInterval: Duration(time.Minute),
			Thread:           true,
			InlineLimit:      3000,
			// Short for prepare: the job must not wait on chat to start.
			PrepareBudget:     Duration(2 * time.Second),
			CleanupBudget:     Duration(15 * time.Second),
			FlushBudget:       Duration(5 * time.Second),
			RateShare:         1,
			ReplyFiles:        "text",
			ReplyMaxFiles:     10,
			ReplyMaxFileSize:  Size(10 << 20),
			ReplyMaxTotalSize: Size(25 << 20),
			ChatControl:       ChatControl{ControlInterval: Duration(DefaultControlInterval)},
		},
		Mattermost: Mattermost{InlineLimit: MattermostMaxRunes},
		Policy: Policy{
			Default: "deny",
		},
	}
}

// Problem is one thing wrong with a config file, tied to the key that has it.
type Problem struct {
	Key  string // dotted key, e.g. "slack.reply" or "policy.rule[2].input"
	Line int    // 1-based line in the file, 0 when unknown
	Msg  string
	// Warning marks a problem that leaves the executor working with less (for example, no
	// Slack token: jobs run, replies are off). `check` prints it but still exits 0.
	Warning bool
}

func (p Problem) String() string {
	if p.Warning {
		return "warning: " + p.Key + ": " + p.Msg
	}
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Key, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.Key, p.Msg)
}

// Error reports every problem found in a config file at once, so an admin fixes them in
// one pass instead of one per run.
type Error struct {
	Path     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config %s: ", e.Path)
	if len(e.Problems) == 1 {
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, "%d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Resolve picks the config path: the --config flag, then $CHATOPS_EXECUTOR_CONFIG, then
// DefaultPath.
func Resolve(flagValue string, getenv func(string) string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := getenv(PathEnv); p != "" {
		return p
	}
	return DefaultPath
}

// Load reads, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates config file contents; path is used only in messages. Every
// problem is reported at once: unknown keys and tables, values of the wrong type, and what
// validate finds in the rest of the file.
func Parse(path string, data []byte) (*Config, error) {
	cfg, err := ParsePartial(path, data)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadPartial is Load for `check`: see ParsePartial.
func LoadPartial(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParsePartial(path, data)
}

// ParsePartial is Parse that also returns what could be decoded when the file has
// problems: the keys with problems dropped, so `check` can go on to check the rest against
// the host and report everything in one run. The config is nil only when the file is not
// TOML at all. Never run jobs with a config that came with an error.
func ParsePartial(path string, data []byte) (*Config, error) {
	var raw map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		return nil, &Error{Path: path, Problems: []Problem{decodeProblem(err)}}
	}
	w := &walker{data: data}
	w.table(raw, reflect.TypeOf(Config{}), "", "")
	problems := w.problems
	if _, ok := raw["executor"]; !ok {
		problems = append(problems, Problem{Key: "executor", Msg: "missing: the [executor] table is required"})
	}

	// What is left decodes: the walker dropped every key it found wrong.
	clean := data
	if len(w.problems) > 0 {
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(raw); err != nil {
			return nil, &Error{Path: path, Problems: append(problems, Problem{Key: "(file)", Msg: err.Error()})}
		}
		clean = buf.Bytes()
	}
	cfg := Default()
	if _, err := toml.NewDecoder(bytes.NewReader(clean)).Decode(&cfg); err != nil {
		// The walker should have caught it; if not, still name the key and line.
		p := decodeProblem(err)
		if len(w.problems) > 0 {
			p.Line = keyLineDotted(data, p.Key)
		}
		return nil, &Error{Path: path, Problems: sortProblems(append(problems, p))}
	}
	cfg.Path, cfg.raw = path, data
	for _, p := range cfg.validate() {
		p.Line = keyLineDotted(data, p.Key)
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return &cfg, &Error{Path: path, Problems: sortProblems(problems)}
	}
	return &cfg, nil
}

// sortProblems orders problems by line, those without one last.
func sortProblems(problems []Problem) []Problem {
	sort.SliceStable(problems, func(i, j int) bool {
		if problems[i].Line == 0 || problems[j].Line == 0 {
			return problems[i].Line != 0 && problems[j].Line == 0
		}
		return problems[i].Line < problems[j].Line
	})
	return problems
}

// decodeProblem turns a decoder error into a Problem with the line and key the decoder knows.
func decodeProblem(err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		key := pe.LastKey
		if key == "" {
			key = "(syntax)"
		}
		msg := "not valid TOML: " + pe.Message
		if pe.Message == "" {
			msg = err.Error()
		}
		return Problem{Key: key, Line: pe.Position.Line, Msg: msg}
	}
	return Problem{Key: "(file)", Msg: err.Error()}
}

// validate checks values the decoder cannot: enums, ranges and cross-key requirements.
// Checks that touch the file system live in Check.
func (c *Config) validate() []Problem {
	var ps []Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	e := c.Executor
	for key, dir := range map[string]string{
		"executor.builds_dir": e.BuildsDir, "executor.cache_dir": e.CacheDir, "executor.state_dir": e.StateDir,
	} {
		if dir == "" {
			add(key, "must not be empty")
		} else if !strings.HasPrefix(dir, "/") {
			add(key, "must be an absolute path, got %q", dir)
		}
	}
	if e.Shell == "" {
		add("executor.shell", "must not be empty")
	} else if e.Shell != "bash" && e.Shell != "sh" && !strings.HasPrefix(e.Shell, "/") {
		add("executor.shell", `must be "bash", "sh" or an absolute path, got %q`, e.Shell)
	}
	if e.JobUIDs != "" {
		if _, err := jobuser.ParseRange(e.JobUIDs); err != nil {
			add("executor.job_uids", "%v", err)
		}
		if e.RunAs != "" {
			add("executor.job_uids", "set either job_uids (a uid per job) or run_as (one fixed user), not both")
		}
	}
	if e.NonChatJobs != "reject" && e.NonChatJobs != "run" {
		add("executor.non_chat_jobs", `must be "reject" or "run", got %q`, e.NonChatJobs)
	}
	if e.KillGrace.D() < 0 {
		add("executor.kill_grace", "must not be negative")
	}
	if e.MaxStateSize < 1<<20 {
		add("executor.max_state_size", "must be at least 1MiB, got %d bytes", int64(e.MaxStateSize))
	}

	g := c.GitLab
	if g.URL != "" && !strings.HasPrefix(g.URL, "https://") && !strings.HasPrefix(g.URL, "http://") {
		add("gitlab.url", "must start with https:// (or http:// for a test server), got %q", g.URL)
	}
	if g.Timeout.D() <= 0 {
		add("gitlab.timeout", "must be positive")
	}

	ps = append(ps, c.validateSlack()...)
	c.validateMattermost(add)

	ps = append(ps, c.Slack.validateReplyFiles()...)

	if p := c.Policy.AuditSyslog; p != "" && !strings.HasPrefix(p, "/") {
		add("policy.audit_syslog", "must be the absolute path of the local syslog socket (usually /dev/log), got %q", p)
	}
	if p := c.Metrics.Textfile; p != "" && (!strings.HasPrefix(p, "/") || !strings.HasSuffix(p, ".prom")) {
		// node_exporter's textfile collector reads only *.prom files.
		add("metrics.textfile", "must be an absolute path ending in .prom, got %q", p)
	}
	if c.Policy.Default != "allow" && c.Policy.Default != "deny" {
		add("policy.default", `must be "allow" or "deny", got %q`, c.Policy.Default)
	}
	for i, r := range c.Policy.Rules {
		key := fmt.Sprintf("policy.rule[%d]", i+1)
		if r.Name != "" {
			key = fmt.Sprintf("policy.rule[%d] (%s)", i+1, r.Name)
		}
		if r.Action == "" {
			add(key+".action", `missing: every rule needs action = "allow" or action = "deny"`)
		} else if r.Action != "allow" && r.Action != "deny" && r.Action != "approve" {
			add(key+".action", `must be "allow", "deny" or "approve", got %q`, r.Action)
		}
		if r.AllowMentions && r.Action == "deny" {
			add(key+".allow_mentions", `applies to the jobs a rule lets run (action = "allow" or "approve"); a deny rule runs none`)
		}
		if (len(r.Groups) > 0 || r.MinAccessLevel > 0) && c.GitLab.TokenFile == "" {
			add(key+".groups", "group and access-level conditions need gitlab.token_file (a read_api token)")
		}
		if (len(r.Groups) > 0 || r.MinAccessLevel > 0 || len(r.Users) > 0) && c.GitLab.URL == "" {
			add(key+".users", "user, group and access-level conditions need gitlab.url: without it no identity is verified and the rule can never hold")
		}
		if r.MinAccessLevel < 0 || r.MinAccessLevel > 60 {
			add(key+".min_access_level", "must be a GitLab access level (10, 20, 30, 40, 50), got %d", r.MinAccessLevel)
		}
	}
	return append(ps, c.validateControl()...)
}

// validateSlack checks [slack]'s values.
func (c *Config) validateSlack() []Problem {
	var ps []Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	s := c.Slack
	switch s.Reply {
	case "always", "after-window", "never":
	default:
		add("slack.reply", `must be "always", "after-window" or "never", got %q`, s.Reply)
	}
	if !strings.HasPrefix(s.APIURL, "https://") && !strings.HasPrefix(s.APIURL, "http://") {
		add("slack.api_url", "must be an http(s) URL, got %q", s.APIURL)
	}
	if s.ReplyWindow.D() <= 0 {
		add("slack.reply_window", "must be positive")
	}
	if s.ProgressInterval.D() < 0 {
		add("slack.progress_interval", `must not be negative ("0s" disables progress edits)`)
	}
	for key, d := range map[string]Duration{"slack.prepare_budget": s.PrepareBudget, "slack.cleanup_budget": s.CleanupBudget, "slack.flush_budget": s.FlushBudget} {
		if d.D() <= 0 || d.D() > 10*time.Minute {
			add(key, "must be positive and at most 10m, got %s", d)
		}
	}
	if s.InlineLimit < 100 || s.InlineLimit > 39000 {
		// Slack truncates message text at 40,000 characters.
		add("slack.inline_limit", "must be between 100 and 39000 characters, got %d", s.InlineLimit)
	}

	if !(s.RateShare >= 0 && s.RateShare <= 1) {
		add("slack.rate_share", "must be between 0 and 1 (this host's share of Slack's rate limits; 0 turns the budget off), got %v", s.RateShare)
	}
	return ps
}

// Locate fills in the line of each problem found after loading (by another package, such
// as policy) whose key names a place in this config file.
func (c *Config) Locate(ps []Problem) []Problem {
	out := make([]Problem, len(ps))
	for i, p := range ps {
		if p.Line == 0 && c.raw != nil {
			p.Line = keyLineDotted(c.raw, p.Key)
		}
		out[i] = p
	}
	return out
}

// JobUIDRange returns executor.job_uids, and false when it is not set. Parse has checked it.
func (c *Config) JobUIDRange() (jobuser.Range, bool) {
	if c.Executor.JobUIDs == "" {
		return jobuser.Range{}, false
	}
	r, err := jobuser.ParseRange(c.Executor.JobUIDs)
	return r, err == nil
}

// SlackEnabled reports whether a Slack token source is configured, without reading it.
func (c *Config) SlackEnabled(getenv func(string) string) bool {
	return c.Slack.TokenFile != "" || getenv("SLACK_BOT_TOKEN") != ""
}
