package job

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const example = "../examples/job-response.json"

func TestLoadExample(t *testing.T) {
	r, err := Load(example)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != 4242 || r.Info.Name != "deploy" || r.ProjectPath() != "ops/infra" || r.RunnerInfo.Timeout != 3600 {
		t.Errorf("job = %d %q %q %d", r.ID, r.Info.Name, r.ProjectPath(), r.RunnerInfo.Timeout)
	}
	if c := r.Chat(); c != (Chat{Input: "production v1.4.2", Channel: "C0123ABCD", UserID: "U0123ABCD"}) {
		t.Errorf("chat = %+v", c)
	}
	if r.PipelineSource() != "chat" {
		t.Errorf("source = %q", r.PipelineSource())
	}
	secrets := strings.Join(r.Secrets(), ",")
	if secrets != "glcbt-jobtoken-4242-73e062cc48,dt-0123456789abcdef" {
		t.Errorf("secrets = %q", secrets)
	}
	if got := r.Features.TokenMaskPrefixes; len(got) != 3 || got[0] != "glpat-" {
		t.Errorf("prefixes = %q", got)
	}
}

func TestVarLastWins(t *testing.T) {
	r := &Response{Variables: []Variable{{Key: "A", Value: "1"}, {Key: "A", Value: "2"}}}
	if v, ok := r.Var("A"); !ok || v != "2" {
		t.Errorf("Var = %q %v", v, ok)
	}
	if _, ok := r.Var("B"); ok {
		t.Error("missing var found")
	}
}

func TestLoadBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := write("big", strings.Repeat(" ", maxResponseSize+10))
	tests := []struct {
		name, path, want string
	}{
		{"unset", "", "JOB_RESPONSE_FILE is not set"},
		{"missing", filepath.Join(dir, "nope.json"), "no such file"},
		{"empty", write("empty", "\n"), "the file is empty"},
		{"garbled", write("garbled", `{"id": 42, "token": `), "not valid JSON"},
		{"wrong shape", write("shape", `{"id": "forty-two"}`), "not a job response"},
		{"no id", write("noid", `{"token": "t", "job_info": {"name": "x"}}`), `no job "id"`},
		{"no token", write("notoken", `{"id": 1, "job_info": {"name": "x"}}`), `no job "token"`},
		{"no name", write("noname", `{"id": 1, "token": "t"}`), `no "job_info.name"`},
		{"too large", big, "larger than 64 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if tt.path != "" && !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
	if _, err := Load(""); !errors.Is(err, ErrNoResponseFile) {
		t.Errorf("unset: %v is not ErrNoResponseFile", err)
	}
}

func TestSlackID(t *testing.T) {
	for _, c := range []struct {
		id, prefixes string
		want         bool
	}{
		{"U0123ABCD", "UW", true},
		{"W0123ABCD", "UW", true},
		{"S0SRE", "S", true},
		{"U0123ABCD", "S", false},
		{"U", "UW", false},
		{"u0123abcd", "UW", false},
		{"U0123-ABCD", "UW", false},
		{"U" + strings.Repeat("A", 32), "UW", false},
		{"", "UW", false},
	} {
		if got := SlackID(c.id, c.prefixes); got != c.want {
			t.Errorf("SlackID(%q, %q) = %v, want %v", c.id, c.prefixes, got, c.want)
		}
	}
}
