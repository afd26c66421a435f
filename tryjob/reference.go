package tryjob

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file implements GitLab's !reference tag (Gitlab::Ci::Config::Yaml::Tags::Reference):
// `!reference [.setup, script]` stands for the value at that path of the configuration,
// after extends are applied, with its own references resolved in turn.

// reference is one !reference tag of the file.
type reference struct {
	path  []string // nil when the tag is not a non-empty sequence of strings
	shown string   // the tag's content as GitLab's messages show it
	state uint8
	value any
}

const (
	refUnresolved uint8 = iota
	refResolving
	refDone
)

// maxReferenceDepth is how deeply references may stand inside referenced values (GitLab's
// documentation: "You can nest !reference tags up to 10 levels").
const maxReferenceDepth = 10

// refSentinel marks where a !reference stood, between decoding and resolving: a string no
// YAML file writes by accident.
const refSentinel = "\x00chatops-executor !reference #"

// takeReferences replaces every !reference node under n with a sentinel string, so that the
// document decodes with yaml's own anchors, aliases and merge keys, and returns the tags.
func takeReferences(n *yaml.Node, refs *[]*reference) {
	if n == nil {
		return
	}
	if n.Tag == "!reference" {
		r := &reference{}
		if n.Kind == yaml.SequenceNode && len(n.Content) > 0 {
			var path, quoted []string
			for _, c := range n.Content {
				if c.Kind != yaml.ScalarNode || c.ShortTag() != "!!str" {
					path = nil
					break
				}
				path = append(path, c.Value)
				quoted = append(quoted, strconv.Quote(c.Value))
			}
			if path != nil {
				r.path, r.shown = path, "["+strings.Join(quoted, ", ")+"]"
			}
		}
		if r.path == nil {
			// GitLab shows the scalar, else the map, else the sequence (Tags::Base:
			// `scalar.presence || map.presence || seq`); an empty one shows as [].
			r.shown = "[]"
			if len(n.Content) > 0 || n.Kind == yaml.ScalarNode && n.Value != "" {
				r.shown = rubyInspect(n)
			}
		}
		*refs = append(*refs, r)
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: refSentinel + strconv.Itoa(len(*refs)-1)}
		return
	}
	for _, c := range n.Content {
		takeReferences(c, refs)
	}
}

// rubyInspect shows an invalid tag's content as GitLab's error does (Ruby's #inspect).
func rubyInspect(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.SequenceNode:
		var parts []string
		for _, c := range n.Content {
			if c.Kind == yaml.ScalarNode && c.ShortTag() != "!!str" {
				parts = append(parts, c.Value)
			} else {
				parts = append(parts, rubyInspect(c))
			}
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case yaml.MappingNode:
		var parts []string
		for i := 0; i+1 < len(n.Content); i += 2 {
			parts = append(parts, rubyInspect(n.Content[i])+"=>"+rubyInspect(n.Content[i+1]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return "[]"
}

// restoreReferences puts the tags back where their sentinels are.
func restoreReferences(v any, refs []*reference) any {
	switch x := v.(type) {
	case string:
		if n, ok := strings.CutPrefix(x, refSentinel); ok {
			if i, err := strconv.Atoi(n); err == nil && i >= 0 && i < len(refs) {
				return refs[i]
			}
		}
	case map[string]any:
		for k, e := range x {
			x[k] = restoreReferences(e, refs)
		}
	case []any:
		for i, e := range x {
			x[i] = restoreReferences(e, refs)
		}
	}
	return v
}

// deepResolve returns v with every reference in it replaced by its value.
func (f *File) deepResolve(v any, depth int) (any, error) {
	switch x := v.(type) {
	case *reference:
		return f.resolveRef(x, depth)
	case map[string]any:
		out := make(map[string]any, len(x))
		for _, k := range sortedKeys(x) {
			r, err := f.deepResolve(x[k], depth)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := f.deepResolve(e, depth)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

func (f *File) resolveRef(r *reference, depth int) (any, error) {
	switch {
	case r.path == nil:
		return nil, f.errorf("!reference %s is not valid", r.shown)
	case r.state == refResolving:
		return nil, f.errorf("!reference %s is part of a circular chain", r.shown)
	case r.state == refDone:
		return r.value, nil
	case depth >= maxReferenceDepth:
		return nil, f.errorf("!reference %s is nested too deeply (GitLab resolves %d levels)", r.shown, maxReferenceDepth)
	}
	r.state = refResolving
	defer func() {
		if r.state == refResolving {
			r.state = refUnresolved
		}
	}()
	obj, err := f.dig(r.path)
	if err != nil {
		return nil, err
	}
	if obj == nil || obj == false {
		return nil, f.errorf("!reference %s could not be found", r.shown)
	}
	v, err := f.deepResolve(obj, depth+1)
	if err != nil {
		return nil, err
	}
	if v == nil || v == false {
		return nil, f.errorf("!reference %s could not be found", r.shown)
	}
	r.value, r.state = v, refDone
	return v, nil
}

// dig finds path in the configuration after extends (GitLab resolves tags after
// Config::Extendable). A missing key, or a key into something that is not a hash, is nil.
func (f *File) dig(path []string) (any, error) {
	var cur any
	first, ok := f.top[path[0]]
	if !ok {
		return nil, nil
	}
	cur = first
	if m, ok := first.(map[string]any); ok && m["extends"] != nil {
		ext, err := f.resolveExtends(path[0], nil)
		if err != nil {
			return nil, err
		}
		cur = ext
	}
	for _, k := range path[1:] {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, nil
		}
		if cur, ok = m[k]; !ok {
			return nil, nil
		}
	}
	return cur, nil
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// resolved returns the top-level value of key with its references resolved.
func (f *File) resolved(key string) (any, error) {
	v, ok := f.top[key]
	if !ok {
		return nil, nil
	}
	return f.deepResolve(v, 0)
}
