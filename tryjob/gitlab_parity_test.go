package tryjob

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func parse(t *testing.T, yml string) *File {
	t.Helper()
	f, err := Parse(".gitlab-ci.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Cases from GitLab's spec/lib/gitlab/ci/config/yaml/tags/reference_spec.rb ('#resolve').
func TestReferenceSpec(t *testing.T) {
	for _, tt := range []struct {
		name, yml, key string
		want           any
		err            string
	}{
		{name: "circular references", yml: "a: !reference [b]\nb: !reference [a]\n", key: "a",
			err: `!reference ["b"] is part of a circular chain`},
		{name: "nested circular references", yml: "a: !reference [b, c]\nb: { c: !reference [d, e, f] }\nd: { e: { f: !reference [a] } }\n", key: "a",
			err: `!reference ["b", "c"] is part of a circular chain`},
		{name: "missing references", yml: "a: !reference [b]\n", key: "a", err: `!reference ["b"] could not be found`},
		{name: "invalid: empty", yml: "a: !reference\n", key: "a", err: `!reference [] is not valid`},
		{name: "invalid: string", yml: "a: !reference str\n", key: "a", err: `!reference "str" is not valid`},
		{name: "invalid: number", yml: "a: !reference 1\n", key: "a", err: `!reference "1" is not valid`},
		{name: "invalid: number in sequence", yml: "a: !reference [1]\n", key: "a", err: `!reference [1] is not valid`},
		{name: "invalid: hash", yml: "a: !reference { b: c }\n", key: "a", err: `!reference {"b"=>"c"} is not valid`},
		{name: "valid but not in the config", yml: "a: [1, 2]\nb: [3, 4]\nc: !reference [a, b]\n", key: "c",
			err: `!reference ["a", "b"] could not be found`},
		{name: "arrays", yml: "a: { b: [1, 2] }\nc: { d: { e: [3, 4] } }\nf: { g: [ !reference [a, b], 5, !reference [c, d, e]] }\n", key: "f",
			want: map[string]any{"g": []any{[]any{1, 2}, 5, []any{3, 4}}}},
		{name: "an entire hash", yml: "a: { b: { c: 'c', d: 'd' } }\ne: { f: !reference [a, b] }\n", key: "e",
			want: map[string]any{"f": map[string]any{"c": "c", "d": "d"}}},
		{name: "only a hash value", yml: "a: { b: { c: 'c', d: 'd' } }\ne: {  f: { g: !reference [a, b, c], h: 'h' } }\ni: !reference [e, f]\n", key: "i",
			want: map[string]any{"g": "c", "h": "h"}},
		{name: "a value before its definition", yml: "a: { b: !reference [c, d] }\ng: { h: { i: 'i', j: 1 } }\nc: { d: { e: !reference [g, h, j], f: 'f' } }\n", key: "a",
			want: map[string]any{"b": map[string]any{"e": 1, "f": "f"}}},
		{name: "hashes in arrays", yml: "a: 1\nb: [{ c: !reference [a] }]\nd: !reference [b]\n", key: "d",
			want: []any{map[string]any{"c": 1}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(t, tt.yml).resolved(tt.key)
			if tt.err != "" {
				var ce *ConfigError
				if !errors.As(err, &ce) || !strings.HasSuffix(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, %v; want %#v", got, err, tt.want)
			}
		})
	}
}

// Issue 10: `!reference [.setup, script]` used to run its items as commands.
func TestReferenceInScripts(t *testing.T) {
	yml := `
.base:
  before_script: [echo base-before]
.setup:
  extends: .base
  script:
    - echo setup-1
    - echo setup-2
  variables:
    REGION: eu
.teardown:
  after_script: [echo teardown]
x:
  before_script:
    - !reference [.setup, before_script]
  script:
    - !reference [.setup, script]
    - echo own
  after_script: !reference [.teardown, after_script]
  variables:
    REGION: !reference [.setup, variables, REGION]
`
	j, err := job(t, yml, "x", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"echo base-before"}; !reflect.DeepEqual(j.BeforeScript, want) {
		t.Errorf("before_script %q (a reference into what .setup got from extends)", j.BeforeScript)
	}
	if want := []string{"echo setup-1", "echo setup-2", "echo own"}; !reflect.DeepEqual(j.Script, want) {
		t.Errorf("script %q", j.Script)
	}
	if want := []string{"echo teardown"}; !reflect.DeepEqual(j.AfterScript, want) {
		t.Errorf("after_script %q", j.AfterScript)
	}
	if len(j.Variables) != 1 || j.Variables[0].Value != "eu" {
		t.Errorf("variables %+v", j.Variables)
	}
	// Nesting beyond GitLab's 10 levels is an error, not a hang.
	var b strings.Builder
	b.WriteString(".r0: { s: [echo deep] }\n")
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&b, ".r%d: { s: [!reference [.r%d, s]] }\n", i, i-1)
	}
	b.WriteString("x:\n  script: !reference [.r12, s]\n")
	if _, err := job(t, b.String(), "x", false); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
		t.Errorf("12 nested references: %v", err)
	}
}

