// Package tryjob is what `chatops-executor try` needs besides the executor itself: it reads
// one job from a .gitlab-ci.yml the way GitLab would for a chat pipeline, builds the job
// response GitLab would hand the runner, and renders what a fake Slack received as a
// terminal transcript.
//
// The YAML subset is the one chat jobs use: the top-level default, before_script,
// after_script and variables; a job's script, before_script, after_script, variables,
// extends (GitLab's deep merge of hashes, arrays replaced), inherit, only/except, rules
// and when. Keywords that would change what runs but that a local run cannot reproduce
// (include, image, services, cache, needs…) are errors that name them, not silence;
// keywords that only matter to GitLab's scheduling (stage, tags, allow_failure…) are
// accepted and reported as notes.
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

// reservedKeys are the top-level keys that are not jobs (GitLab's Config::Entry::Root).
var reservedKeys = map[string]bool{
	"default": true, "include": true, "stages": true, "types": true, "variables": true,
	"workflow": true, "before_script": true, "after_script": true, "image": true,
	"services": true, "cache": true, "spec": true,
}

// Job keywords, by what a local run does with them.
var (
	// supported change what runs and are honoured.
	supportedKeys = map[string]bool{
		"script": true, "before_script": true, "after_script": true, "variables": true,
		"extends": true, "only": true, "except": true, "rules": true, "when": true,
		"inherit": true, "stage": true,
	}
	// ignoredKeys only matter to GitLab's scheduling and UI, or to the runner's
	// choice of executor: the script runs the same without them.
	ignoredKeys = map[string]bool{
		"tags": true, "allow_failure": true, "timeout": true, "interruptible": true,
		"environment": true, "resource_group": true, "retry": true, "coverage": true,
		"description": true, "manual_confirmation": true, "artifacts": true,
	}
	// unsupportedKeys would change what runs (files present, commands, variables, which
	// jobs exist) in ways a local run cannot reproduce.
	unsupportedKeys = map[string]bool{
		"image": true, "services": true, "cache": true, "needs": true, "dependencies": true,
		"trigger": true, "parallel": true, "secrets": true, "id_tokens": true, "hooks": true,
		"release": true, "pages": true, "start_in": true, "run": true, "identity": true,
		"dast_configuration": true,
	}
	// unsupportedTopKeys are top-level keys that change what runs.
	unsupportedTopKeys = []string{"include", "image", "services", "cache"}
	// defaultKeys are the default: keys honoured; the others are unsupported or ignored
	// like the job keys of the same name.
	defaultKeys = map[string]bool{"before_script": true, "after_script": true, "variables": true}
)

// Parse reads a .gitlab-ci.yml. name is the file name used in messages.
func Parse(name string, data []byte) (*File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{File: name, Msg: "the file is empty"}
		}
		return nil, &ConfigError{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	// A file with a spec: header has the pipeline in its second document.
	if _, ok := top["spec"]; ok {
		top = nil
		if err := dec.Decode(&top); err != nil && !errors.Is(err, io.EOF) {
			return nil, &ConfigError{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		}
	}
	if top == nil {
		top = map[string]any{}
	}
	return &File{name: name, top: top}, nil
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
}

// Job is a job as the runner would receive it.
type Job struct {
	Name, Stage                       string
	BeforeScript, Script, AfterScript []string
	// Variables are the file's and the job's, the job's winning, sorted by key.
	Variables []Var
	// Notes name the keywords the run ignores.
	Notes []string
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
	for _, k := range unsupportedTopKeys {
		if _, ok := f.top[k]; ok {
			return nil, f.errorf("the top-level %q keyword is not supported by try: it changes what runs", k)
		}
	}
	raw, ok := f.top[name]
	if !ok || reservedKeys[name] || strings.HasPrefix(name, ".") {
		return nil, notScheduled(name)
	}
	if _, ok := raw.(map[string]any); !ok {
		return nil, notScheduled(name)
	}
	job, err := f.resolveExtends(name, nil)
	if err != nil {
		return nil, err
	}
	var unknown, unsupported, notes []string
	for _, k := range slices.Sorted(maps.Keys(job)) {
		switch {
		case supportedKeys[k]:
		case ignoredKeys[k]:
			notes = append(notes, k)
		case unsupportedKeys[k]:
			unsupported = append(unsupported, k)
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return nil, f.errorf("job %q has unknown keywords: %s", name, strings.Join(unknown, ", "))
	}
	if len(unsupported) > 0 {
		return nil, f.errorf("job %q uses keywords try cannot reproduce locally (they change what runs): %s",
			name, strings.Join(unsupported, ", "))
	}

	inheritDefault, inheritVars, err := f.inherit(name, job["inherit"])
	if err != nil {
		return nil, err
	}
	def := map[string]any{}
	if d, ok := f.top["default"]; ok {
		dm, ok := d.(map[string]any)
		if !ok {
			return nil, f.errorf("default must be a hash")
		}
		for _, k := range slices.Sorted(maps.Keys(dm)) {
			switch {
			case defaultKeys[k]:
				def[k] = dm[k]
			case ignoredKeys[k]:
			default:
				return nil, f.errorf("default:%s is not supported by try: it changes what runs", k)
			}
		}
	}
	// The deprecated top-level before_script and after_script act as defaults;
	// default: wins over them.
	for _, k := range []string{"before_script", "after_script"} {
		if _, ok := def[k]; !ok {
			if v, ok := f.top[k]; ok {
				def[k] = v
			}
		}
	}

	out := &Job{Name: name, Stage: "test", Notes: notes}
	if s, ok := job["stage"].(string); ok {
		out.Stage = s
	}
	// Variables: default's, then the top level's, then the job's; each later one wins.
	vars := map[string]Var{}
	if inheritVars != nil {
		for _, src := range []any{def["variables"], f.top["variables"]} {
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

func (f *File) errorf(format string, args ...any) error {
	return &ConfigError{File: f.name, Msg: fmt.Sprintf(format, args...)}
}
