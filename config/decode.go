package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// The TOML decoder stops at the first value of the wrong type and names Go types in its
// message ("destination has type slice"). So the file is first decoded into plain maps and
// walked against Config here: every unknown key, misspelt table and wrong type is found in
// one pass and said in the file's own terms, with an example of what to write. The keys
// with problems are then dropped, so the rest of the file is still decoded and validated.

var (
	durationType = reflect.TypeOf(Duration(0))
	sizeType     = reflect.TypeOf(Size(0))
)

// examples says what a key takes, in words, with an example, for keys where the type alone
// ("a list of strings") would not help. Keys are table.key; rule keys are policy.rule.key.
var examples = map[string]string{
	"executor.builds_dir":          `an absolute path in quotes, e.g. builds_dir = "/var/lib/chatops-executor/builds"`,
	"executor.cache_dir":           `an absolute path in quotes, e.g. cache_dir = "/var/lib/chatops-executor/cache"`,
	"executor.state_dir":           `an absolute path in quotes, e.g. state_dir = "/var/lib/chatops-executor/state"`,
	"executor.shell":               `"bash", "sh" or an absolute path, e.g. shell = "bash"`,
	"executor.run_as":              `a user name in quotes, e.g. run_as = "gitlab-runner"`,
	"executor.non_chat_jobs":       `"reject" or "run", e.g. non_chat_jobs = "reject"`,
	"gitlab.url":                   `your GitLab's base URL in quotes, e.g. url = "https://gitlab.example.com"`,
	"gitlab.token_file":            `an absolute path in quotes, e.g. token_file = "/etc/chatops-executor/gitlab-token"`,
	"slack.token_file":             `an absolute path in quotes, e.g. token_file = "/etc/chatops-executor/slack-token"`,
	"slack.api_url":                `a URL in quotes, e.g. api_url = "https://slack.com/api/"`,
	"slack.reply":                  `"always", "after-window" or "never", e.g. reply = "always"`,
	"slack.inline_limit":           `a number of characters, e.g. inline_limit = 3000`,
	"slack.reply_files":            `"text" or "all", e.g. reply_files = "text"`,
	"slack.reply_max_files":        `a number of files, e.g. reply_max_files = 10`,
	"policy.default":               `"allow" or "deny", e.g. default = "deny"`,
	"policy.audit_log":             `an absolute path in quotes, e.g. audit_log = "/var/log/chatops-executor/audit.jsonl"`,
	"policy.rule":                  `a list of [[policy.rule]] tables`,
	"policy.rule.name":             `a name in quotes, e.g. name = "read-only"`,
	"policy.rule.action":           `"allow", "deny" or "approve", e.g. action = "allow"`,
	"policy.rule.jobs":             `a list of globs, e.g. jobs = ["status"]`,
	"policy.rule.projects":         `a list of project paths, e.g. projects = ["ops/infra"]`,
	"policy.rule.channels":         `a list of Slack channel ids, e.g. channels = ["C0123ABCD"]`,
	"policy.rule.chat_users":       `a list of Slack user ids, e.g. chat_users = ["U0123ABCD"]`,
	"policy.rule.users":            `a list of GitLab usernames or ids, e.g. users = ["alice", "42"]`,
	"policy.rule.groups":           `a list of GitLab group paths, e.g. groups = ["ops/sre"]`,
	"policy.rule.min_access_level": `a GitLab access level, e.g. min_access_level = 40 (Maintainer)`,
	"policy.rule.input":            `a regular expression in single quotes, e.g. input = 'v[0-9]+'`,
}

// describe says what the key at path (of Go type t) takes.
func describe(path string, leaf string, t reflect.Type) string {
	if s, ok := examples[path]; ok {
		return s
	}
	switch {
	case t == durationType:
		return fmt.Sprintf(`a duration in quotes, e.g. %s = "10s"`, leaf)
	case t == sizeType:
		return fmt.Sprintf(`a size in bytes, or in quotes with a unit, e.g. %s = "4GiB"`, leaf)
	case t.Kind() == reflect.String:
		return fmt.Sprintf(`a quoted string, e.g. %s = "…"`, leaf)
	case t.Kind() == reflect.Bool:
		return fmt.Sprintf(`true or false, e.g. %s = true`, leaf)
	case t.Kind() == reflect.Int:
		return fmt.Sprintf(`a whole number, e.g. %s = 10`, leaf)
	case t.Kind() == reflect.Float64:
		return fmt.Sprintf(`a number, e.g. %s = 0.5`, leaf)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return fmt.Sprintf(`a list of quoted strings, e.g. %s = ["…"]`, leaf)
	case t.Kind() == reflect.Struct:
		return fmt.Sprintf(`a table: [%s]`, path)
	}
	return "a value of another kind"
}

// what names the kind of a decoded TOML value, as the file would show it.
func what(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q (a string)", x)
	case int64:
		return fmt.Sprintf("%d (a number)", x)
	case float64:
		return fmt.Sprintf("%v (a number with a fraction)", x)
	case bool:
		return fmt.Sprintf("%v (true/false)", x)
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "a list of tables"
	case []any:
		return "a list"
	case time.Time:
		return "a date"
	}
	return "a value of another kind"
}

// walker collects the problems of one file.
type walker struct {
	data     []byte
	problems []Problem
}

