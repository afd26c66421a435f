// Package bashscript generates the stage scripts that gitlab-runner 19.4.0
// hands to a custom executor's run_exec when the job's shell is bash (or sh).
//
// The output is meant to be byte-for-byte what the runner writes to the
// script file, so that an executor tested against it sees exactly what it
// will see in production. It mirrors, without importing or copying them:
//
//   - shells/bash.go: BashWriter (line/indent handling, Variable, SourceEnv,
//     Noticef, SectionStart/End, CommandWithStdin, SetupGitCredHelper) and
//     Finish (shebang, trap 'exit 1' TERM, pipefail/errexit, set +o noclobber,
//     "(trap 'exit 1' TERM; eval $'<body>') < /dev/null", exit 0), plus the
//     prepare-stage "Running on $(hostname)..." line;
//   - helpers/shell_escape.go: ShellEscape / PosixShellEscape;
//   - shells/abstract.go: writePrepareScript, writeGetSourcesScript (for
//     GIT_STRATEGY none and empty), writeExports (GITLAB_ENV),
//     writeUserScript, writeCommands (coloured "$ cmd" echo, collapsed
//     multi-line commands, FF_SCRIPT_SECTIONS), writeAfterScript and
//     writeCleanupScript;
//   - common/build.go: the stage names and the settings read from variables
//     (GIT_STRATEGY, CI_DEBUG_TRACE, feature flags).
//
// The caller supplies the final variable list the runner would export
// (feature flags, predefined CI_* variables, job variables, already
// expanded); the emulator package builds that list like common/build.go.
// Feature flags that change the script (FF_USE_LEGACY_BASH_EVAL,
// FF_POSIXLY_CORRECT_ESCAPES, FF_ENABLE_BASH_EXIT_CODE_CHECK,
// FF_SCRIPT_SECTIONS, FF_GIT_URLS_WITHOUT_TOKENS, FF_ENABLE_JOB_CLEANUP) are
// read from that list, as the runner reads its resolved flags.
//
// Not covered: GIT_STRATEGY clone and fetch (git checkout scripts), caches,
// artifacts, TLS file variables' git SSL config (the custom executor is a
// "shared" environment, so the runner skips it anyway) and non-bash shells.
package bashscript

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/chatops-executor/chatops-executor/job"
)

// Runner stage names (common/build.go BuildStage constants).
const (
	StagePrepare     = "prepare_script"
	StageGetSources  = "get_sources"
	StageUserScript  = "step_script"
	StageAfterScript = "after_script"
	StageCleanup     = "cleanup_file_variables"
)

// ExecStageName is the stage argument run_exec receives for a runner stage:
// executors/custom/custom.go still renames step_script to build_script.
func ExecStageName(stage string) string {
	if stage == StageUserScript {
		return "build_script"
	}
	return stage
}

// ErrSkipStage reports a stage the runner would not run at all (no
// after_script, no script step), mirroring common.ErrSkipBuildStage.
var ErrSkipStage = errors.New("nothing to do in this stage")

// ErrUnsupportedGitStrategy is returned for get_sources when GIT_STRATEGY
// asks for a git checkout, which this package does not generate.
var ErrUnsupportedGitStrategy = errors.New("unsupported GIT_STRATEGY (only none and empty are generated)")

// Variable is one job variable as the runner holds it (spec.Variable): the same shape as
// in the job response the executor reads.
type Variable = job.Variable

// Job is what a stage script depends on.
type Job struct {
	// Variables is the runner's final, expanded variable list, in export
	// order; a later duplicate key wins, as in bash.
	Variables []Variable
	// BuildsDir is the runner's builds_dir (CI_BUILDS_DIR, Build.RootDir).
	BuildsDir string
	// ProjectDir is the build directory (CI_PROJECT_DIR, Build.BuildDir).
	ProjectDir string
	// TmpDir holds file variables and GITLAB_ENV; empty means
	// ProjectDir + ".tmp", as Build.TmpProjectDir.
	TmpDir string
	// RemoteURL is the repository URL git would use (git_info.repo_url, or
	// the runner's clone_url + project path); only its scheme and host are
	// used, for the "git credential reject" line.
	RemoteURL string
	// Hostname is the hostname from config_exec, shown by prepare_script.
	Hostname string
	// Shell is "bash" (default) or "sh"; it only changes the shebang.
	Shell string
	// AllowGitFetch makes fetch the default GIT_STRATEGY (allow_git_fetch).
	AllowGitFetch bool
	// TraceSections is the job's features.trace_sections.
	TraceSections bool
	// BeforeScript and Script form the user script (GitLab sends them
	// merged as the "script" step); AfterScript is the after_script step.
	// Both nil means the job has no script step, so the runner skips the
	// stage; an empty non-nil Script still yields the exports and cd.
	// An empty AfterScript is skipped.
	BeforeScript, Script, AfterScript []string
	// PreBuildScript and PostBuildScript are the runner config's
	// pre_build_script / post_build_script.
	PreBuildScript, PostBuildScript string
}

