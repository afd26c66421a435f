package tryjob

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// maxExtendsDepth is GitLab's Gitlab::Ci::Config::Extendable::Entry::MAX_NESTING_LEVELS: how
// many ancestors an entry that itself extends may have.
const maxExtendsDepth = 10

// resolveExtends returns the job's hash with its extends applied: each parent, in order,
// deep-merged, then the job's own keys on top.
func (f *File) resolveExtends(name string, seen []string) (map[string]any, error) {
	if slices.Contains(seen, name) {
		return nil, f.errorf("circular extends: %s", strings.Join(append(seen, name), " → "))
	}
	raw, ok := f.top[name]
	if !ok {
		return nil, f.errorf("%s extends unknown key %q", seen[len(seen)-1], name)
	}
	job, ok := raw.(map[string]any)
	if !ok {
		return nil, f.errorf("%q must be a hash to be extended or run", name)
	}
	var parents []string
	switch e := job["extends"].(type) {
	case nil:
	case string:
		parents = []string{e}
	case []any:
		for _, p := range e {
			s, ok := p.(string)
			if !ok {
				return nil, f.errorf("job %q: extends entries must be strings", name)
			}
			parents = append(parents, s)
		}
	default:
		return nil, f.errorf("job %q: extends must be a string or a list of strings", name)
	}
	// GitLab checks the depth only of an entry that extends another (Extendable::Entry:
	// ancestors.count > MAX_NESTING_LEVELS), so a job may extend through 11 levels.
	if len(parents) > 0 && len(seen) > maxExtendsDepth {
		return nil, f.errorf("%s: nesting too deep in `extends` (GitLab allows %d levels): %s", name, maxExtendsDepth+1,
			strings.Join(append(seen, name), " → "))
	}
	merged := map[string]any{}
	for _, p := range parents {
		pm, err := f.resolveExtends(p, append(seen, name))
		if err != nil {
			return nil, err
		}
		merged = deepMerge(merged, pm)
	}
	merged = deepMerge(merged, job)
	delete(merged, "extends")
	return merged, nil
}

// deepMerge returns base with over merged in: hashes recursively, anything else
// (arrays included) replaced — GitLab's extends semantics.
func deepMerge(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	for k, v := range over {
		bm, ok1 := out[k].(map[string]any)
		om, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			out[k] = deepMerge(bm, om)
		} else {
			out[k] = v
		}
	}
	return out
}

// inherit reads the job's inherit: which default keys it takes, and which top-level
// variables (nil: none; an empty non-nil map: all).
func (f *File) inherit(name string, v any) (map[string]bool, map[string]bool, error) {
	def := map[string]bool{"before_script": true, "after_script": true}
	vars := map[string]bool{}
	if v == nil {
		return def, vars, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, nil, f.errorf("job %q: inherit must be a hash", name)
	}
	switch d := m["default"].(type) {
	case nil:
	case bool:
		if !d {
			def = map[string]bool{}
		}
	case []any:
		def = map[string]bool{}
		for _, k := range d {
			if s, ok := k.(string); ok {
				def[s] = true
			}
		}
	default:
		return nil, nil, f.errorf("job %q: inherit:default must be true, false or a list", name)
	}
	switch d := m["variables"].(type) {
	case nil:
	case bool:
		if !d {
			vars = nil
		}
	case []any:
		for _, k := range d {
			if s, ok := k.(string); ok {
				vars[s] = true
			}
		}
		if len(vars) == 0 {
			vars = nil
		}
	default:
		return nil, nil, f.errorf("job %q: inherit:variables must be true, false or a list", name)
	}
	return def, vars, nil
}

// addVars adds the variables hash src to vars; only, when not empty, limits which keys.
func (f *File) addVars(vars map[string]Var, src any, only map[string]bool, what string) error {
	if src == nil {
		return nil
	}
	m, ok := src.(map[string]any)
	if !ok {
		return f.errorf("%s must be a hash", what)
	}
	for k, v := range m {
		if len(only) > 0 && !only[k] {
			continue
		}
		nv := Var{Key: k}
		switch x := v.(type) {
		case map[string]any:
			val, err := scalar(x["value"])
			if err != nil {
				return f.errorf("%s: %s: value %v", what, k, err)
			}
			nv.Value = val
			if e, ok := x["expand"].(bool); ok && !e {
				nv.Raw = true
			}
		default:
			val, err := scalar(x)
			if err != nil {
				return f.errorf("%s: %s %v", what, k, err)
			}
			nv.Value = val
		}
		vars[k] = nv
	}
	return nil
}

func scalar(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(x), nil
	}
	return "", errors.New("must be a string or a number")
}

// flatten turns a script (a string, or an array of strings and nested arrays, which
// GitLab flattens one level at a time) into lines.
func flatten(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []any:
		var out []string
		for _, e := range x {
			lines, err := flatten(e)
			if err != nil {
				return nil, err
			}
			out = append(out, lines...)
		}
		return out, nil
	case int, int64, float64, bool:
		return []string{fmt.Sprint(x)}, nil
	case nil:
		return nil, nil
	case map[string]any:
		return nil, errors.New("must be a string or an array of strings, not a hash (an unquoted line with \": \" in it reads as one: quote the line)")
	}
	return nil, errors.New("must be a string or an array of strings")
}
