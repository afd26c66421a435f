package tryjob

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
)

func TestRender(t *testing.T) {
	msgs := []slacktest.Message{
		{Channel: "C1", TS: "1.1", Text: ":white_check_mark: <@U1> *deploy* done · <https://gitlab.example.com/-/jobs/1|job #1>",
			History: []string{":arrow_forward: <@U1> started", ":white_check_mark: <@U1> *deploy* done · <https://gitlab.example.com/-/jobs/1|job #1>"}},
		{Channel: "C1", TS: "1.2", ThreadTS: "1.1", Text: "```\na &lt; b &amp;&amp; c :x:\n```", History: []string{"x"}},
		{Channel: "C1", TS: "1.3", ThreadTS: "1.1", Text: "", Files: []slacktest.File{{Filename: "deploy.log", Content: []byte("0123456789")}}},
		{Channel: "C1", TS: "1.4", Ephemeral: true, User: "U2", Text: ":no_entry_sign: not allowed: <!channel>", History: []string{"x"}},
	}
	var b strings.Builder
	if err := Render(&b, msgs, map[string]string{"U1": "alice"}); err != nil {
		t.Fatal(err)
	}
	want := `┌─ #C1
│ ✅ @alice *deploy* done · job #1 (https://gitlab.example.com/-/jobs/1) (edited)
│   ↳ thread
│   ┆ ` + "```" + `
│   ┆ a < b && c :x:
│   ┆ ` + "```" + `
│   ┆ 📎 deploy.log (10 bytes)
│ 👁 only visible to @U2: 🚫 not allowed: @channel
└─
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s\n%q", b.String(), want, b.String())
	}
	b.Reset()
	Render(&b, nil, nil)
	if b.String() != "(nothing was posted)\n" {
		t.Errorf("empty: %q", b.String())
	}
}

func TestResponse(t *testing.T) {
	j := &Job{Name: "deploy", Stage: "chatops", BeforeScript: []string{"echo before"}, Script: []string{"echo run"},
		AfterScript: []string{"echo after"}, Variables: []Var{{Key: "RAW", Value: "$X", Raw: true}, {Key: "CHAT_INPUT", Value: "from the file"}}}
	c := Chat{Input: "production v1", Channel: "C1", UserID: "U1", User: "alice", Project: "ops/infra",
		ServerURL: "https://gitlab.example.com", Ref: "main", JobID: 7, Token: "glcbt-secret",
		Created: time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC)}
	data, err := Response(j, c)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		ID        int64 `json:"id"`
		Token     string
		JobInfo   map[string]any `json:"job_info"`
		Variables []struct {
			Key, Value  string
			Masked, Raw bool
		}
		Steps []struct {
			Name   string
			Script []string
			When   string
		}
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	if r.ID != 7 || r.Token != "glcbt-secret" || r.JobInfo["project_full_path"] != "ops/infra" || r.JobInfo["project_name"] != "infra" {
		t.Errorf("response: %s", data)
	}
	last := map[string]string{}
	for _, v := range r.Variables {
		last[v.Key] = v.Value
		if v.Key == "CI_JOB_TOKEN" && !v.Masked || v.Key == "RAW" && !v.Raw {
			t.Errorf("variable %+v", v)
		}
	}
	for k, want := range map[string]string{
		"CI_PIPELINE_SOURCE": "chat", "CHAT_INPUT": "production v1", "CHAT_CHANNEL": "C1", "CHAT_USER_ID": "U1",
		"GITLAB_USER_LOGIN": "alice", "GIT_STRATEGY": "none", "CI_PIPELINE_CREATED_AT": "2026-11-24T14:00:00Z",
		"CI_JOB_NAME": "deploy", "CI_JOB_STAGE": "chatops",
	} {
		if last[k] != want {
			t.Errorf("%s = %q, want %q", k, last[k], want)
		}
	}
	if len(r.Steps) != 2 || strings.Join(r.Steps[0].Script, ";") != "echo before;echo run" || r.Steps[1].Name != "after_script" || r.Steps[1].When != "always" {
		t.Errorf("steps: %+v", r.Steps)
	}
}

func TestRenderBlocks(t *testing.T) {
	msgs := []slacktest.Message{
		{Channel: "C1", TS: "1.1", Text: "done", History: []string{"done"}},
		{Channel: "C1", TS: "1.2", ThreadTS: "1.1", Text: "fallback not shown", History: []string{"x"},
			Blocks: `[{"type":"header","text":{"type":"plain_text","text":"Hosts"}},` +
				`{"type":"section","fields":[{"type":"mrkdwn","text":"*host*"},{"type":"mrkdwn","text":"*up*"},{"type":"plain_text","text":"web1"},{"type":"plain_text","text":"yes"}]},` +
				`{"type":"context","elements":[{"type":"mrkdwn","text":"&lt;!here> asked by <@U1>"}]}]`},
		{Channel: "C1", TS: "1.3", ThreadTS: "1.1", Files: []slacktest.File{{Filename: "chart.png", Content: make([]byte, 2048)}}},
	}
	var b strings.Builder
	if err := Render(&b, msgs, map[string]string{"U1": "alice"}); err != nil {
		t.Fatal(err)
	}
	want := `┌─ #C1
│ done
│   ↳ thread
│   ┆ *Hosts*
│   ┆ *host* │ *up*
│   ┆ web1 │ yes
│   ┆ <!here> asked by @alice
│   ┆ 📎 chart.png (2048 bytes)
└─
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
