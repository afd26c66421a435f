package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"

	"github.com/chatops-executor/chatops-executor/bashscript"
)

// Runner identity reported in CI_RUNNER_* variables and the log header.
const (
	RunnerVersion  = "19.4.0"
	RunnerRevision = "fc1f1862"
)

// jobResponse is the part of spec.Job (common/spec/spec.go) the emulator
// reads; the executor gets the response file itself.
type jobResponse struct {
	ID            int64  `json:"id"`
	Token         string `json:"token"`
	AllowGitFetch bool   `json:"allow_git_fetch"`
	JobInfo       struct {
		ProjectID int64 `json:"project_id"`
	} `json:"job_info"`
	GitInfo struct {
		RepoURL string `json:"repo_url"`
	} `json:"git_info"`
	RunnerInfo struct {
		UUID    string `json:"uuid"`
		Timeout int    `json:"timeout"`
	} `json:"runner_info"`
	Variables []bashscript.Variable `json:"variables"`
	Steps     []step                `json:"steps"`
	Image     struct {
		Name string `json:"name"`
	} `json:"image"`
	Services []service `json:"services"`
	Features struct {
		TraceSections     bool     `json:"trace_sections"`
		TokenMaskPrefixes []string `json:"token_mask_prefixes"`
		FailureReasons    []string `json:"failure_reasons"`
	} `json:"features"`
}

type step struct {
	Name         string   `json:"name"`
	Script       []string `json:"script"`
	Timeout      int      `json:"timeout"`
	When         string   `json:"when"`
	AllowFailure bool     `json:"allow_failure"`
}

type service struct {
	Name       string   `json:"name"`
	Alias      string   `json:"alias"`
	Entrypoint []string `json:"entrypoint"`
	Command    []string `json:"command"`
}

// buildState is the part of common.Build that variables depend on. It
// lives for the whole job, across preparation retries, as Build does.
type buildState struct {
	resp            *jobResponse
	raw             []byte // the response as given
	stepsOverridden bool
	runner          *Runner
	flags           map[string]bool
	rootDir         string // Build.RootDir, set by StartBuild
	buildDir        string // Build.BuildDir
	hostname        string
	timeoutSec      int64
	// vars caches GetAllVariables between refreshes; after_script's
	// CI_JOB_STATUS overwrite lands in it and stays, as in the runner.
	vars []bashscript.Variable
}

func (b *buildState) tmpDir() string { return b.buildDir + ".tmp" }

// refresh is Build.RefreshAllVariables + GetAllVariables: feature flags,
// runner variables, predefined variables, the job's variables (feature
// flags excluded), then the runner's trailing ones, all expanded once.
func (b *buildState) refresh() {
	var v []bashscript.Variable
	add := func(key, value string) { v = append(v, bashscript.Variable{Key: key, Value: value, Public: true}) }
	for _, f := range featureFlags {
		add(f.name, strconv.FormatBool(b.flags[f.name]))
	}
	if b.resp.Image.Name != "" {
		add("CI_JOB_IMAGE", b.resp.Image.Name)
	}
	add("CI_RUNNER_SHORT_TOKEN", b.runner.ShortToken)
	for _, e := range b.runner.Environment {
		if key, value, ok := strings.Cut(e, "="); ok && key != "" {
			v = append(v, bashscript.Variable{Key: key, Value: value})
		}
	}
	add("CI_BUILDS_DIR", b.rootDir)
	add("CI_PROJECT_DIR", b.buildDir)
	add("CI_CONCURRENT_ID", "0")
	add("CI_CONCURRENT_PROJECT_ID", "0")
	add("CI_SERVER", "yes")
	add("CI_JOB_STATUS", "running")
	add("CI_JOB_TIMEOUT", strconv.FormatInt(b.timeoutSec, 10))
	for _, jv := range b.resp.Variables {
		if !isFeatureFlag(jv.Key) {
			v = append(v, jv)
		}
	}
	// The custom executor declares itself "shared" (custom.go features).
	add("CI_SHARED_ENVIRONMENT", "true")
	add("CI_RUNNER_VERSION", RunnerVersion)
	add("CI_RUNNER_REVISION", RunnerRevision)
	add("CI_RUNNER_EXECUTABLE_ARCH", runtime.GOOS+"/"+runtime.GOARCH)
	add("RUNNER_TEMP_PROJECT_DIR", b.tmpDir())
	if b.flags["FF_NETWORK_PER_BUILD"] {
		add("CI_BUILD_NETWORK_NAME", fmt.Sprintf("runner-%s-%d-0-%d", b.runner.ShortToken, b.resp.JobInfo.ProjectID, b.resp.ID))
	}
	b.vars = expand(v)
}