// Stage is one script the runner hands to run_exec.
type Stage struct {
	Name   string // runner stage, e.g. "step_script"
	Exec   string // stage argument run_exec receives, e.g. "build_script"
	Script string
}

// Stages returns the scripts for a job without cache or artifacts, in call
// order: prepare_script, get_sources, step_script, after_script,
// cleanup_file_variables, skipping the ones the runner would skip.
// after_script is generated with the variables as given; the runner sets
// CI_JOB_STATUS before generating it (use Generate with the updated list).
func Stages(j Job) ([]Stage, error) {
	var out []Stage
	for _, name := range []string{StagePrepare, StageGetSources, StageUserScript, StageAfterScript, StageCleanup} {
		s, err := Generate(j, name)
		if errors.Is(err, ErrSkipStage) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Stage{Name: name, Exec: ExecStageName(name), Script: s})
	}
	return out, nil
}

// Generate returns the script of one runner stage, or ErrSkipStage.
func Generate(j Job, stage string) (string, error) {
	g := newGenerator(j)
	var err error
	switch stage {
	case StagePrepare:
		g.prepare()
	case StageGetSources:
		err = g.getSources()
	case StageUserScript:
		err = g.userScript()
	case StageAfterScript:
		err = g.afterScript()
	case StageCleanup:
		err = g.cleanup()
	default:
		return "", fmt.Errorf("generate %q: unknown stage", stage)
	}
	if err != nil {
		return "", fmt.Errorf("generate %s: %w", stage, err)
	}
	return g.finish(), nil
}

type generator struct {
	j Job
	w *writer
}

func newGenerator(j Job) *generator {
	if j.TmpDir == "" {
		j.TmpDir = j.ProjectDir + ".tmp"
	}
	if j.Shell == "" {
		j.Shell = "bash"
	}
	g := &generator{j: j}
	g.w = &writer{
		tmpDir:        j.TmpDir,
		exitCodeCheck: g.flag("FF_ENABLE_BASH_EXIT_CODE_CHECK"),
		posixEscape:   g.flag("FF_POSIXLY_CORRECT_ESCAPES"),
	}
	return g
}

// value is spec.Variables.Value: the last variable with that key wins.
func (g *generator) value(key string) string {
	for i := len(g.j.Variables) - 1; i >= 0; i-- {
		if g.j.Variables[i].Key == key {
			return g.j.Variables[i].Value
		}
	}
	return ""
}

// boolSetting parses like common/build_settings.go validate[bool]: empty or
// invalid falls back to the default.
func (g *generator) boolSetting(key string, def bool) bool {
	v, err := strconv.ParseBool(g.value(key))
	if err != nil {
		return def
	}
	return v
}

func (g *generator) flag(name string) bool { return g.boolSetting(name, false) }

func (g *generator) gitStrategy() string {
	switch s := g.value("GIT_STRATEGY"); s {
	case "clone", "fetch", "none", "empty":
		return s
	}
	if g.j.AllowGitFetch {
		return "fetch"
	}
	return "clone"
}

func (g *generator) noCheckout() bool {
	s := g.gitStrategy()
	return s == "none" || s == "empty"
}

func (g *generator) submoduleStrategy() string {
	if g.noCheckout() {
		return "none"
	}
	switch s := g.value("GIT_SUBMODULE_STRATEGY"); s {
	case "normal", "recursive":
		return s
	}
	return "none"
}

func (g *generator) debugTrace() bool { return g.boolSetting("CI_DEBUG_TRACE", false) }

func (g *generator) debugMode() bool {
	return g.debugTrace() || g.boolSetting("CI_DEBUG_SERVICES", false)
}

const (
	gitlabEnvFileName       = "gitlab_runner_env"
	externalGitConfigFile   = ".gitlab-runner.ext.conf"
	globalGitConfigSeedFile = ".glr.gconf"
	buildUIDGIDFile         = ".gitlab-build-uid-gid"
	gitTemplateDir          = "git-template"
)

// exports is AbstractShell.exportVariables. envOnly is the cleanup variant:
// file variables are not rewritten, only their paths exported.
func (g *generator) exports(envOnly bool) {
	w := g.w
	for _, v := range g.j.Variables {
		if envOnly && v.File {
			w.variable(Variable{Key: v.Key, Value: w.tmpFile(v.Key)})
			continue
		}
		w.variable(v)
	}
	envFile := w.tmpFile(gitlabEnvFileName)
	w.variable(Variable{Key: "GITLAB_ENV", Value: envFile})
	w.sourceEnv(envFile)
	if g.flag("FF_GIT_URLS_WITHOUT_TOKENS") {
		w.exportRaw("GIT_CONFIG_GLOBAL", w.tmpFile(globalGitConfigSeedFile))
	}
}

