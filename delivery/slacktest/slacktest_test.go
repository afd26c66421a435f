package slacktest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
)

const token = "xoxb-1111-2222-S3CR3Tt0k3nValue"

func client(s *slacktest.Server, tok string) *slack.Client {
	return slack.New(tok, slack.OptionAPIURL(s.APIURL()))
}

func TestConversation(t *testing.T) {
	s := slacktest.New(t, token)
	if !strings.HasPrefix(s.APIURL(), "http://127.0.0.1:") || !strings.HasSuffix(s.APIURL(), "/api/") {
		t.Fatalf("APIURL %q", s.APIURL())
	}
	api := client(s, token)
	ctx := context.Background()

	_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("starting", false), slack.MsgOptionDisableLinkUnfurl())
	if err != nil || ts == "" {
		t.Fatalf("post: %q %v", ts, err)
	}
	_, reply, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("reply", false), slack.MsgOptionTS(ts))
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"running", "done"} {
		if _, _, _, err := api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText(text, false)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := api.PostEphemeralContext(ctx, "C1", "U1", slack.MsgOptionText("only you", false)); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("output line\n"), 100000)
	if _, err := api.UploadFileContext(ctx, slack.UploadFileParameters{Reader: bytes.NewReader(data), FileSize: len(data),
		Filename: "out.txt", Title: "the output", InitialComment: "full output", Channel: "C1", ThreadTimestamp: ts}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, "C1", "1.2", slack.MsgOptionText("x", false)); err == nil || err.Error() != "message_not_found" {
		t.Errorf("update of an unknown message: %v", err)
	}

	msgs := s.Messages()
	if len(msgs) != 4 {
		t.Fatalf("%d messages:\n%s", len(msgs), s)
	}
	if m := msgs[0]; m.Channel != "C1" || m.TS != ts || m.ThreadTS != "" || m.Text != "done" ||
		fmt.Sprint(m.History) != "[starting running done]" || m.Edited.IsZero() {
		t.Errorf("start message %+v", m)
	}
	if m := msgs[1]; m.TS != reply || m.ThreadTS != ts || m.Text != "reply" || len(m.History) != 1 || !m.Edited.IsZero() {
		t.Errorf("reply %+v", m)
	}
	if m := msgs[2]; !m.Ephemeral || m.User != "U1" || m.Text != "only you" {
		t.Errorf("ephemeral %+v", m)
	}
	m := msgs[3]
	if m.ThreadTS != ts || m.Text != "full output" || len(m.Files) != 1 {
		t.Fatalf("file share %+v", m)
	}
	if f := m.Files[0]; f.Filename != "out.txt" || f.Title != "the output" || f.Comment != "full output" || !bytes.Equal(f.Content, data) {
		t.Errorf("file %s %q %q: %d bytes", f.Filename, f.Title, f.Comment, len(f.Content))
	}
	if th := s.Thread("C1", ts); len(th) != 2 || th[0].TS != reply || th[1].Files == nil {
		t.Errorf("thread %+v", th)
	}
	if ch := s.Channel("C1"); len(ch) != 4 || len(s.Channel("C2")) != 0 {
		t.Errorf("channel view %d messages", len(ch))
	}

	var methods []string
	for _, e := range s.Events() {
		methods = append(methods, e.Method)
	}
	if want := "[chat.postMessage chat.postMessage chat.update chat.update chat.postEphemeral files.completeUploadExternal]"; fmt.Sprint(methods) != want {
		t.Errorf("events %v, want %s", methods, want)
	}
	if e := s.Events()[3]; e.TS != ts || e.Text != "done" {
		t.Errorf("edit event %+v", e)
	}

	post := s.Calls("chat.postMessage")[0]
	if post.ContentType != "application/x-www-form-urlencoded" || post.Param != slacktest.TokenValid ||
		post.Header != slacktest.TokenAbsent || !post.Auth || post.Status != 200 || post.Error != "" ||
		post.Params["channel"] != "C1" || post.Params["unfurl_links"] != "false" || post.Time.IsZero() {
		t.Errorf("post call %+v", post)
	}
	if _, ok := post.Params["token"]; ok {
		t.Error("the token parameter was recorded")
	}
	up := s.Calls(slacktest.UploadMethod)
	if len(up) != 1 || up[0].ContentType != "multipart/form-data" || up[0].Header != slacktest.TokenValid ||
		up[0].Filename != "out.txt" || up[0].Size != int64(len(data)) {
		t.Errorf("upload call %+v", up)
	}
	if c := s.Calls("files.getUploadURLExternal")[0]; c.Params["length"] != fmt.Sprint(len(data)) {
		t.Errorf("getUploadURLExternal %+v", c)
	}
	if n := len(s.Calls(slacktest.AnyMethod)); n != 9 {
		t.Errorf("%d calls in all, want 9", n)
	}
	if text := fmt.Sprintf("%+v %+v %+v %v", s.Calls(slacktest.AnyMethod), s.Events(), s.Messages(), s); strings.Contains(text, "S3CR3T") {
		t.Error("the token shows in what the fake recorded")
	}
}

