// Package job reads the job the runner is running from $JOB_RESPONSE_FILE.
//
// That file is written by gitlab-runner itself from GitLab's answer to POST /jobs/request
// before it calls config_exec, so it is the executor's trusted view of the job: its id,
// its token and its variables exactly as GitLab sent them. The CUSTOM_ENV_* variables hold
// the same values but arrive through the environment and must not be used for identity.
// Note that variable *values* are still the job's: any of them (CI_PIPELINE_SOURCE,
// GITLAB_USER_ID, CI_API_V4_URL…) can be overridden by project, group or pipeline variables.
// Only the id and token are the runner's own.
package job

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
)

// maxResponseSize bounds the job response we are willing to read. Real ones are a few
// kilobytes to a few hundred; a file this large is not the runner's.
const maxResponseSize = 64 << 20

// Variable is one job variable as GitLab sends it.
type Variable struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Public bool   `json:"public"`
	Masked bool   `json:"masked"`
	File   bool   `json:"file"`
	Raw    bool   `json:"raw"`
}

// Info is the job_info object.
type Info struct {
	ID              int64  `json:"id"`
	Name            string `json:"name"`
	Stage           string `json:"stage"`
	ProjectID       int64  `json:"project_id"`
	ProjectName     string `json:"project_name"`
	ProjectFullPath string `json:"project_full_path"`
}

// Step is one entry of steps: the script, after_script or a release step.
type Step struct {
	Name         string   `json:"name"`
	Script       []string `json:"script"`
	Timeout      int      `json:"timeout"`
	When         string   `json:"when"`
	AllowFailure bool     `json:"allow_failure"`
}

// Features holds the feature flags GitLab sends with the job.
type Features struct {
	TraceSections     bool     `json:"trace_sections"`
	TokenMaskPrefixes []string `json:"token_mask_prefixes"`
}

// RunnerInfo holds what GitLab tells the runner about running the job.
type RunnerInfo struct {
	// Timeout is the job timeout in seconds.
	Timeout int `json:"timeout"`
}

// Response is the part of the runner's job response the executor uses.
type Response struct {
	ID         int64      `json:"id"`
	Token      string     `json:"token"`
	Info       Info       `json:"job_info"`
	RunnerInfo RunnerInfo `json:"runner_info"`
	Variables  []Variable `json:"variables"`
	Steps      []Step     `json:"steps"`
	Features   Features   `json:"features"`
	GitInfo    GitInfo    `json:"git_info"`
}

// GitInfo is the git_info object.
type GitInfo struct {
	RepoURL string `json:"repo_url"`
}

// CacheSlug is the project's directory under the runner's cache_dir, as the runner derives
// it (common/build.go ProjectSlug): the repository URL's path without ".git", else
// "project-<id>".
func (r *Response) CacheSlug() string {
	fallback := "project-" + strconv.FormatInt(r.Info.ProjectID, 10)
	u, err := url.Parse(r.GitInfo.RepoURL)
	if err != nil || u.Host == "" {
		return fallback
	}
	slug := strings.Trim(path.Clean(strings.TrimSuffix(u.Path, ".git")), "/")
	if slug == "" || slug == "." || strings.Contains(slug, "..") {
		return fallback
	}
	return slug
}

// ErrNoResponseFile is returned when $JOB_RESPONSE_FILE is not set: the executor was not
// started by gitlab-runner's custom executor.
var ErrNoResponseFile = errors.New("JOB_RESPONSE_FILE is not set")

// Load reads and checks the job response file at path.
func Load(path string) (*Response, error) {
	if path == "" {
		return nil, ErrNoResponseFile
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read job response %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("read job response %s: %w", path, err)
	}
	if len(data) > maxResponseSize {
		return nil, fmt.Errorf("job response %s is larger than %d MiB", path, maxResponseSize>>20)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("job response %s: %w", path, err)
	}
	return r, nil
}

// Parse decodes and checks a job response.
func Parse(data []byte) (*Response, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, errors.New("the file is empty")
	}
	var r Response
	if err := json.Unmarshal(data, &r); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not valid JSON at byte %d: %w", se.Offset, err)
		}
		return nil, fmt.Errorf("not a job response: %w", err)
	}
	switch {
	case r.ID <= 0:
		return nil, errors.New(`no job "id"`)
	case r.Token == "":
		return nil, errors.New(`no job "token"`)
	case r.Info.Name == "":
		return nil, errors.New(`no "job_info.name"`)
	}
	return &r, nil
}

// Var returns the value of the last variable named key. GitLab sends variables in order of
// precedence, lowest first, and the runner lets later ones win.
func (r *Response) Var(key string) (string, bool) {
	for i := len(r.Variables) - 1; i >= 0; i-- {
		if r.Variables[i].Key == key {
			return r.Variables[i].Value, true
		}
	}
	return "", false
}

// Get returns the value of variable key, or "".
func (r *Response) Get(key string) string {
	v, _ := r.Var(key)
	return v
}

// Secrets returns the values that must never leave the host in clear: every masked
// variable's value and the job token. Empty values are skipped.
func (r *Response) Secrets() []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	add(r.Token)
	for _, v := range r.Variables {
		if v.Masked {
			add(v.Value)
		}
	}
	return out
}

// ProjectPath returns the project's full path (namespace/project), from job_info, else from
// CI_PROJECT_PATH.
func (r *Response) ProjectPath() string {
	if r.Info.ProjectFullPath != "" {
		return r.Info.ProjectFullPath
	}
	return r.Get("CI_PROJECT_PATH")
}

// Chat is what GitLab's ChatOps puts into a chat-started pipeline.
type Chat struct {
	Input   string // CHAT_INPUT: everything after "run <job> "
	Channel string // CHAT_CHANNEL: the channel id
	UserID  string // CHAT_USER_ID: the chat user id
}

// Chat returns the chat variables. They are the job's claims; policy decides how far to
// trust them.
func (r *Response) Chat() Chat {
	return Chat{Input: r.Get("CHAT_INPUT"), Channel: r.Get("CHAT_CHANNEL"), UserID: r.Get("CHAT_USER_ID")}
}

// SlackID reports whether id has the shape of a Slack id whose first letter is one of
// prefixes ("UW" for users, "S" for user groups): that letter, then upper-case letters and
// digits, at most 32 in all. Config checks and replies both ask it, so they agree.
func SlackID(id, prefixes string) bool {
	if len(id) < 2 || len(id) > 32 || !strings.ContainsRune(prefixes, rune(id[0])) {
		return false
	}
	for _, c := range id[1:] {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// PipelineSource returns CI_PIPELINE_SOURCE as the variables claim it.
func (r *Response) PipelineSource() string { return r.Get("CI_PIPELINE_SOURCE") }

// IDString returns the job id in decimal, the name of the job's state directory.
func (r *Response) IDString() string { return strconv.FormatInt(r.ID, 10) }
