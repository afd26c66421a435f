package replies

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var testJob = Job{ID: 42, Name: "deploy", Project: "ops/infra", URL: "https://gitlab.example.com/ops/infra/-/jobs/42", ChatUser: "U0123ABCD", Input: "production v1.4.2"}

func TestMessageTexts(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"start", StartText(testJob),
			":arrow_forward: <@U0123ABCD> started *deploy* in ops/infra with `production v1.4.2` · <https://gitlab.example.com/ops/infra/-/jobs/42|job #42>"},
		{"success", StatusText(testJob, Status{State: "succeeded", Elapsed: 72 * time.Second}),
			":white_check_mark: <@U0123ABCD> *deploy* in ops/infra succeeded after 1m12s · <https://gitlab.example.com/ops/infra/-/jobs/42|job #42>"},
		{"failure", StatusText(testJob, Status{State: "failed", ExitCode: 3, Elapsed: 2 * time.Hour}),
			":x: <@U0123ABCD> *deploy* in ops/infra failed with exit code 3 after 2h0m0s · <https://gitlab.example.com/ops/infra/-/jobs/42|job #42>"},
		{"timeout", StatusText(testJob, Status{State: "timed out", Elapsed: time.Minute}),
			":alarm_clock: <@U0123ABCD> *deploy* in ops/infra timed out after 1m0s · <https://gitlab.example.com/ops/infra/-/jobs/42|job #42>"},
		{"progress", ProgressText(testJob, 90*time.Second, "copying <files> & more"),
			":hourglass_flowing_sand: <@U0123ABCD> *deploy* in ops/infra running for 1m30s · <https://gitlab.example.com/ops/infra/-/jobs/42|job #42>\n> copying &lt;files&gt; &amp; more"},
		{"denied", DeniedText(42, "ops-only", "https://gitlab.example.com/ops/infra/-/jobs/42"),
			":lock: The runner's policy denied your chat command (rule `ops-only`); the job's log says why · <https://gitlab.example.com/ops/infra/-/jobs/42|job #42>"},
		// Anything the job controls is escaped: no mentions, broadcasts or links.
		{"hostile job fields", StartText(Job{ID: 1, Name: "<!channel>", ChatUser: "<!here>", Input: "`x` <@U999>\nsecond line", URL: "https://evil|click"}),
			":arrow_forward: started *&lt;!channel&gt;* with `'x' &lt;@U999&gt; …` · job #1"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestFormatOutput(t *testing.T) {
	lines := func(n int) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, "line %d\n", i)
		}
		return strings.TrimSuffix(b.String(), "\n")
	}
	ok := Status{State: "succeeded"}
	bad := Status{State: "failed", ExitCode: 1}
	tests := []struct {
		name       string
		text       string
		status     Status
		limit      int
		wantText   string // exact, or "" to skip
		contains   []string
		absent     []string
		wantUpload bool
	}{
		{name: "empty success", text: "", status: ok, limit: 3000, wantText: ""},
		{name: "empty failure", text: "", status: bad, limit: 3000, wantText: "_The job printed nothing._"},
		{name: "inline", text: "a < b\n```fence```", status: ok, limit: 3000, wantText: "```\na &lt; b\n``\u200b`fence``\u200b`\n```"},
		{name: "long success: head and tail", text: lines(2000), status: ok, limit: 3000, wantUpload: true,
			contains: []string{"line 1\n", "line 10\n… 1980 lines omitted …\nline 1991", "line 2000\n```"}, absent: []string{"line 11\n"}},
		{name: "long failure: last lines", text: lines(2000), status: bad, limit: 3000, wantUpload: true,
			contains: []string{"Last 25 lines", "line 1976\n", "line 2000\n```"}, absent: []string{"line 1975\n", "line 1\n"}},
		{name: "long lines cut to the limit", text: strings.Repeat(strings.Repeat("é", 400)+"\n", 60), status: ok, limit: 500, wantUpload: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := FormatOutput(strings.NewReader(tt.text), int64(len(tt.text)), tt.status, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantText != "" || tt.text == "" {
				if out.Text != tt.wantText {
					t.Errorf("text %q, want %q", out.Text, tt.wantText)
				}
			}
			if out.Upload != tt.wantUpload {
				t.Errorf("upload = %v", out.Upload)
			}
			if n := utf8.RuneCountInString(out.Text); n > tt.limit {
				t.Errorf("text is %d characters, over the limit %d", n, tt.limit)
			}
			for _, c := range tt.contains {
				if !strings.Contains(out.Text, c) {
					t.Errorf("text lacks %q:\n%s", c, out.Text)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(out.Text, a) {
					t.Errorf("text has %q:\n%s", a, out.Text)
				}
			}
		})
	}
}

func TestValidIDs(t *testing.T) {
	for id, want := range map[string]bool{"C0123ABCD": true, "G01": true, "D0ABC": true, "U0123": false, "#general": false, "C0123ABCD\n": false, "": false} {
		if ValidChannel(id) != want {
			t.Errorf("ValidChannel(%q) = %v", id, !want)
		}
	}
	for id, want := range map[string]bool{"U0123ABCD": true, "W012AB": true, "<!here>": false, "u0123": false} {
		if ValidUser(id) != want {
			t.Errorf("ValidUser(%q) = %v", id, !want)
		}
	}
}
