// Package packaging holds no Go code: its test keeps the package's files (nfpm.yaml, the
// config, the systemd units, the logrotate file) agreeing with each other and with the
// executor, on any machine. packaging/test-deb.sh checks the built .deb itself, as root.
package packaging

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/chatops-executor/chatops-executor/config"
)

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestPackageFilesAgree(t *testing.T) {
	var spec struct {
		Contents []struct {
			Src, Dst, Type string
			FileInfo       struct {
				Mode  int    `yaml:"mode"`
				Owner string `yaml:"owner"`
			} `yaml:"file_info"`
		} `yaml:"contents"`
	}
	if err := yaml.Unmarshal([]byte(read(t, "nfpm.yaml")), &spec); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range spec.Contents {
		got[c.Dst] = strings.TrimSpace(fmt.Sprintf("%s %o", c.Type, c.FileInfo.Mode))
	}
	cfg, err := config.Parse("packaging/config.toml", []byte(read(t, "config.toml")))
	if err != nil {
		t.Fatalf("the packaged config does not load: %v", err)
	}
	want := map[string]string{
		"/usr/bin/chatops-executor": "755",
		config.DefaultPath:          "config|noreplace 600",
		cfg.Executor.StateDir:       "dir 700",
		cfg.Executor.BuildsDir:      "dir 711",
		cfg.Executor.CacheDir:       "dir 711",
		strings.TrimSuffix(cfg.Policy.AuditLog, "/audit.jsonl"):  "dir 700",
		"/etc/logrotate.d/chatops-executor":                      "config|noreplace 644",
		"/usr/share/chatops-executor/slack-app-manifest.yml":     "644",
		"/usr/lib/systemd/system/chatops-executor-flush.service": "644",
		"/usr/lib/systemd/system/chatops-executor-flush.timer":   "644",
	}
	for dst, w := range want {
		if got[dst] != w {
			t.Errorf("nfpm.yaml: %s is %q, want %q", dst, got[dst], w)
		}
	}

	service := read(t, "systemd/chatops-executor-flush.service")
	if !strings.Contains(service, "\nExecStart=/usr/bin/chatops-executor --config "+config.DefaultPath+" flush\n") {
		t.Errorf("the flush service does not run flush with the packaged config:\n%s", service)
	}
	if timer := read(t, "systemd/chatops-executor-flush.timer"); !regexp.MustCompile(`(?m)^OnUnitActiveSec=1min$`).MatchString(timer) {
		t.Errorf("the timer does not run every minute:\n%s", timer)
	}

	lr := read(t, "logrotate")
	if !strings.HasPrefix(strings.TrimLeft(stripComments(lr), "\n"), cfg.Policy.AuditLog+" {") {
		t.Errorf("logrotate does not rotate the packaged audit_log %s:\n%s", cfg.Policy.AuditLog, lr)
	}
	if !regexp.MustCompile(`(?m)^\s*create 0600 `).MatchString(lr) || regexp.MustCompile(`(?m)^\s*copytruncate`).MatchString(lr) {
		t.Errorf("logrotate must create 0600 and never truncate:\n%s", lr)
	}
	if cfg.Slack.TokenFile == "" || !strings.HasPrefix(cfg.Slack.TokenFile, "/etc/chatops-executor/") {
		t.Errorf("the packaged config reads the Slack token from %q", cfg.Slack.TokenFile)
	}
	post := read(t, "scripts/postinstall.sh")
	for _, w := range []string{"Three things are left to do", cfg.Slack.TokenFile, "slack-app-manifest.yml", "check --online", "run_untagged = false"} {
		if !strings.Contains(post, w) {
			t.Errorf("postinstall.sh does not say %q", w)
		}
	}
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