// Cases from GitLab's spec/lib/gitlab/ci/config/extendable_spec.rb, and its
// Extendable::Entry::MAX_NESTING_LEVELS (an entry that extends may have 10 ancestors, so a
// job extends through 11 levels).
func TestExtendableSpec(t *testing.T) {
	f := parse(t, `
something:
  script: deploy
  only: { variables: [$SOMETHING] }
test:
  extends: something
  script: ls
  only: { refs: [master] }
`)
	got, err := f.resolveExtends("test", nil)
	want := map[string]any{"script": "ls", "only": map[string]any{"refs": []any{"master"}, "variables": []any{"$SOMETHING"}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("'extends a hash with a deep reverse merge': %#v, %v", got, err)
	}
	f = parse(t, `
test: { extends: something, script: ls, only: { refs: [master] } }
build: { extends: something, stage: build }
deploy: { stage: deploy, extends: .first }
something: { extends: .first, script: exec, only: { variables: [$SOMETHING] } }
.first: { script: run, only: { kubernetes: active } }
`)
	for name, want := range map[string]map[string]any{
		"test":   {"script": "ls", "only": map[string]any{"refs": []any{"master"}, "variables": []any{"$SOMETHING"}, "kubernetes": "active"}},
		"build":  {"script": "exec", "stage": "build", "only": map[string]any{"kubernetes": "active", "variables": []any{"$SOMETHING"}}},
		"deploy": {"script": "run", "stage": "deploy", "only": map[string]any{"kubernetes": "active"}},
	} {
		if got, err := f.resolveExtends(name, nil); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("recursive extensions, %s: %#v, %v", name, got, err)
		}
	}
	for _, tt := range []struct{ name, yml, err string }{
		{"nested circular dependency", "test: { extends: something, script: ls }\nsomething: { extends: .first, script: deploy }\n.first: { extends: something, script: run }\n", "circular extends"},
		{"circular dependency to self", "test: { extends: test, script: ls }\n", "circular extends"},
		{"invalid extends value", "test: { extends: 1, script: ls }\n", "extends must be a string or a list of strings"},
		{"non-hash base", "test: { extends: something, script: ls }\nsomething: some text\n", "must be a hash"},
	} {
		if _, err := parse(t, tt.yml).resolveExtends("test", nil); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.err)
		}
	}
	chain := func(levels int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "x: { extends: .l1 }\n")
		for i := 1; i < levels; i++ {
			fmt.Fprintf(&b, ".l%d: { extends: .l%d }\n", i, i+1)
		}
		fmt.Fprintf(&b, ".l%d: { script: echo deep }\n", levels)
		return b.String()
	}
	if j, err := job(t, chain(11), "x", false); err != nil || j.Script[0] != "echo deep" {
		t.Errorf("11 levels of extends (GitLab allows them): %v", err)
	}
	if _, err := job(t, chain(12), "x", false); err == nil || !strings.Contains(err.Error(), "nesting too deep") {
		t.Errorf("12 levels of extends: %v", err)
	}
}

