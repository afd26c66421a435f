// Package tryjob is what `chatops-executor try` needs besides the executor itself: it reads
// one job from a .gitlab-ci.yml the way GitLab would for a chat pipeline, builds the job
// response GitLab would hand the runner, and renders what a fake Slack received as a
// terminal transcript.
//
// The YAML subset is the one chat jobs use: the top-level default, before_script,
// after_script and variables; a job's script, before_script, after_script, variables,
// extends (GitLab's deep merge of hashes, arrays replaced, 11 levels), !reference tags,
// inherit, only/except, rules and when. Keywords that do not change what the script does
// here (image, services, cache, needs, tags, retry, timeout…) are accepted with one warning
// line each; keywords that would change what runs and that a local run cannot reproduce
// (include, trigger, parallel, secrets…) are errors, all named at once.
package tryjob

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// File is a parsed .gitlab-ci.yml.
type File struct {
	name string
	top  map[string]any
}

// ConfigError is a .gitlab-ci.yml that cannot be used: invalid YAML, a keyword a local run
// cannot honour, a broken extends. The file needs editing.
type ConfigError struct {
	File string
	Msg  string
}

func (e *ConfigError) Error() string { return e.File + ": " + e.Msg }

// RefusedError is a job GitLab would not run from chat (not found, excluded from chat
// pipelines) or a manual job without --play. Msg is what the requester would be told.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

// defaultKeys are the default: keys honoured; the others are ignored or unsupported like
// the job keys of the same name.
var defaultKeys = map[string]bool{"before_script": true, "after_script": true, "variables": true}

// topKeys are the top-level keys honoured.
var topKeys = map[string]bool{
	"default": true, "stages": true, "types": true, "variables": true, "workflow": true,
	"before_script": true, "after_script": true, "spec": true,
}

// Parse reads a .gitlab-ci.yml. name is the file name used in messages.
func Parse(name string, data []byte) (*File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	top, err := decodeDoc(dec, name)
	if errors.Is(err, io.EOF) {
		return nil, &ConfigError{File: name, Msg: "the file is empty"}
	}
	if err != nil {
		return nil, err
	}
	// A file with a spec: header has the pipeline in its second document.
	if _, ok := top["spec"]; ok {
		if top, err = decodeDoc(dec, name); errors.Is(err, io.EOF) {
			top = nil
		} else if err != nil {
			return nil, err
		}
	}
	if top == nil {
		top = map[string]any{}
	}
	return &File{name: name, top: top}, nil
}