// lookup is spec.Variables.Value on a list: the last entry wins.
func lookup(vars []bashscript.Variable, key string) (bashscript.Variable, bool) {
	for i := len(vars) - 1; i >= 0; i-- {
		if vars[i].Key == key {
			return vars[i], true
		}
	}
	return bashscript.Variable{}, false
}

func value(vars []bashscript.Variable, key string) string {
	v, _ := lookup(vars, key)
	return v.Value
}

// expand is spec.Variables.Expand: one pass of os.Expand over every
// non-raw value, resolving references against the unexpanded list; a
// reference to a file variable yields its path in the temp project dir.
func expand(vars []bashscript.Variable) []bashscript.Variable {
	get := func(key string) string {
		switch key {
		case "$":
			return "$"
		case "*", "#", "@", "!", "?", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9":
			return ""
		}
		v, ok := lookup(vars, key)
		if !ok {
			return ""
		}
		if v.File {
			return path.Join(value(vars, "RUNNER_TEMP_PROJECT_DIR"), v.Key)
		}
		return v.Value
	}
	out := make([]bashscript.Variable, len(vars))
	for i, v := range vars {
		if !v.Raw {
			v.Value = os.Expand(v.Value, get)
		}
		out[i] = v
	}
	return out
}

// overwriteKey is spec.Variables.OverwriteKey: the first entry only.
func overwriteKey(vars []bashscript.Variable, key, val string) {
	for i := range vars {
		if vars[i].Key == key {
			vars[i] = bashscript.Variable{Key: key, Value: val, Public: true}
			return
		}
	}
}

// projectUniqueDir is Build.ProjectUniqueDir.
func (b *buildState) projectUniqueDir(shared bool) string {
	dir, err := projectSlug(b.resp.GitInfo.RepoURL)
	if err != nil {
		dir = fmt.Sprintf("project-%d", b.resp.JobInfo.ProjectID)
	}
	if shared {
		dir = path.Join(b.runner.ShortToken, "0", dir)
	}
	if b.gitStrategy() == "empty" {
		dir += "-empty"
	}
	return dir
}

func projectSlug(repoURL string) (string, error) {
	u, err := url.Parse(repoURL)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", errors.New("only URI reference supported")
	}
	slug := path.Clean(strings.TrimSuffix(u.Path, ".git"))
	if slug == "." {
		return "", errors.New("invalid path")
	}
	if strings.Contains(slug, "..") {
		return "", errors.New("it doesn't look like a valid path")
	}
	return slug, nil
}

func (b *buildState) gitStrategy() string {
	switch s := value(b.vars, "GIT_STRATEGY"); s {
	case "clone", "fetch", "none", "empty":
		return s
	}
	if b.resp.AllowGitFetch {
		return "fetch"
	}
	return "clone"
}

// remoteURL is GitAuthHelper.GetRemoteURL, as far as scheme and host go.
func (b *buildState) remoteURL() string {
	if u, err := url.Parse(b.runner.CloneURL); err == nil && u.Scheme != "" {
		u.Path = path.Join(u.Path, value(b.vars, "CI_PROJECT_PATH")+".git")
		return u.String()
	}
	return b.resp.GitInfo.RepoURL
}

// servicesEnv is custom.go getCIJobServicesEnv (service variables are not
// emulated).
func (b *buildState) servicesEnv() string {
	if len(b.resp.Services) == 0 {
		return ""
	}
	type jsonService struct {
		Name       string   `json:"name"`
		Alias      string   `json:"alias"`
		Entrypoint []string `json:"entrypoint"`
		Command    []string `json:"command"`
	}
	var list []jsonService
	for _, s := range b.resp.Services {
		alias, _, _ := strings.Cut(strings.ReplaceAll(s.Alias, ",", " "), " ")
		list = append(list, jsonService{Name: s.Name, Alias: alias, Entrypoint: s.Entrypoint, Command: s.Command})
	}
	out, _ := json.Marshal(list)
	return string(out)
}
