package config

import (
	"strings"
	"testing"
)

func TestReplyFilesKeys(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Slack
	if s.ReplyFiles != "text" || s.ReplyMaxFiles != 10 || s.ReplyMaxFileSize != 10<<20 || s.ReplyMaxTotalSize != 25<<20 {
		t.Errorf("defaults: %q %d %d %d", s.ReplyFiles, s.ReplyMaxFiles, s.ReplyMaxFileSize, s.ReplyMaxTotalSize)
	}
	good := minimal + "[slack]\nreply_files = \"all\"\nreply_max_files = 3\nreply_max_file_size = \"1MiB\"\nreply_max_total_size = \"2MiB\"\n" +
		"[[policy.rule]]\nname = \"announce\"\naction = \"allow\"\njobs = [\"announce\"]\nallow_mentions = true\n"
	cfg, err = Parse("c.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Slack; s.ReplyFiles != "all" || s.ReplyMaxFiles != 3 || s.ReplyMaxFileSize != 1<<20 || s.ReplyMaxTotalSize != 2<<20 {
		t.Errorf("parsed %+v", s)
	}
	if !cfg.Policy.Rules[0].AllowMentions {
		t.Error("allow_mentions not parsed")
	}
	for _, tt := range []struct{ toml, want string }{
		{"[slack]\nreply_files = \"binary\"\n", `line 7: slack.reply_files: must be "text"`},
		{"[slack]\nreply_max_files = 101\n", "slack.reply_max_files: must be between 0 (no files) and 100"},
		{"[slack]\nreply_max_file_size = \"2GiB\"\nreply_max_total_size = \"4GiB\"\n", "slack.reply_max_file_size: must be between 1 byte and 1GiB"},
		{"[slack]\nreply_max_total_size = \"1MiB\"\n", "slack.reply_max_total_size: must be at least reply_max_file_size (10MiB)"},
		{"[slack]\nreply_max_files = \"ten\"\n", "reply_max_files = 10"},
		{"[[policy.rule]]\nname = \"nope\"\naction = \"deny\"\njobs = [\"x\"]\nallow_mentions = true\n", "policy.rule[1] (nope).allow_mentions: applies to the jobs a rule lets run"},
	} {
		_, err := Parse("c.toml", []byte(minimal+tt.toml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.toml, err, tt.want)
		}
	}
}
