package config

import (
	"os"
	"strings"
	"testing"
)

func TestFleetKeys(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Slack.RateShare != 1 || cfg.Metrics.Textfile != "" || cfg.Policy.AuditSyslog != "" {
		t.Errorf("defaults: rate_share %v, textfile %q, audit_syslog %q", cfg.Slack.RateShare, cfg.Metrics.Textfile, cfg.Policy.AuditSyslog)
	}
	good := minimal + "[slack]\nrate_share = 0.25\n[metrics]\ntextfile = \"/var/lib/node_exporter/chatops_executor.prom\"\n[policy]\naudit_syslog = \"/dev/log\"\n"
	cfg, err = Parse("c.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Slack.RateShare != 0.25 || cfg.Metrics.Textfile == "" || cfg.Policy.AuditSyslog != "/dev/log" {
		t.Errorf("parsed %+v %+v %+v", cfg.Slack, cfg.Metrics, cfg.Policy)
	}
	if cfg, err = Parse("c.toml", []byte(minimal+"[slack]\nrate_share = 1\n")); err != nil || cfg.Slack.RateShare != 1 {
		t.Errorf("integer rate_share: %v", err)
	}
	for _, tt := range []struct{ toml, want string }{
		{"[slack]\nrate_share = 1.5\n", "line 7: slack.rate_share: must be between 0 and 1"},
		{"[slack]\nrate_share = -0.1\n", "slack.rate_share"},
		{"[metrics]\ntextfile = \"metrics.prom\"\n", "line 7: metrics.textfile: must be an absolute path ending in .prom"},
		{"[metrics]\ntextfile = \"/var/lib/x.txt\"\n", "metrics.textfile"},
		{"[policy]\naudit_syslog = \"dev/log\"\n", "policy.audit_syslog: must be the absolute path"},
	} {
		_, err := Parse("c.toml", []byte(minimal+tt.toml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.toml, err, tt.want)
		}
	}
}

func TestCheckFleetKeys(t *testing.T) {
	dir := t.TempDir()
	notSock := dir + "/plain"
	if err := os.WriteFile(notSock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("c.toml", []byte(minimal+"[policy]\naudit_syslog = \""+dir+"/missing.sock\"\n[metrics]\ntextfile = \""+notSock+"/x.prom\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range cfg.checkFleet() {
		got = append(got, p.String())
	}
	if len(got) != 2 || !strings.Contains(got[0], "policy.audit_syslog: no syslog socket") || !strings.Contains(got[1], "metrics.textfile") {
		t.Errorf("problems %q", got)
	}
	cfg.Policy.AuditSyslog = notSock
	if ps := cfg.checkFleet(); len(ps) == 0 || !strings.Contains(ps[0].Msg, "is not a socket") {
		t.Errorf("a plain file as the socket: %v", ps)
	}
}
