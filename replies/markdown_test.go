package replies

import (
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// liveMention finds an @ that Mattermost would read as the start of a mention: at the start
// or after a non-word character, followed directly by a name character.
var liveMention = regexp.MustCompile(`(^|[^\w.\-@])@[\w]`)

// markdownSpecial finds Markdown punctuation that is not escaped.
func unescaped(s, chars string) []string {
	var bad []string
	prev := rune(0)
	for _, r := range s {
		if strings.ContainsRune(chars, r) && prev != '\\' {
			bad = append(bad, string(r))
		}
		prev = r
	}
	return bad
}

func TestMarkdownEscapesWhatTheJobSets(t *testing.T) {
	m := Markdown{Username: "alice"}
	hostile := "@channel [x](http://evil) ![i](http://evil/p.png) *b* _i_ `c` ~~s~~ <b> # h @here @all @bob"
	j := Job{ID: 7, Name: hostile, Project: hostile, Input: "@all `x` [y](z)", URL: "https://gitlab.example.com/g/p/-/jobs/7", ChatUser: "u"}
	for name, text := range map[string]string{
		"start":    m.StartText(j),
		"progress": m.ProgressText(j, 61*time.Second, hostile),
		"status":   m.StatusText(j, Status{State: "failed", ExitCode: 2, Reason: hostile, Elapsed: time.Second}),
		"denied":   m.DeniedText(7, "@all [r](x)", j.URL),
	} {
		if loc := liveMention.FindStringIndex(strings.ReplaceAll(text, "@alice", "")); loc != nil {
			t.Errorf("%s: a live mention at %q in %q", name, text[loc[0]:min(loc[1]+8, len(text))], text)
		}
		if strings.Contains(text, "](http://evil") || strings.Contains(text, "![") {
			t.Errorf("%s: the job made a link or an image: %q", name, text)
		}
		if !strings.Contains(text, "[job \\#7](https://gitlab.example.com/g/p/-/jobs/7)") {
			t.Errorf("%s: no job link: %q", name, text)
		}
	}
	start := m.StartText(j)
	if !strings.HasPrefix(start, ":arrow_forward: @alice started **") {
		t.Errorf("start: %q", start)
	}
	// Outside the code span, the name's punctuation is all escaped.
	name := m.what(Job{Name: "*b* _i_ [x](y) ~s~ #h"})
	inner := strings.TrimSuffix(strings.TrimPrefix(name, "**"), "**")
	if bad := unescaped(inner, "*_[]()~#"); len(bad) > 0 {
		t.Errorf("unescaped %v in %q", bad, name)
	}
	if in := mdInlineCode("a`b@all"); strings.Count(in, "`") != 2 || liveMention.MatchString(in) {
		t.Errorf("inline code %q", in)
	}
}

func TestMarkdownMentionOnlyForAUsername(t *testing.T) {
	for name, want := range map[string]bool{"alice": true, "a.b-c_d": true, "": false, "all](x)": false, "Alice": false, "al ice": false} {
		got := Markdown{Username: name}.StartText(Job{ID: 1, Name: "n"})
		if strings.Contains(got, "@") != want {
			t.Errorf("username %q: %q", name, got)
		}
	}
}

func TestMarkdownLinkRefusesBreakouts(t *testing.T) {
	for _, u := range []string{"https://x/a)b", "https://x/ a", "https://x/a]b", "https://x/`"} {
		if got := mdLink(Job{ID: 3, URL: u}); got != "job \\#3" {
			t.Errorf("%q: %q", u, got)
		}
	}
}

func TestMarkdownCodeBlockCannotBeClosedOrMention(t *testing.T) {
	out := "ok\n```\n@channel look\n~~~\n<!here> @all"
	text := mdCodeBlock(out)
	body := strings.TrimSuffix(strings.TrimPrefix(text, "```\n"), "\n```")
	if strings.Contains(body, "```") || strings.Contains(body, "~~~") {
		t.Errorf("fence inside: %q", text)
	}
	if liveMention.MatchString(body) {
		t.Errorf("live mention in %q", body)
	}
	if strings.ReplaceAll(body, "\u200b", "") != out {
		t.Errorf("the output changed beyond zero-width spaces: %q", body)
	}
}

// Mattermost's 16383-character post limit, not Slack's, decides when output becomes a file.
func TestMarkdownOutputLimit(t *testing.T) {
	m := Markdown{}
	line := strings.Repeat("x", 99) + "\n"
	fits := strings.Repeat(line, 150) // 15000 characters: one Slack file, one Mattermost post
	out, err := m.FormatOutput(strings.NewReader(fits), int64(len(fits)), Status{State: "succeeded"}, MattermostMaxRunes)
	if err != nil || out.Upload || !strings.HasPrefix(out.Text, "```\n") {
		t.Fatalf("15000 characters: upload %v %v", out.Upload, err)
	}
	long := strings.Repeat(line, 200)
	out, err = m.FormatOutput(strings.NewReader(long), int64(len(long)), Status{State: "failed", ExitCode: 1}, 99999)
	if err != nil || !out.Upload || !strings.Contains(out.Text, "Last 25 lines") {
		t.Fatalf("20000 characters: upload %v %q %v", out.Upload, out.Text, err)
	}
	if n := utf8.RuneCountInString(out.Text); n > MattermostMaxRunes {
		t.Errorf("preview of %d characters", n)
	}
	// Failure: the last lines, where the error usually is.
	fail := strings.Repeat(line, 199) + "error: @all it broke\n"
	out, _ = m.FormatOutput(strings.NewReader(fail), int64(len(fail)), Status{State: "failed", ExitCode: 1}, MattermostMaxRunes)
	if !strings.Contains(out.Text, "error: @\u200ball it broke") {
		t.Errorf("last line missing or mention live: %q", out.Text[max(0, len(out.Text)-80):])
	}
}

func TestNeutraliseMarkdownMentions(t *testing.T) {
	for in, want := range map[string]string{
		"@channel deploy":       "@\u200bchannel deploy",
		"ping @here, @All!":     "ping @\u200bhere, @\u200bAll!",
		"@alice and @channels":  "@alice and @channels",
		"mail ops@here.example": "mail ops@here.example",
		"(@all)":                "(@\u200ball)",
	} {
		if got := NeutraliseMarkdownMentions(in); got != want {
			t.Errorf("NeutraliseMarkdownMentions(%q) = %q, want %q", in, got, want)
		}
	}
	m := NewMasker(Secrets{Values: []string{"hunter2hunter2"}})
	if got := ReplyMarkdown("  **ok** @here hunter2hunter2\n", m, false); got != "**ok** @\u200bhere [MASKED]" {
		t.Errorf("ReplyMarkdown = %q", got)
	}
	if got := ReplyMarkdown("@here", m, true); got != "@here" {
		t.Errorf("ReplyMarkdown with mentions allowed = %q", got)
	}
}
