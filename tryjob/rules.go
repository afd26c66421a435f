package tryjob

import (
	"slices"
	"strings"
)

// evalRules applies rules: the first rule whose conditions hold decides. It returns
// whether the job is in the pipeline, the rule's when and variables.
func (f *File) evalRules(name string, v any, vars map[string]string) (bool, string, any, error) {
	list, ok := v.([]any)
	if !ok {
		return false, "", nil, f.errorf("job %q: rules must be a list", name)
	}
	for i, r := range list {
		rule, ok := r.(map[string]any)
		if !ok {
			return false, "", nil, f.errorf("job %q: rules[%d] must be a hash", name, i)
		}
		for k := range rule {
			switch k {
			case "if", "when", "variables", "changes", "allow_failure", "start_in", "needs", "interruptible":
			case "exists":
				return false, "", nil, f.errorf("job %q: rules[%d]: exists is not supported by try", name, i)
			default:
				return false, "", nil, f.errorf("job %q: rules[%d]: unknown key %q", name, i, k)
			}
		}
		if _, ok := rule["needs"]; ok {
			return false, "", nil, f.errorf("job %q: rules[%d]: needs is not supported by try", name, i)
		}
		// changes: always holds in pipelines that are not for pushes or merge requests,
		// chat pipelines included.
		if cond, ok := rule["if"]; ok {
			s, ok := cond.(string)
			if !ok {
				return false, "", nil, f.errorf("job %q: rules[%d]: if must be a string", name, i)
			}
			holds, err := evalExpr(s, vars)
			if err != nil {
				return false, "", nil, f.errorf("job %q: rules[%d]: if: %v", name, i, err)
			}
			if !holds {
				continue
			}
		}
		when, _ := rule["when"].(string)
		if when == "never" {
			return false, "", nil, nil
		}
		return true, when, rule["variables"], nil
	}
	return false, "", nil, nil
}

// workflowAllows applies workflow:rules, which decide whether there is a pipeline at all.
func (f *File) workflowAllows(vars map[string]string) (bool, error) {
	rw, err := f.resolved("workflow")
	if err != nil {
		return false, err
	}
	w, ok := rw.(map[string]any)
	if !ok {
		return true, nil
	}
	rules, ok := w["rules"]
	if !ok {
		return true, nil
	}
	in, _, _, err := f.evalRules("workflow", rules, vars)
	return in, err
}

// onlyExcept applies only and except. Without either, GitLab's default is
// only: [branches, tags], which a chat pipeline (on the default branch) matches.
func (f *File) onlyExcept(name string, only, except any, ref string, vars map[string]string) (bool, error) {
	if only != nil {
		in, err := f.policyMatches(name, "only", only, ref, vars)
		if err != nil || !in {
			return false, err
		}
	}
	if except != nil {
		out, err := f.policyMatches(name, "except", except, ref, vars)
		if err != nil || out {
			return false, err
		}
	}
	return true, nil
}

// policyMatches says whether an only or except value matches a chat pipeline. For only,
// every condition given must hold; for except, any (GitLab's semantics).
func (f *File) policyMatches(name, key string, v any, ref string, vars map[string]string) (bool, error) {
	var refs []any
	var conds []bool
	switch x := v.(type) {
	case []any:
		refs = x
	case string:
		refs = []any{x}
	case map[string]any:
		for k, c := range x {
			switch k {
			case "refs":
				r, ok := c.([]any)
				if !ok {
					if s, ok := c.(string); ok {
						r = []any{s}
					} else {
						return false, f.errorf("job %q: %s:refs must be a list", name, key)
					}
				}
				refs = r
			case "variables":
				list, ok := c.([]any)
				if !ok {
					return false, f.errorf("job %q: %s:variables must be a list", name, key)
				}
				holdsAny := false
				for _, e := range list {
					s, ok := e.(string)
					if !ok {
						return false, f.errorf("job %q: %s:variables entries must be strings", name, key)
					}
					holds, err := evalExpr(s, vars)
					if err != nil {
						return false, f.errorf("job %q: %s:variables: %v", name, key, err)
					}
					holdsAny = holdsAny || holds
				}
				conds = append(conds, holdsAny)
			case "changes":
				conds = append(conds, true) // holds in non-push pipelines
			default:
				return false, f.errorf("job %q: %s:%s is not supported by try", name, key, k)
			}
		}
	default:
		return false, f.errorf("job %q: %s must be a list or a hash", name, key)
	}
	if refs != nil {
		m := false
		for _, r := range refs {
			s, ok := r.(string)
			if !ok {
				return false, f.errorf("job %q: %s entries must be strings", name, key)
			}
			ok, err := refMatches(s, ref, vars["CI_PROJECT_PATH"])
			if err != nil {
				return false, f.errorf("job %q: %s: %v", name, key, err)
			}
			m = m || ok
		}
		conds = append(conds, m)
	}
	if key == "except" {
		return slices.Contains(conds, true), nil
	}
	return !slices.Contains(conds, false), nil
}

// refMatches is GitLab's Build::Policy::Refs for one pattern in a chat pipeline, which
// runs on a branch (the default one): "pattern@group/project" holds only in that project;
// "branches", the source "chat" and its plural "chats" hold; a /regexp/ is matched against
// the ref, anything else compared with it.
func refMatches(pattern, ref, project string) (bool, error) {
	if p, path, ok := strings.Cut(pattern, "@"); ok {
		if path != project {
			return false, nil
		}
		pattern = p
	}
	switch pattern {
	case "branches", "chat", "chats":
		return true, nil
	}
	if strings.HasPrefix(pattern, "/") {
		re, err := compileSlashRegexp(pattern)
		if err != nil {
			return false, err
		}
		return re.MatchString(ref), nil
	}
	return pattern == ref, nil
}