func TestAuth(t *testing.T) {
	s := slacktest.New(t, token)
	ctx := context.Background()
	_, _, err := client(s, "xoxb-1111-2222-WR0NGt0k3nValue").PostMessageContext(ctx, "C1", slack.MsgOptionText("hi", false))
	if err == nil || err.Error() != "invalid_auth" {
		t.Errorf("wrong token: %v", err)
	}
	c := s.Calls("chat.postMessage")
	if len(c) != 1 || c[0].Auth || c[0].Param != slacktest.TokenWrong || c[0].Error != "invalid_auth" {
		t.Errorf("calls %+v", c)
	}
	if strings.Contains(fmt.Sprintf("%+v", c), "WR0NG") {
		t.Error("the wrong token was recorded")
	}
	// JSON, as Slack accepts it: the token only in the Authorization header.
	post := func(auth, body string) map[string]any {
		req, _ := http.NewRequest(http.MethodPost, s.APIURL()+"chat.postMessage", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return map[string]any{"body": string(b)}
	}
	if r := post("", `{"token":"`+token+`","channel":"C1","text":"x"}`); !strings.Contains(r["body"].(string), "not_authed") {
		t.Errorf("JSON with the token in the body: %v", r)
	}
	if r := post("Bearer "+token, `{"channel":"C1","text":"json","unfurl_links":false,"n":5}`); !strings.Contains(r["body"].(string), `"ok":true`) {
		t.Errorf("JSON post: %v", r)
	}
	c = s.Calls("chat.postMessage")
	if j := c[2]; j.ContentType != "application/json" || !j.Auth || j.Header != slacktest.TokenValid ||
		j.Params["unfurl_links"] != "false" || j.Params["n"] != "5" || j.Params["text"] != "json" {
		t.Errorf("JSON call %+v", j)
	}
	if _, ok := c[1].Params["token"]; ok || c[1].Error != "not_authed" {
		t.Errorf("JSON call with a body token %+v", c[1])
	}
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].Text != "json" {
		t.Errorf("messages %+v", msgs)
	}
}

func TestFaults(t *testing.T) {
	s := slacktest.New(t, token)
	api := client(s, token)
	ctx := context.Background()
	postErr := func(ctx context.Context) error {
		_, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("hi", false))
		return err
	}

	s.Fail("chat.postMessage", slacktest.RateLimited(7*time.Second), slacktest.HTTPError(503), slacktest.SlackError("not_in_channel"))
	var rl *slack.RateLimitedError
	if err := postErr(ctx); !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
		t.Errorf("rate limit: %v", err)
	}
	var sc slack.StatusCodeError
	if err := postErr(ctx); !errors.As(err, &sc) || sc.Code != 503 {
		t.Errorf("503: %v", err)
	}
	if err := postErr(ctx); err == nil || err.Error() != "not_in_channel" {
		t.Errorf("ok:false: %v", err)
	}
	if err := postErr(ctx); err != nil {
		t.Errorf("faults ran out, still %v", err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages, want 1 (failed calls have no effect)", n)
	}

	// Slow: acted on, answered too late.
	s.Fail("chat.postMessage", slacktest.Slow(2*time.Second))
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := postErr(sctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow: %v", err)
	}
	if n := len(s.Messages()); n != 2 {
		t.Errorf("%d messages, want 2 (the slow call was acted on)", n)
	}
	// Failing after the effect.
	s.Fail("chat.postMessage", slacktest.Fault{Status: 500, AfterEffect: true})
	if err := postErr(ctx); !errors.As(err, &sc) || sc.Code != 500 || len(s.Messages()) != 3 {
		t.Errorf("after effect: %v, %d messages", err, len(s.Messages()))
	}

	s.FailAlways(slacktest.AnyMethod, slacktest.HTTPError(500))
	for range 3 {
		if err := postErr(ctx); !errors.As(err, &sc) || sc.Code != 500 {
			t.Errorf("always: %v", err)
		}
	}
	s.Heal()
	if err := postErr(ctx); err != nil {
		t.Errorf("healed: %v", err)
	}
	s.FailAlways("chat.postMessage", slacktest.SlackError("internal_error"))
	s.FailAlways("chat.postMessage", slacktest.Fault{})
	if err := postErr(ctx); err != nil {
		t.Errorf("fault turned off: %v", err)
	}
	c := s.Calls("chat.postMessage")
	if c[0].Status != 429 || c[1].Status != 503 || c[2].Status != 200 || c[2].Error != "not_in_channel" {
		t.Errorf("recorded answers %+v", c[:3])
	}
}

