package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// traversable is a temporary directory a job's uid can pass through, as builds_dir's
// parents must be.
func traversable(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckIsolation(t *testing.T) {
	open := traversable(t)
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil { // no job uid gets through
		t.Fatal(err)
	}
	accounts := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(accounts, []byte("root:x:0:0::/root:/bin/sh\n# comment\ndeploy:x:64050:64050::/home/deploy:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	groups := filepath.Join(t.TempDir(), "group")
	if err := os.WriteFile(groups, []byte("root:x:0:\nbuilders:x:64070:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runner := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(runner, []byte("concurrent = 20\n[[runners]]\nname = \"chat\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(open, "token")
	if err := os.WriteFile(token, []byte("xoxb-1"), 0o640); err != nil {
		t.Fatal(err)
	}
	audit := filepath.Join(open, "audit.jsonl")
	if err := os.WriteFile(audit, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dirs := func(base string) string {
		return "builds_dir=\"" + base + "/b\"\ncache_dir=\"" + base + "/c\"\nstate_dir=\"" + open + "/s\"\n"
	}
	for _, tt := range []struct {
		name   string
		config string
		host   Host
		want   []string // substrings of the problems, "warning: " marking warnings
		errors bool     // whether any problem is an error
	}{
		{"not root, nothing set", dirs(open), Host{Euid: 1000},
			[]string{"warning: executor.job_uids: the executor runs as uid 1000, not root, so it cannot change uids", "can read state_dir"}, false},
		{"not root, job_uids", dirs(open) + `job_uids="64000-64099"`, Host{Euid: 1000},
			[]string{"executor.job_uids: a uid per job needs the executor to run as root"}, true},
		{"not root, run_as", dirs(open) + `run_as="nobody"`, Host{Euid: 1000},
			[]string{`executor.run_as: running job scripts as "nobody" needs the executor to run as root`}, true},
		{"root, nothing set", dirs(open), Host{Euid: 0},
			[]string{"executor.job_uids: not set, and neither is run_as", "prepare fails every job"}, true},
		{"root, run_as root", dirs(open) + `run_as="root"`, Host{Euid: 0},
			[]string{`warning: executor.run_as: "root": jobs run as root and can reach everything`}, false},
		{"root, run_as nobody", dirs(private) + "run_as=\"nobody\"\n[slack]\ntoken_file=\"" + token + "\"\n", Host{Euid: 0},
			[]string{"warning: executor.run_as: every job runs as nobody", "jobs share one uid",
				"executor.builds_dir: the job's user cannot reach it: uid 65534 cannot pass through " + private,
				"executor.cache_dir: the job's user cannot reach it"}, true},
		{"root, job_uids overlapping accounts", dirs(open) + `job_uids="64000-64099"`, Host{Euid: 0, Passwd: accounts, Group: groups},
			[]string{"executor.job_uids: 64000-64099 overlaps accounts of this host: user deploy (64050), group builders (64070)"}, true},
		{"root, job_uids too few for concurrent", dirs(open) + `job_uids="64000-64009"`, Host{Euid: 0, Passwd: accounts, Group: groups, RunnerConfig: runner},
			[]string{"64000-64009 holds 10 uids but " + runner + " lets gitlab-runner run 20 jobs at once"}, true},
		{"root, job_uids unreachable builds_dir", dirs(private) + `job_uids="64000-64099"`, Host{Euid: 0},
			[]string{"executor.builds_dir: the job's user cannot reach it: uid 64000 cannot pass through " + private}, true},
		{"root, job_uids with a readable audit log", dirs(open) + `job_uids="64100-64199"` + "\n[policy]\naudit_log=\"" + audit + "\"\n", Host{Euid: 0},
			[]string{"policy.audit_log: " + audit + " is readable by the uids of job_uids: jobs would read it"}, true},
		{"root, job_uids fine", dirs(open) + `job_uids="64100-64199"`, Host{Euid: 0, Passwd: accounts, Group: groups, RunnerConfig: runner}, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.config, "nobody") && tt.host.Euid == 0 && os.Geteuid() != 0 {
				t.Skip("needs root: the test's files belong to the test's user, and run_as is a real user")
			}
			cfg, err := Parse("c.toml", []byte("[executor]\n"+tt.config+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			errs := false
			for _, p := range cfg.CheckHost(func(string) string { return "xoxb-env" }, tt.host) {
				got = append(got, p.String())
				errs = errs || !p.Warning
			}
			all := strings.Join(got, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("problems lack %q; got:\n%s", w, all)
				}
			}
			if tt.want == nil && len(got) > 0 {
				t.Errorf("want no problems; got:\n%s", all)
			}
			if errs != tt.errors {
				t.Errorf("errors = %v, want %v; got:\n%s", errs, tt.errors, all)
			}
		})
	}
}

func TestCheckRunAsSecretsReadable(t *testing.T) {
	open := traversable(t)
	token := filepath.Join(open, "token")
	if err := os.WriteFile(token, []byte("xoxb-1"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Owned by the run_as user: the job could read it.
	if err := os.Chown(token, 65534, 65534); err != nil {
		t.Skipf("chown needs root: %v", err)
	}
	cfg, err := Parse("c.toml", []byte("[executor]\nbuilds_dir=\""+open+"/b\"\ncache_dir=\""+open+"/c\"\nstate_dir=\""+open+"/s\"\nrun_as=\"nobody\"\n[slack]\ntoken_file=\""+token+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, p := range cfg.CheckHost(func(string) string { return "" }, Host{Euid: 0}) {
		all = append(all, p.String())
	}
	want := "slack.token_file: " + token + " is owned by run_as user nobody: jobs would read it"
	if !strings.Contains(strings.Join(all, "\n"), want) {
		t.Errorf("problems lack %q; got:\n%s", want, strings.Join(all, "\n"))
	}
}

func TestJobUIDsValidation(t *testing.T) {
	for _, tt := range []struct{ config, want string }{
		{`job_uids = "64000"`, `line 2: executor.job_uids: want FIRST-LAST, such as "64000-64099"`},
		{`job_uids = "10-20"`, "uids below 1000 belong to the system"},
		{"job_uids = \"64000-64099\"\nrun_as = \"nobody\"", "set either job_uids (a uid per job) or run_as (one fixed user), not both"},
	} {
		_, err := Parse("c.toml", []byte("[executor]\n"+tt.config+"\n"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.config, err, tt.want)
		}
	}
	cfg, err := Parse("c.toml", []byte("[executor]\njob_uids = \"64000-64099\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := cfg.JobUIDRange(); !ok || r.First != 64000 || r.Last != 64099 {
		t.Errorf("JobUIDRange = %v %v", r, ok)
	}
}