func (g *generator) prepare() {
	w := g.w
	if g.j.Hostname != "" {
		w.line("echo " + strconv.Quote("Running on $(hostname) via "+g.j.Hostname+"..."))
	} else {
		w.line("echo " + strconv.Quote("Running on $(hostname)..."))
	}
	w.rmFile(w.tmpFile(gitlabEnvFileName))
	w.rmFile(w.tmpFile("masking.db"))
}

// remoteHost is url_helpers.OnlySchemeAndHost of the remote URL.
func (g *generator) remoteHost() (*url.URL, error) {
	u, err := url.Parse(g.j.RemoteURL)
	if err != nil {
		return nil, fmt.Errorf("parse remote URL: %w", err)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// clearGitCredentials is writeClearGitCredentials: a best-effort erase of
// the job token from any credential helper.
func (g *generator) clearGitCredentials() {
	remote, err := g.remoteHost()
	if err != nil || remote.Host == "" ||
		(remote.Scheme != "http" && remote.Scheme != "https" && remote.Scheme != "ssh") {
		return
	}
	g.w.commandWithStdinBestEffort("url="+remote.String()+"\nusername=gitlab-ci-token", "git", "credential", "reject")
}

func (g *generator) getSources() error {
	w := g.w
	strategy := g.gitStrategy()
	if strategy != "none" && strategy != "empty" {
		return fmt.Errorf("GIT_STRATEGY %q: %w", strategy, ErrUnsupportedGitStrategy)
	}
	g.exports(false)
	w.variable(Variable{Key: "GIT_TERMINAL_PROMPT", Value: "0"})
	w.variable(Variable{Key: "GCM_INTERACTIVE", Value: "Never"})

	if g.flag("FF_GIT_URLS_WITHOUT_TOKENS") {
		// setupTokenlessGitConfig + setupCredHelperOnly (none/empty).
		ext := w.tmpFile(externalGitConfigFile)
		seed := w.tmpFile(globalGitConfigSeedFile)
		w.rmFile(seed)
		for _, userConfig := range []string{"$HOME/.gitconfig", "$HOME/.config/git/config"} {
			w.ifFileReadable(userConfig)
			w.commandArgExpand("git", "config", "--file", seed, "--add", "include.path", userConfig)
			w.endIf()
		}
		w.commandArgExpand("git", "config", "--file", seed, "--add", "include.path", ext)
		w.rmFile(ext)
		remote, err := g.remoteHost()
		if err != nil {
			return err
		}
		w.setupGitCredHelper(ext, "credential."+remote.String(), "gitlab-ci-token")
	}

	// writeCloneFetchCmds
	if !g.boolSetting("GIT_LFS_SKIP_SMUDGE", false) {
		w.variable(Variable{Key: "GIT_LFS_SKIP_SMUDGE", Value: "1"})
	}
	if strategy == "none" {
		w.notice("Skipping Git repository setup")
		w.mkDir(g.j.ProjectDir)
	} else {
		w.notice("Skipping Git repository setup and creating an empty build directory")
		w.rmDir(g.j.ProjectDir)
		w.mkDir(g.j.ProjectDir)
	}
	w.notice("Skipping Git checkout")
	w.notice("Skipping Git submodules setup")

	g.changeFilesOwnership(g.j.BuildsDir)
	g.clearGitCredentials()
	return nil
}

// changeFilesOwnership only acts when a Kubernetes helper left a uid/gid
// file behind; the runner writes the check for every POSIX shell anyway.
func (g *generator) changeFilesOwnership(dirs ...string) {
	w := g.w
	file := g.j.BuildsDir + "/" + buildUIDGIDFile
	quoted := "'" + file + "'"
	w.ifFile(file)
	for _, d := range dirs {
		if strings.TrimSpace(d) == "" {
			continue
		}
		w.ifDirectory(d)
		w.line(fmt.Sprintf(`chown -R "$(stat -c '%%u:%%g' %s)" '%s'`, quoted, d))
		if g.debugMode() {
			w.line(fmt.Sprintf(`echo "Setting ownership for %s to $(stat -c '%%u:%%g' %s)"`, d, quoted))
		}
		w.endIf()
	}
	w.endIf()
}

// commands is AbstractShell.writeCommands.
func (g *generator) commands(prefix string, cmds ...string) {
	w := g.w
	sections := g.flag("FF_SCRIPT_SECTIONS") && g.j.TraceSections
	for i, c := range cmds {
		c = strings.TrimSpace(c)
		switch first, _, multi := strings.Cut(c, "\n"); {
		case c == "":
			w.emptyLine()
		case !multi:
			w.notice("$ " + c)
		case sections:
			id := fmt.Sprintf("%s_%d", prefix, i)
			w.sectionStart(id, "$ "+c, []string{"hide_duration=true", "collapsed=true"})
			w.sectionEnd(id)
		default:
			w.notice("$ " + first + " # collapsed multi-line command")
		}
		w.line(c)
		w.checkForErrors()
	}
}

func (g *generator) userScript() error {
	if g.j.BeforeScript == nil && g.j.Script == nil {
		return ErrSkipStage
	}
	g.exports(false)
	g.w.cd(g.j.ProjectDir)
	if g.j.PreBuildScript != "" {
		g.commands("pre_build_script", g.j.PreBuildScript)
	}
	script := append(append([]string(nil), g.j.BeforeScript...), g.j.Script...)
	g.commands("script_step", script...)
	if g.j.PostBuildScript != "" {
		g.commands("post_build_script", g.j.PostBuildScript)
	}
	return nil
}

func (g *generator) afterScript() error {
	if len(g.j.AfterScript) == 0 {
		return ErrSkipStage
	}
	g.exports(false)
	g.w.cd(g.j.ProjectDir)
	g.w.notice("Running after script...")
	g.commands("after_script_step", g.j.AfterScript...)
	return nil
}

func (g *generator) cleanup() error {
	w := g.w
	g.exports(true)
	g.clearGitCredentials()
	w.rmFile(w.tmpFile(gitlabEnvFileName))
	w.rmFile(w.tmpFile("masking.db"))
	w.rmFile(w.tmpFile(externalGitConfigFile))
	w.rmFile(w.tmpFile(globalGitConfigSeedFile))
	for _, v := range g.j.Variables {
		if v.File {
			w.rmFile(w.tmpFile(v.Key))
		}
	}
	if g.flag("FF_ENABLE_JOB_CLEANUP") {
		switch g.gitStrategy() {
		case "clone", "empty":
			w.rmDir(g.j.ProjectDir)
		case "none":
			w.notice("Skipping build directory cleanup step")
		default:
			return fmt.Errorf("FF_ENABLE_JOB_CLEANUP with GIT_STRATEGY %q: %w", g.gitStrategy(), ErrUnsupportedGitStrategy)
		}
	}
	g.gitCleanup()
	w.rmFile(path.Join(g.j.BuildsDir, buildUIDGIDFile))
	return nil
}

// gitCleanup is writeGitCleanup: stale git lock files, and for strategies
// other than none the git configs and hooks a previous job could have
// planted (the custom executor is not "shell", so that cleanup applies).
func (g *generator) gitCleanup() {
	w := g.w
	gitDir := path.Join(g.j.ProjectDir, ".git")
	subs := g.submoduleStrategy() != "none"
	for _, f := range []string{"index.lock", "shallow.lock", "HEAD.lock", "hooks/post-checkout", "config.lock"} {
		w.rmFile(path.Join(gitDir, f))
		if subs {
			w.rmFilesRecursive(path.Join(gitDir, "modules"), path.Base(f))
		}
	}
	w.rmFilesRecursive(path.Join(gitDir, "refs"), "*.lock")

	if g.gitStrategy() == "none" {
		return
	}
	for _, dir := range []string{w.tmpFile(gitTemplateDir), gitDir} {
		w.rmFile(path.Join(dir, "config"))
		w.rmDir(path.Join(dir, "hooks"))
	}
	if subs {
		modules := path.Join(gitDir, "modules")
		w.rmFilesRecursive(modules, "config")
		w.ifDirectory(modules)
		w.line(fmt.Sprintf(`et='+' ; find /dev/null -exec true {} + 2>/dev/null || et=';' ; find %s -name %s -type d -depth -exec rm -rf -- {} "${et}"`, goQuote(modules), goQuote("hooks")))
		w.endIf()
	}
}

// finish is BashWriter.Finish.
func (g *generator) finish() string {
	var b strings.Builder
	b.WriteString("#!/usr/bin/env " + g.j.Shell + "\n\n")
	b.WriteString("trap 'exit 1' TERM\n\n")
	if g.debugTrace() {
		b.WriteString("set -o xtrace\n")
	}
	b.WriteString(`case "$(set -o)" in *"pipefail"*) set -o pipefail;; esac; set -o errexit` + "\n")
	b.WriteString("set +o noclobber\n")
	body := g.w.escape(g.w.b.String())
	if g.flag("FF_USE_LEGACY_BASH_EVAL") {
		b.WriteString(": | eval " + body + "\n")
	} else {
		b.WriteString("(trap 'exit 1' TERM; eval " + body + ") < /dev/null\n")
	}
	b.WriteString("exit 0\n")
	return b.String()
}
