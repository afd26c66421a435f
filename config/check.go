package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Check looks past the file at the machine it describes: secret files that are missing,
// empty or readable by others, a run_as user that does not exist, a shell that is not
// installed, directories that cannot be created or are open to other users. It is what
// `chatops-executor check` runs; Load alone stays cheap enough for every stage call.
func (c *Config) Check(getenv func(string) string) []Problem {
	return c.CheckHost(getenv, ThisHost())
}

// CheckHost is Check for the machine h describes.
func (c *Config) CheckHost(getenv func(string) string, h Host) []Problem {
	var ps []Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Slack.TokenFile != "" {
		if _, err := ReadSecret(c.Slack.TokenFile); err != nil {
			add("slack.token_file", "%v", err)
		}
	}
	if c.Mattermost.TokenFile != "" {
		if _, err := ReadSecret(c.Mattermost.TokenFile); err != nil {
			add("mattermost.token_file", "%v", err)
		}
	}
	if c.GitLab.TokenFile != "" {
		if _, err := ReadSecret(c.GitLab.TokenFile); err != nil {
			add("gitlab.token_file", "%v", err)
		}
	}
	ps = append(ps, c.checkIsolation(h)...)
	if _, err := exec.LookPath(c.Executor.Shell); err != nil {
		add("executor.shell", "%q is not installed or not on PATH", c.Executor.Shell)
	}
	for _, d := range []struct{ key, dir string }{
		{"executor.state_dir", c.Executor.StateDir},
		{"executor.builds_dir", c.Executor.BuildsDir},
		{"executor.cache_dir", c.Executor.CacheDir},
	} {
		if err := checkDir(d.dir, d.key == "executor.state_dir"); err != nil {
			add(d.key, "%v", err)
		}
	}
	if c.Policy.AuditLog != "" {
		if err := checkDir(filepath.Dir(c.Policy.AuditLog), false); err != nil {
			add("policy.audit_log", "%v", err)
		}
	}
	ps = append(ps, c.checkFiles(getenv)...)
	ps = append(ps, c.checkFleet()...)
	ps = append(ps, c.checkMattermostChannels()...)
	if !c.SlackEnabled(getenv) && !c.MattermostEnabled() {
		ps = append(ps, Problem{Key: "slack.token_file", Warning: true,
			Msg: "not set and SLACK_BOT_TOKEN is empty: jobs will run but no reply will be posted"})
	}
	return ps
}

// checkDir reports whether dir exists as a writable directory or can be created, and for
// private directories (the state dir holds raw, unredacted job output) that other users
// cannot read it.
func checkDir(dir string, private bool) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		parent := filepath.Dir(dir)
		for {
			pfi, perr := os.Stat(parent)
			if perr == nil {
				if !pfi.IsDir() {
					return fmt.Errorf("%s does not exist and cannot be created: %s is not a directory", dir, parent)
				}
				if err := writable(parent); err != nil {
					return fmt.Errorf("%s does not exist and cannot be created: %w", dir, err)
				}
				return nil
			}
			if parent == filepath.Dir(parent) {
				return fmt.Errorf("%s does not exist and cannot be created", dir)
			}
			parent = filepath.Dir(parent)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if private && fi.Mode().Perm()&0o007 != 0 {
		return fmt.Errorf("%s is accessible to other users (mode %04o): it holds unredacted job output; chmod o-rwx it", dir, fi.Mode().Perm())
	}
	return writable(dir)
}

func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".chatops-executor-check-*")
	if err != nil {
		return fmt.Errorf("%s is not writable by this user: %w", dir, unwrapPath(err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// ReadSecret reads a token from a file the way secrets must be kept: present, non-empty
// and not readable by other users. Surrounding white space (a trailing newline) is dropped.
func ReadSecret(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("secret file %s: %w", path, unwrapPath(err))
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return "", fmt.Errorf("secret file %s is readable by every user (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("secret file %s: %w", path, unwrapPath(err))
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("secret file %s has more than one line: it must hold only the token", path)
	}
	return s, nil
}

// SlackToken returns the bot token from slack.token_file, else from $SLACK_BOT_TOKEN in
// the executor's own environment, else "" (replies off).
func (c *Config) SlackToken(getenv func(string) string) (string, error) {
	if c.Slack.TokenFile != "" {
		return ReadSecret(c.Slack.TokenFile)
	}
	return strings.TrimSpace(getenv("SLACK_BOT_TOKEN")), nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