// Cases from GitLab's spec/lib/gitlab/ci/build/rules_spec.rb ('#evaluate'), as jobs of a
// chat pipeline (no VAR defined). The spec's 'when: delayed' rules are left out: try
// refuses delayed jobs.
func TestRulesSpec(t *testing.T) {
	for _, tt := range []struct {
		name, rules string
		play        bool
		in          bool
	}{
		{"no rules", "[]", false, false},
		{"one rule without any clauses", "[{when: manual, allow_failure: true}]", true, true},
		{"one matching rule", "[{if: '$VAR == null', when: always}]", false, true},
		{"a matching and non-matching rule", "[{if: '$VAR == null', when: always}, {if: '$VAR != null', when: never}]", false, true},
		{"non-matching rules", "[{if: '$VAR != null', when: always}, {if: '$VAR != null', when: always}]", false, false},
		{"only allow_failure, matching", "[{if: '$VAR == null', allow_failure: true}]", false, true},
		{"only allow_failure, not matching", "[{if: '$VAR != null', allow_failure: true}]", false, false},
	} {
		_, err := job(t, "x:\n  script: echo\n  rules: "+tt.rules+"\n", "x", tt.play)
		if in := err == nil; in != tt.in {
			t.Errorf("%s: in the pipeline = %v (%v), want %v", tt.name, in, err, tt.in)
		}
	}
	// '$VAR =! null' does not parse: GitLab's Build::Rules treats it as false, and its
	// config validation rejects the file; try reports it.
	if _, err := job(t, "x:\n  script: echo\n  rules: [{if: '$VAR =! null'}, {when: always}]\n", "x", false); err == nil {
		t.Error("an expression that does not parse was accepted")
	}
}

// only/except as Gitlab::Ci::Build::Policy::Refs sees a chat pipeline: ref@project holds only
// in that project, and the source's plural ("chats") matches as GitLab pluralizes it.
func TestOnlyExceptRefsOfAChatPipeline(t *testing.T) {
	for _, tt := range []struct {
		policy string
		in     bool
	}{
		{"only: [chats]", true},
		{"only: [chat]", true},
		{"only: [branches]", true},
		{"only: [main]", true},
		{"only: [main@ops/infra]", true},
		{"only: [main@other/project]", false},
		{"only: [branches@ops/infra]", true},
		{"only: [chat@other/project]", false},
		{"only: [/^ma/@ops/infra]", true},
		{"only: [tags]", false},
		{"only: [pushes, web]", false},
		{"except: [chats]", false},
		{"except: [main@other/project]", true},
		{"only: {refs: [chats]}", true},
	} {
		_, err := job(t, "x:\n  script: echo\n  "+tt.policy+"\n", "x", false)
		if in := err == nil; in != tt.in {
			t.Errorf("%s: in the pipeline = %v (%v), want %v", tt.policy, in, err, tt.in)
		}
	}
}

// Issue 10: GitLab's run command takes the first word as the job name, so a job whose name
// has white space can never be started from chat; try refuses it the same way.
func TestJobNameWithWhiteSpaceIsRefused(t *testing.T) {
	_, err := job(t, "\"deploy prod\":\n  script: echo\n", "deploy prod", false)
	var r *RefusedError
	if !errors.As(err, &r) || !strings.Contains(r.Msg, `asks for job "deploy" with input "prod"`) {
		t.Fatalf("err = %v", err)
	}
}

// An empty `default:` (null in YAML) is no default, not an error.
func TestEmptyDefault(t *testing.T) {
	if j, err := job(t, "default:\nx:\n  script: echo hi\n", "x", false); err != nil || j.Script[0] != "echo hi" {
		t.Errorf("%+v, %v", j, err)
	}
}
