package tryjob

import (
	"errors"
	"strings"
	"testing"
)

func job(t *testing.T, yml, name string, play bool) (*Job, error) {
	t.Helper()
	f, err := Parse(".gitlab-ci.yml", []byte(yml))
	if err != nil {
		return nil, err
	}
	return f.Job(name, Options{Play: play, Vars: chatVars(), Ref: "main"})
}

// gitlabRefusal is GitLab's text (Presenters::Run#failed_to_schedule) for job "x".
const gitlabRefusal = `The command could not be scheduled. Make sure that your project has a .gitlab-ci.yml that defines a job with the name "x"`

func TestRefusals(t *testing.T) {
	for _, tt := range []struct {
		name, yml string
		play      bool
		want      string
	}{
		{"not found", "y:\n  script: echo\n", false, gitlabRefusal},
		{"hidden", ".x:\n  script: echo\n", false, ""},
		{"except chat", "x:\n  script: echo\n  except: [chat]\n", false, gitlabRefusal},
		{"except refs chat", "x:\n  script: echo\n  except:\n    refs: [chat]\n", false, gitlabRefusal},
		{"only other sources", "x:\n  script: echo\n  only: [web, api, triggers]\n", false, gitlabRefusal},
		{"only another branch", "x:\n  script: echo\n  only: [/^release-.*$/]\n", false, gitlabRefusal},
		{"rules not chat", "x:\n  script: echo\n  rules:\n    - if: $CI_PIPELINE_SOURCE != \"chat\"\n", false, gitlabRefusal},
		{"rules when never", "x:\n  script: echo\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"chat\"\n      when: never\n    - when: always\n", false, gitlabRefusal},
		{"when never", "x:\n  script: echo\n  when: never\n", false, gitlabRefusal},
		{"workflow excludes chat", "workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"push\"\nx:\n  script: echo\n", false, gitlabRefusal},
		{"manual without play", "x:\n  script: echo\n  when: manual\n", false, `job "x" is manual (when: manual): in GitLab it waits for someone to press play; pass --play to run it`},
		{"rules manual without play", "x:\n  script: echo\n  rules:\n    - when: manual\n", false, `pass --play`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := job(t, tt.yml, "x", tt.play)
			var r *RefusedError
			if !errors.As(err, &r) {
				t.Fatalf("err = %v (%T), want a refusal", err, err)
			}
			want := tt.want
			if want == "" {
				want = strings.Replace(gitlabRefusal, `"x"`, `"x"`, 1)
			}
			if !strings.Contains(r.Msg, want) {
				t.Errorf("refusal %q, want %q", r.Msg, want)
			}
		})
	}
}

func TestManualWithPlay(t *testing.T) {
	for _, yml := range []string{
		"x:\n  script: echo hi\n  when: manual\n",
		"x:\n  script: echo hi\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"chat\"\n      when: manual\n",
	} {
		j, err := job(t, yml, "x", true)
		if err != nil || len(j.Script) != 1 || j.Script[0] != "echo hi" {
			t.Errorf("%q with --play: %+v, %v", yml, j, err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name, yml, want string
	}{
		{"include", "include: other.yml\nx:\n  script: echo\n", `the top-level "include" keyword is not supported by try`},
		{"include points to the merged configuration", "include: other.yml\nx:\n  script: echo\n", `merged_yaml`},
		{"trigger", "x:\n  trigger: other/project\n", "trigger"},
		{"parallel", "x:\n  script: echo\n  parallel: 3\n", "parallel"},
		{"secrets", "x:\n  script: echo\n  secrets:\n    DB: {vault: db/pw}\n", "secrets"},
		{"default hooks", "default:\n  hooks: {pre_get_sources_script: [echo]}\nx:\n  script: echo\n", "default:hooks: hooks add commands"},
		{"unknown keyword", "x:\n  script: echo\n  scirpt: echo\n", `scirpt: not a keyword GitLab knows there`},
		// Issue 10: every keyword try cannot honour is named at once, not only the first.
		{"all at once", "include: a.yml\ndefault:\n  hooks: {}\nx:\n  script: echo\n  trigger: p\n  parallel: {matrix: [{A: [1]}]}\n  scirpt: x\n",
			"(5 keywords):\n  - include: the top-level \"include\" keyword is not supported by try"},
		{"no script", "x:\n  variables: {A: b}\n", `job "x" has no script`},
		{"rules and only", "x:\n  script: echo\n  only: [chat]\n  rules:\n    - when: always\n", "rules cannot be used with only or except"},
		{"rules exists", "x:\n  script: echo\n  rules:\n    - exists: [Dockerfile]\n", "exists is not supported"},
		{"circular extends", ".a:\n  extends: .b\n.b:\n  extends: .a\nx:\n  extends: .a\n  script: echo\n", "circular extends: x → .a → .b → .a"},
		{"unknown extends", "x:\n  extends: .nope\n  script: echo\n", `x extends unknown key ".nope"`},
		{"bad when", "x:\n  script: echo\n  when: sometimes\n", `unknown when: "sometimes"`},
		{"bad rule if", "x:\n  script: echo\n  rules:\n    - if: $A ==\n", "rules[0]: if:"},
		{"bad script", "x:\n  script: {a: b}\n", "script must be a string or an array of strings"},
		{"yaml", "x:\n  script: [echo\n", ".gitlab-ci.yml: line"},
		{"empty", "", "the file is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := job(t, tt.yml, "x", false)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want a ConfigError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}

func TestSpecHeader(t *testing.T) {
	j, err := job(t, "spec:\n  inputs: {}\n---\nx:\n  script: echo hi\n", "x", false)
	if err != nil || j.Script[0] != "echo hi" {
		t.Errorf("%+v, %v", j, err)
	}
}

func TestExpressions(t *testing.T) {
	vars := map[string]string{"CI_PIPELINE_SOURCE": "chat", "EMPTY": "", "IN": "production v1.2"}
	for _, tt := range []struct {
		expr string
		want bool
	}{
		{`$CI_PIPELINE_SOURCE == "chat"`, true},
		{`$CI_PIPELINE_SOURCE == 'chat'`, true},
		{`${CI_PIPELINE_SOURCE} != "chat"`, false},
		{`$CI_PIPELINE_SOURCE == "push"`, false},
		{`$CI_PIPELINE_SOURCE`, true},
		{`$EMPTY`, false},
		{`$UNDEFINED`, false},
		{`$UNDEFINED == null`, true},
		{`$EMPTY == null`, false},
		{`$EMPTY == ""`, true},
		{`$IN =~ /^production v[0-9.]+$/`, true},
		{`$IN !~ /^staging/`, true},
		{`$IN =~ /^PRODUCTION/i`, true},
		{`$UNDEFINED =~ /.*/`, false},
		{`$CI_PIPELINE_SOURCE == "push" || $CI_PIPELINE_SOURCE == "chat"`, true},
		{`$CI_PIPELINE_SOURCE == "chat" && $EMPTY`, false},
		{`($CI_PIPELINE_SOURCE == "push" || $IN) && $CI_PIPELINE_SOURCE == "chat"`, true},
		{`$A == "x" || $B == "y" && $C == "z"`, false},
	} {
		got, err := evalExpr(tt.expr, vars)
		if err != nil || got != tt.want {
			t.Errorf("%s = %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
	// `$A =~ "x"` is no longer an error: GitLab matches a string on the right (issue 10).
	for _, bad := range []string{`$A ==`, `"unclosed`, `$A == "x" )`, `(`, `$A # b`, `$A $B`} {
		if _, err := evalExpr(bad, vars); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
