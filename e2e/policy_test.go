package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/emulator"
	"github.com/chatops-executor/chatops-executor/gitlab"
	"github.com/chatops-executor/chatops-executor/gitlab/gitlabtest"
)

// The product's promise: the job's variables cannot make a job look as if someone else
// started it. GitLab (the configured one, not CI_API_V4_URL) says who did.
func TestSpoofedIdentityDeniedLegitimateAllowed(t *testing.T) {
	trusted := gitlabtest.New(t)
	// An attacker's server that would confirm anything; the job points CI_API_V4_URL at it.
	evil := gitlabtest.New(t)
	jobToken := "glcbt-jobtoken-4242-73e062cc48" // the token in examples/job-response.json
	trusted.Jobs[jobToken] = gitlab.Job{
		ID: 200, Name: "deploy", Status: "running",
		User:     gitlab.User{ID: 7, Username: "mallory"},
		Pipeline: gitlab.Pipeline{ID: 5242, Source: "chat", ProjectID: 7},
	}
	evil.Jobs[jobToken] = gitlab.Job{ID: 200, Name: "deploy", User: gitlab.User{ID: 101, Username: "alice"},
		Pipeline: gitlab.Pipeline{ID: 5242, Source: "chat", ProjectID: 7}}

	audit := filepath.Join(t.TempDir(), "audit", "audit.jsonl")
	h := newHost(t, `
[gitlab]
url = "`+trusted.URL+`"
[policy]
default = "deny"
audit_log = "`+audit+`"
[[policy.rule]]
name = "alice-deploys"
action = "allow"
jobs = ["deploy"]
users = ["alice"]
`)
	marker := filepath.Join(h.public, "deployed")
	// The job claims to be alice (GITLAB_USER_LOGIN/ID say so), and points the API at evil.
	spoofed := response(t, 200, map[string]string{
		"CI_API_V4_URL": evil.URL + "/api/v4", "CI_SERVER_URL": evil.URL,
	})
	res := h.run(context.Background(), emulator.Job{Response: spoofed, Script: []string{"touch " + marker}})
	if res.State != "failed" || res.FailureReason != emulator.ScriptFailure {
		t.Fatalf("spoofed job: state %s reason %s", res.State, res.FailureReason)
	}
	if !strings.Contains(string(res.RawTrace), "spoofing") {
		t.Errorf("job log does not say why:\n%s", res.RawTrace)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the spoofed job's script ran")
	}
	if n := len(evil.Requests()); n != 0 {
		t.Errorf("the job's CI_API_V4_URL server was asked %d times", n)
	}

	// Now alice really starts it.
	trusted.Jobs[jobToken] = gitlab.Job{
		ID: 201, Name: "deploy", Status: "running",
		User:     gitlab.User{ID: 101, Username: "alice"},
		Pipeline: gitlab.Pipeline{ID: 5242, Source: "chat", ProjectID: 7},
	}
	res = h.run(context.Background(), emulator.Job{Response: response(t, 201, nil), Script: []string{"touch " + marker}})
	if res.State != "success" {
		t.Fatalf("legitimate job: state %s (%v)\n%s", res.State, res.Err, res.RawTrace)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("the legitimate job's script did not run")
	}

	records := readAudit(t, audit)
	if len(records) != 2 {
		t.Fatalf("audit log has %d records, want one per decision (2)", len(records))
	}
	if records[0]["decision"] != "deny" || records[1]["decision"] != "allow" || records[1]["rule"] != "alice-deploys" {
		t.Errorf("audit records = %v", records)
	}
	fi, err := os.Stat(audit)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v %v, want 0600", fi.Mode(), err)
	}
	data, _ := os.ReadFile(audit)
	for _, secret := range []string{jobToken, "dt-0123456789abcdef"} {
		if strings.Contains(string(data), secret) {
			t.Errorf("audit log contains secret %q", secret)
		}
	}
}

func readAudit(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
