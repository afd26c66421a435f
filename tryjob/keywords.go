package tryjob

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// reservedKeys are the top-level keys that are not jobs (GitLab's Config::Entry::Root).
var reservedKeys = map[string]bool{
	"default": true, "include": true, "stages": true, "types": true, "variables": true,
	"workflow": true, "before_script": true, "after_script": true, "image": true,
	"services": true, "cache": true, "spec": true,
}

// supportedKeys change what runs and are honoured.
var supportedKeys = map[string]bool{
	"script": true, "before_script": true, "after_script": true, "variables": true,
	"extends": true, "only": true, "except": true, "rules": true, "when": true,
	"inherit": true, "stage": true,
}

// ignoredKeys do not change what the script does here: try accepts them with one warning
// line each, saying what it does instead.
var ignoredKeys = map[string]string{
	"image":               "this executor runs jobs on the host, not in a container: it ignores image",
	"services":            "this executor runs jobs on the host: it starts no services",
	"cache":               "try neither restores nor saves a cache: the job starts without one",
	"needs":               "a chat pipeline holds only the job asked for: there is nothing to wait for",
	"dependencies":        "a chat pipeline holds only the job asked for: there are no artifacts to fetch",
	"artifacts":           "try uploads no artifacts",
	"tags":                "tags choose a runner in GitLab; try runs the job here",
	"timeout":             "try does not enforce the job's timeout",
	"retry":               "try runs the job once, never retrying it",
	"interruptible":       "only GitLab's auto-cancel uses interruptible",
	"environment":         "try records no deployment to the environment",
	"resource_group":      "try does not wait for the resource group",
	"allow_failure":       "allow_failure only changes how GitLab shows the pipeline",
	"coverage":            "try does not parse coverage",
	"description":         "description is not shown by try",
	"manual_confirmation": "try does not ask for confirmation",
}

// unsupportedKeys would change what runs (commands, files present, variables, which jobs
// exist) in ways a local run cannot reproduce.
var unsupportedKeys = map[string]string{
	"trigger":            "a trigger job runs another pipeline, not a script",
	"parallel":           "parallel makes several jobs with other names and variables",
	"secrets":            "secrets are fetched by GitLab into variables and files",
	"id_tokens":          "id_tokens are issued by GitLab",
	"hooks":              "hooks add commands",
	"release":            "release adds a command",
	"pages":              "pages changes what GitLab does with the job",
	"start_in":           "start_in needs when: delayed",
	"run":                "run replaces script with steps",
	"identity":           "identity is set up by GitLab",
	"dast_configuration": "dast_configuration is resolved by GitLab",
	"inputs":             "job inputs are resolved by GitLab",
}

// includeHint is how to preview a file with include: GitLab can show the merged file.
const includeHint = "include: the top-level \"include\" keyword is not supported by try: it changes what runs; " +
	"run try on the merged configuration instead: GitLab shows it in the pipeline editor's Full configuration " +
	"tab, and the CI Lint API returns it as merged_yaml"

// classify checks the keys of one section (a job, default:, or the top level): it adds a
// warning for each ignored key and a problem for each unsupported or unknown one. allowed
// are the keys honoured there.
//
// A keyword ignored in several places (the job's image and default:image) is warned about
// once, where it is seen first.
func classify(where string, m map[string]any, allowed map[string]bool, warned map[string]bool, warnings, problems *[]string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		switch {
		case allowed[k]:
		case ignoredKeys[k] != "":
			if warned[k] {
				continue
			}
			warned[k] = true
			*warnings = append(*warnings, fmt.Sprintf("ignoring %s%s: %s", where, k, ignoredKeys[k]))
		case unsupportedKeys[k] != "":
			*problems = append(*problems, fmt.Sprintf("%s%s: %s", where, k, unsupportedKeys[k]))
		default:
			*problems = append(*problems, fmt.Sprintf("%s%s: not a keyword GitLab knows there", where, k))
		}
	}
}

// problemsError names every keyword try cannot honour, at once.
func (f *File) problemsError(job string, problems []string) error {
	if len(problems) == 1 {
		return f.errorf("try cannot run job %q as GitLab would: %s", job, problems[0])
	}
	return f.errorf("try cannot run job %q as GitLab would (%d keywords):\n  - %s", job, len(problems), strings.Join(problems, "\n  - "))
}