func (w *walker) add(key string, line int, format string, args ...any) {
	if line == 0 {
		line = keyLineDotted(w.data, key)
	}
	w.problems = append(w.problems, Problem{Key: key, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// table checks the keys of m against struct type t and removes those that cannot be
// decoded. key is the dotted key of the table as problems name it ("policy.rule[2] (x)"),
// path its key without indexes ("policy.rule"), for examples and suggestions.
func (w *walker) table(m map[string]any, t reflect.Type, key, path string) {
	fields := map[string]reflect.StructField{}
	var names []string
	for _, f := range tomlFields(t) {
		fields[f.Tag.Get("toml")] = f
		names = append(names, f.Tag.Get("toml"))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		full, fullPath := joinKey(key, k), joinKey(path, k)
		f, ok := fields[k]
		if !ok {
			known := ""
			for _, n := range names {
				if strings.EqualFold(n, k) {
					known = n
				}
			}
			if known != "" {
				// The decoder would match it anyway, case-insensitively; say so.
				w.add(full, 0, `keys are case-sensitive: write "%s"`, known)
				f = fields[known]
				m[known] = v
				delete(m, k)
				k, full, fullPath = known, joinKey(key, known), joinKey(path, known)
			} else {
				w.unknown(m, k, v, key, names)
				continue
			}
		}
		if !w.value(v, f.Type, full, fullPath, k) {
			delete(m, k)
		}
	}
}

// unknown reports key k of table key, which Config does not have, and drops it. A misspelt
// table ([slak], [[policy.rules]]) is one problem, not one per key inside it.
func (w *walker) unknown(m map[string]any, k string, v any, key string, names []string) {
	delete(m, k)
	full := joinKey(key, k)
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(k), n); d < bestDist {
			best, bestDist = n, d
		}
	}
	switch tv := v.(type) {
	case []map[string]any:
		lines := headerLines(w.data, full)
		where := ""
		if len(lines) > 0 {
			where = fmt.Sprintf(", at line%s %s,", plural(len(lines)), joinInts(lines))
		}
		fix := ""
		if best != "" {
			fix = fmt.Sprintf(" (did you mean [[%s]]?)", joinKey(key, best))
		}
		line := 0
		if len(lines) > 0 {
			line = lines[0]
		}
		w.add(full, line, "unknown table [[%s]]%s: its %d entr%s%s %s ignored", full, fix, len(tv), pluralY(len(tv)), where, isAre(len(tv)))
	case map[string]any:
		fix := ""
		if best != "" {
			fix = fmt.Sprintf(" (did you mean [%s]?)", joinKey(key, best))
		}
		w.add(full, findHeader(w.data, full), "unknown table [%s]%s: everything in it is ignored", full, fix)
	default:
		fix := ": remove it (config.example.toml lists every key)"
		if best != "" {
			fix = fmt.Sprintf(` (did you mean "%s"?)`, best)
		}
		w.add(full, 0, "unknown key%s", fix)
	}
}

// value checks one value against Go type t; false means it cannot be decoded.
func (w *walker) value(v any, t reflect.Type, key, path, leaf string) bool {
	bad := func() bool {
		w.add(key, 0, "got %s; write %s", what(v), describe(path, leaf, t))
		return false
	}
	switch {
	case t.Kind() == reflect.Pointer:
		// An optional key (unset: another table's value), checked as what it points to.
		return w.value(v, t.Elem(), key, path, leaf)
	case t == durationType:
		s, ok := v.(string)
		if !ok {
			w.add(key, 0, `a duration must be a quoted string such as "90s" or "10m" (a bare number would mean nanoseconds), got %s; write %s`, what(v), describe(path, leaf, t))
			return false
		}
		if _, err := time.ParseDuration(s); err != nil {
			w.add(key, 0, `invalid duration %q: use a number with a unit, such as %s = "90s", "10m" or "1h30m"`, s, leaf)
			return false
		}
		return true
	case t == sizeType:
		switch x := v.(type) {
		case int64:
			return true
		case string:
			var sz Size
			if err := sz.UnmarshalText([]byte(x)); err != nil {
				w.add(key, 0, "%v; write %s", err, describe(path, leaf, t))
				return false
			}
			return true
		}
		return bad()
	case t.Kind() == reflect.String:
		if _, ok := v.(string); !ok {
			return bad()
		}
	case t.Kind() == reflect.Bool:
		if _, ok := v.(bool); !ok {
			return bad()
		}
	case t.Kind() == reflect.Int:
		if _, ok := v.(int64); !ok {
			return bad()
		}
	case t.Kind() == reflect.Float64:
		switch v.(type) {
		case float64, int64:
		default:
			return bad()
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		list, ok := v.([]any)
		if !ok {
			return bad()
		}
		for _, e := range list {
			if _, ok := e.(string); !ok {
				w.add(key, 0, "every entry must be a quoted string, got %s; write %s", what(e), describe(path, leaf, t))
				return false
			}
		}
	case t.Kind() == reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		w.table(m, t, key, path)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		list, ok := v.([]map[string]any)
		if !ok {
			return bad()
		}
		for i, m := range list {
			ek := fmt.Sprintf("%s[%d]", key, i+1)
			if n, ok := m["name"].(string); ok && n != "" {
				ek += " (" + n + ")"
			}
			w.table(m, t.Elem(), ek, path)
		}
	default:
		return bad()
	}
	return true
}

// headerLines returns the lines of every [[name]] header.
func headerLines(data []byte, name string) []int {
	var out []int
	for i, text := range strings.Split(string(data), "\n") {
		if m := headerRe.FindStringSubmatch(text); m != nil && m[1] == "[" && strings.ReplaceAll(m[2], " ", "") == name {
			out = append(out, i+1)
		}
	}
	return out
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func pluralY(n int) string {
	if n == 1 {
		return "y"
	}
	return "ies"
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// tomlFields returns t's fields that have a toml key, with those of embedded structs (such
// as Rule's Approval) in their place: the decoder promotes their keys into the table.
func tomlFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("toml") == "" {
			out = append(out, tomlFields(f.Type)...)
			continue
		}
		if tag := f.Tag.Get("toml"); tag != "" && tag != "-" {
			out = append(out, f)
		}
	}
	return out
}