// decodeDoc decodes the next YAML document, keeping its !reference tags (see reference.go).
func decodeDoc(dec *yaml.Decoder, name string) (map[string]any, error) {
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, err
		}
		return nil, &ConfigError{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var refs []*reference
	takeReferences(&doc, &refs)
	var top map[string]any
	if err := doc.Decode(&top); err != nil {
		return nil, &ConfigError{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	restoreReferences(top, refs)
	return top, nil
}

// Jobs returns the names of the file's jobs (not hidden ones), sorted.
func (f *File) Jobs() []string {
	var out []string
	for k, v := range f.top {
		if _, ok := v.(map[string]any); ok && !reservedKeys[k] && !strings.HasPrefix(k, ".") {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Options are what a chat pipeline knows when it decides which job runs.
type Options struct {
	// Play runs a when: manual job, as pressing its play button would.
	Play bool
	// Vars are the pipeline's predefined variables rules and only:variables see
	// (CI_PIPELINE_SOURCE, CHAT_INPUT…).
	Vars map[string]string
	// Ref is the ref the chat pipeline runs for: the project's default branch.
	Ref string
}

// Var is one job variable.
type Var struct {
	Key, Value string
	// Raw is expand: false: the runner must not expand $references in Value.
	Raw bool
	// Masked is a masked CI/CD variable (try --masked): the runner and the executor hide
	// its value.
	Masked bool
}

// Job is a job as the runner would receive it.
type Job struct {
	Name, Stage                       string
	BeforeScript, Script, AfterScript []string
	// Variables are the file's and the job's, the job's winning, sorted by key.
	Variables []Var
	// Warnings are one line for each keyword the run ignores, saying what it does instead.
	Warnings []string
}

// AddVariables adds CI/CD variables as a project's settings define them (try --var,
// --masked): they beat the file's variables of the same name, as in GitLab.
func (j *Job) AddVariables(vars []Var) {
	for _, v := range vars {
		j.Variables = slices.DeleteFunc(j.Variables, func(o Var) bool { return o.Key == v.Key })
		j.Variables = append(j.Variables, v)
	}
	slices.SortFunc(j.Variables, func(a, b Var) int { return strings.Compare(a.Key, b.Key) })
}

// notScheduled is GitLab's answer when a chat command finds no job to run: a pipeline
// with no job is not persisted, and lib/gitlab/slash_commands/run.rb then calls
// Presenters::Run#failed_to_schedule, whose text (lib/gitlab/slash_commands/presenters/run.rb) is
//
//	'The command could not be scheduled. Make sure that your ' \
//	  'project has a .gitlab-ci.yml that defines a job with the ' \
//	  "name #{command.inspect}"
//
// GitLab gives the same answer whether the job is missing or excluded from chat pipelines
// (Gitlab::Ci::Pipeline::Chain::RemoveUnwantedChatJobs keeps only the named job, and only
// if only/except/rules let it into a chat pipeline).
func notScheduled(job string) *RefusedError {
	return &RefusedError{Msg: "The command could not be scheduled. Make sure that your project has a " +
		".gitlab-ci.yml that defines a job with the name " + strconv.Quote(job)}
}

// Job resolves the job name for a chat pipeline.
func (f *File) Job(name string, opt Options) (*Job, error) {
	if strings.ContainsAny(name, " \t\n\r\v\f") {
		return nil, whiteSpaceName(name)
	}
	raw, ok := f.top[name]
	if !ok || reservedKeys[name] || strings.HasPrefix(name, ".") {
		return nil, notScheduled(name)
	}
	if _, ok := raw.(map[string]any); !ok {
		return nil, notScheduled(name)
	}
	extended, err := f.resolveExtends(name, nil)
	if err != nil {
		return nil, err
	}
	resolvedJob, err := f.deepResolve(extended, 0)
	if err != nil {
		return nil, err
	}
	job := resolvedJob.(map[string]any)

	// Every keyword try cannot honour, in the job, default: and the top level, at once.
	var warnings, problems []string
	warned := map[string]bool{}
	classify("", job, supportedKeys, warned, &warnings, &problems)
	def := map[string]any{}
	if d, ok := f.top["default"]; ok && d != nil {
		rd, err := f.deepResolve(d, 0)
		if err != nil {
			return nil, err
		}
		dm, ok := rd.(map[string]any)
		if !ok {
			return nil, f.errorf("default must be a hash")
		}
		classify("default:", dm, defaultKeys, warned, &warnings, &problems)
		for k := range defaultKeys {
			if v, ok := dm[k]; ok {
				def[k] = v
			}
		}
	}
	top := map[string]any{}
	for k, v := range f.top {
		if reservedKeys[k] {
			top[k] = v
		}
	}
	if _, ok := top["include"]; ok {
		problems = append([]string{includeHint}, problems...)
		delete(top, "include")
	}
	classify("top-level ", top, topKeys, warned, &warnings, &problems)
	if len(problems) > 0 {
		return nil, f.problemsError(name, problems)
	}

	inheritDefault, inheritVars, err := f.inherit(name, job["inherit"])
	if err != nil {
		return nil, err
	}
	// The deprecated top-level before_script and after_script act as defaults;
	// default: wins over them.
	for _, k := range []string{"before_script", "after_script"} {
		if _, ok := def[k]; !ok {
			v, err := f.resolved(k)
			if err != nil {
				return nil, err
			}
			if v != nil {
				def[k] = v
			}
		}
	}
	topVars, err := f.resolved("variables")
	if err != nil {
		return nil, err
	}

	out := &Job{Name: name, Stage: "test", Warnings: warnings}
	if s, ok := job["stage"].(string); ok {
		out.Stage = s
	}
	// Variables: default's, then the top level's, then the job's; each later one wins.
	vars := map[string]Var{}
	if inheritVars != nil {
		for _, src := range []any{def["variables"], topVars} {
			if err := f.addVars(vars, src, inheritVars, "variables"); err != nil {
				return nil, err
			}
		}
	}
	if err := f.addVars(vars, job["variables"], nil, "job "+name+" variables"); err != nil {
		return nil, err
	}

	lookup := maps.Clone(opt.Vars)
	if lookup == nil {
		lookup = map[string]string{}
	}
	for k, v := range vars {
		if _, ok := lookup[k]; !ok {
			lookup[k] = v.Value
		}
	}
	if ok, err := f.workflowAllows(lookup); err != nil {
		return nil, err
	} else if !ok {
		return nil, notScheduled(name)
	}

	when := "on_success"
	if w, ok := job["when"]; ok {
		ws, ok := w.(string)
		if !ok {
			return nil, f.errorf("job %q: when must be a string", name)
		}
		when = ws
	}
	_, hasRules := job["rules"]
	_, hasOnly := job["only"]
	_, hasExcept := job["except"]
	if hasRules && (hasOnly || hasExcept) {
		return nil, f.errorf("job %q: rules cannot be used with only or except", name)
	}
	if hasRules {
		matched, ruleWhen, ruleVars, err := f.evalRules(name, job["rules"], lookup)
		if err != nil {
			return nil, err
		}
		if !matched {
			return nil, notScheduled(name)
		}
		if ruleWhen != "" {
			when = ruleWhen
		}
		if err := f.addVars(vars, ruleVars, nil, "job "+name+" rules variables"); err != nil {
			return nil, err
		}
	} else {
		in, err := f.onlyExcept(name, job["only"], job["except"], opt.Ref, lookup)
		if err != nil {
			return nil, err
		}
		if !in {
			return nil, notScheduled(name)
		}
	}
	switch when {
	case "on_success", "always", "on_failure":
	case "never":
		return nil, notScheduled(name)
	case "manual":
		if !opt.Play {
			return nil, &RefusedError{Msg: fmt.Sprintf("job %q is manual (when: manual): in GitLab it waits for "+
				"someone to press play; pass --play to run it", name)}
		}
	case "delayed":
		return nil, f.errorf("job %q: when: delayed is not supported by try", name)
	default:
		return nil, f.errorf("job %q: unknown when: %q", name, when)
	}

	for _, k := range []string{"before_script", "script", "after_script"} {
		v, ok := job[k]
		if !ok && inheritDefault[k] {
			v, ok = def[k]
		}
		if !ok {
			continue
		}
		lines, err := flatten(v)
		if err != nil {
			return nil, f.errorf("job %q: %s %v", name, k, err)
		}
		switch k {
		case "before_script":
			out.BeforeScript = lines
		case "script":
			out.Script = lines
		case "after_script":
			out.AfterScript = lines
		}
	}
	if len(out.Script) == 0 {
		return nil, f.errorf("job %q has no script", name)
	}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		out.Variables = append(out.Variables, vars[k])
	}
	return out, nil
}

// whiteSpaceName is GitLab's view of a job name with white space: its chat command
// (lib/gitlab/slash_commands/run.rb) takes the first word after "run" as the job name and
// the rest as CHAT_INPUT, so such a job can never be started from chat.
func whiteSpaceName(name string) *RefusedError {
	words := strings.Fields(name)
	first, rest := "", ""
	if len(words) > 0 {
		first, rest = words[0], strings.Join(words[1:], " ")
	}
	return &RefusedError{Msg: fmt.Sprintf("a job whose name has white space cannot be started from chat: GitLab's "+
		"run command takes the first word as the job name, so \"run %s\" asks for job %q with input %q. "+
		"Rename the job, e.g. %q", name, first, rest, strings.Join(words, "-"))}
}

func (f *File) errorf(format string, args ...any) error {
	return &ConfigError{File: f.name, Msg: fmt.Sprintf(format, args...)}
}
