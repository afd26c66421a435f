package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/emulator"
	"github.com/chatops-executor/chatops-executor/gitlab"
	"github.com/chatops-executor/chatops-executor/gitlab/gitlabtest"
)

// The package's config, set up as README's "Running in production" says (token file,
// gitlab.url, the bot invited), passes check --online against the fakes and replies to a
// chat job. Only the install prefix and the services' addresses differ.
func TestPackagedConfigChecksAndReplies(t *testing.T) {
	const token = "xoxb-packaged-1-2"
	const jobToken = "glcbt-jobtoken-4242-73e062cc48" // the token in examples/job-response.json
	slack := slacktest.New(t, token)
	slack.AddChannel("C0123ABCD", slacktest.Channel{Name: "ops", Member: true})
	gl := gitlabtest.New(t)
	gl.Jobs[jobToken] = gitlab.Job{ID: 4300, Name: "status", Status: "running",
		User:     gitlab.User{ID: 101, Username: "alice"},
		Pipeline: gitlab.Pipeline{ID: 5242, Source: "chat", ProjectID: 7}}

	root := traversableTempDir(t) // the job's uid passes through to its build dir
	data, err := os.ReadFile("../packaging/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(
		"/var/lib/chatops-executor", root+"/var/lib/chatops-executor",
		"/var/log/chatops-executor", root+"/var/log/chatops-executor",
		"/etc/chatops-executor", root+"/etc/chatops-executor",
		`url = "https://gitlab.example.com"`, "url = "+strconv.Quote(gl.URL),
		"[slack]\n", "[slack]\napi_url = "+strconv.Quote(slack.APIURL())+"\nprogress_interval = \"0s\"\n",
		// Test processes side by side on this host must not share uids.
		`job_uids = "64000-64099"`, "job_uids = "+strconv.Quote(distinctRange().String()),
	).Replace(string(data))
	if !strings.Contains(text, gl.URL) || !strings.Contains(text, slack.APIURL()) || strings.Contains(text, "64000-64099") {
		t.Fatalf("packaging/config.toml no longer has the keys this test rewrites:\n%s", text)
	}
	// The package's directories and modes (packaging/nfpm.yaml), and the README's token file.
	for d, mode := range map[string]os.FileMode{
		"etc": 0o755, "var": 0o755, "var/lib": 0o755, "var/log": 0o755, // as on any host
		"etc/chatops-executor": 0o755, "var/lib/chatops-executor": 0o755,
		"var/lib/chatops-executor/state": 0o700, "var/lib/chatops-executor/builds": 0o711,
		"var/lib/chatops-executor/cache": 0o711, "var/log/chatops-executor": 0o700,
	} {
		if err := os.MkdirAll(filepath.Join(root, d), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(root, d), mode)
	}
	cfg := filepath.Join(root, "etc/chatops-executor/config.toml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/chatops-executor/slack-token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(binary, "check", "--online", "--config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Slack and GitLab agree") {
		t.Fatalf("check --online: %v\n%s", err, out)
	}

	args := func(stage string) []string { return []string{"--config", cfg, stage} }
	runner := &emulator.Runner{
		Executable: binary, ConfigArgs: args("config"), PrepareArgs: args("prepare"),
		RunArgs: args("run"), CleanupArgs: args("cleanup"),
		Env:                 []string{"PATH=" + os.Getenv("PATH")},
		WorkDir:             filepath.Join(root, "runner"),
		GracefulKillTimeout: 3 * time.Second, ForcefulKillTimeout: 3 * time.Second,
		PreparationRetryInterval: -1,
	}
	// The packaged policy allows the job "status" and nothing else.
	var r map[string]any
	if err := json.Unmarshal(response(t, 4300, map[string]string{"CI_JOB_NAME": "status", "CHAT_INPUT": ""}), &r); err != nil {
		t.Fatal(err)
	}
	r["job_info"].(map[string]any)["name"] = "status"
	resp, _ := json.Marshal(r)
	res, err := runner.Run(context.Background(), emulator.Job{Response: resp, Script: []string{"echo all systems nominal"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != "success" {
		t.Fatalf("job: %s (%v)\n%s", res.State, res.Err, res.RawTrace)
	}
	var replied bool
	for _, m := range slack.Channel("C0123ABCD") {
		if strings.Contains(m.Text, "all systems nominal") {
			replied = true
		}
	}
	if !replied {
		t.Errorf("no reply with the job's output in the channel:\n%s", slack)
	}
	audit, err := os.Stat(filepath.Join(root, "var/log/chatops-executor/audit.jsonl"))
	if err != nil || audit.Mode().Perm() != 0o600 {
		t.Errorf("audit log: %v %v", audit, err)
	}
}
