package replies

import (
	"testing"

	"github.com/chatops-executor/chatops-executor/job"
)

// The runner resolves FF_MASK_ALL_DEFAULT_TOKENS (config.toml over the job's variable) and
// exports the result as CUSTOM_ENV_FF_MASK_ALL_DEFAULT_TOKENS; without it, the job's
// variable decides, and only a value ParseBool reads as false turns the defaults off.
func TestSecretsOfHonoursTheFlag(t *testing.T) {
	resp := func(vars ...job.Variable) *job.Response {
		return &job.Response{Token: "glcbt-tok", Variables: append(vars, job.Variable{Key: "PW", Value: "hunter2", Masked: true})}
	}
	flag := func(v string) job.Variable { return job.Variable{Key: "FF_MASK_ALL_DEFAULT_TOKENS", Value: v} }
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "CUSTOM_ENV_FF_MASK_ALL_DEFAULT_TOKENS" {
				return v
			}
			return ""
		}
	}
	for _, tt := range []struct {
		name   string
		r      *job.Response
		getenv func(string) string
		off    bool
	}{
		{"default on", resp(), nil, false},
		{"job turns it off", resp(flag("false")), nil, true},
		{"job's 0", resp(flag("0")), nil, true},
		{"unparsable is the default", resp(flag("nope")), nil, false},
		{"the runner's resolved value wins over the job", resp(flag("false")), env("true"), false},
		{"the runner's resolved off", resp(), env("false"), true},
		{"no resolved value: the job's", resp(flag("false")), env(""), true},
	} {
		s := SecretsOf(tt.r, tt.getenv)
		if s.OnlyPATPrefix != tt.off {
			t.Errorf("%s: only glpat- = %v, want %v", tt.name, s.OnlyPATPrefix, tt.off)
		}
		got := Redact("gldt-abc pw hunter2 tok glcbt-tok", s)
		want := "gldt-[MASKED] pw [MASKED] tok [MASKED]"
		if tt.off {
			want = "gldt-abc pw [MASKED] tok [MASKED]"
		}
		if got != want {
			t.Errorf("%s: %q, want %q", tt.name, got, want)
		}
	}
}