func TestDownUp(t *testing.T) {
	s := slacktest.New(t, token)
	api := client(s, token)
	before := s.APIURL()
	s.Down()
	s.Down()
	_, _, err := api.PostMessageContext(context.Background(), "C1", slack.MsgOptionText("hi", false))
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("down: %v", err)
	}
	s.Up()
	s.Up()
	if s.APIURL() != before {
		t.Errorf("APIURL changed: %s → %s", before, s.APIURL())
	}
	if _, _, err := api.PostMessageContext(context.Background(), "C1", slack.MsgOptionText("hi", false)); err != nil {
		t.Errorf("up: %v", err)
	}
	if n := len(s.Calls("chat.postMessage")); n != 1 {
		t.Errorf("%d calls recorded, want 1", n)
	}
}

func TestUploadEdges(t *testing.T) {
	s := slacktest.New(t, token)
	other := slacktest.New(t, token)
	api := client(s, token)
	ctx := context.Background()

	// Completed without a channel: uploaded, not shared.
	if _, err := api.UploadFileContext(ctx, slack.UploadFileParameters{Content: "x", FileSize: 1, Filename: "a.txt"}); err != nil {
		t.Fatal(err)
	}
	if len(s.Messages()) != 0 {
		t.Errorf("a file shared nowhere shows: %v", s)
	}
	// A file never uploaded cannot be shared.
	u, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "b.txt", FileSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{
		Files: []slack.FileSummary{{ID: u.FileID}}, Channel: "C1"})
	if err == nil || err.Error() != "file_not_found" {
		t.Errorf("complete before upload: %v", err)
	}
	// Missing length (slack-go does not let one send that).
	resp, err := http.PostForm(s.APIURL()+"files.getUploadURLExternal", url.Values{"token": {token}, "filename": {"b.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"error":"invalid_arguments"`) || !strings.Contains(string(b), "length") {
		t.Errorf("no length: %s", b)
	}
	// An upload to a URL never handed out.
	resp, err = http.Post("http://"+s.Addr()+"/upload/v1/F404", "multipart/form-data; boundary=x", strings.NewReader("--x--\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("upload to an unknown URL: %s", resp.Status)
	}
	// Elsewhere.
	s.SetUploadHost(other.Addr())
	u, err = api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "c.txt", FileSize: 1})
	if err != nil || !strings.HasPrefix(u.UploadURL, "http://"+other.Addr()+"/") {
		t.Errorf("upload URL %+v %v", u, err)
	}
	if err := api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: u.UploadURL, Content: "x", Filename: "c.txt"}); err == nil {
		t.Error("slack-go sent the file to a foreign host")
	}
	if len(other.Calls(slacktest.AnyMethod)) != 0 {
		t.Error("the other server was called")
	}
}

func TestStartOutsideTests(t *testing.T) {
	if _, err := slacktest.Start(""); err == nil {
		t.Error("Start with an empty token: no error")
	}
	s, err := slacktest.Start("xoxb-start")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(s.APIURL()+"chat.postMessage", url.Values{"token": {"xoxb-start"}, "channel": {"C1"}, "text": {"hi"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].Text != "hi" {
		t.Errorf("messages: %+v", msgs)
	}
	s.Close()
	s.Up() // a closed server stays down
	if resp, err := http.Get(s.APIURL() + "chat.postMessage"); err == nil {
		resp.Body.Close()
		t.Error("the closed server still answers")
	}
}
