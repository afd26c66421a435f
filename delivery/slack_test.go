package delivery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
)

const testToken = "xoxb-1111-2222-S3CR3Tt0k3nValue"

func newPoster(t *testing.T, f *slacktest.Server) *Slack {
	t.Helper()
	// No trailing slash on purpose: NewSlack must add it.
	p, err := NewSlack(testToken, strings.TrimSuffix(f.APIURL(), "/"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewSlackRejectsBadInput(t *testing.T) {
	for _, tt := range []struct{ token, url string }{
		{"", "https://slack.com/api/"},
		{testToken, "slack.com/api"},
		{testToken, "ftp://slack.com/api/"},
	} {
		if _, err := NewSlack(tt.token, tt.url); err == nil {
			t.Errorf("NewSlack(%q, %q) succeeded", tt.token, tt.url)
		} else if strings.Contains(err.Error(), testToken) {
			t.Errorf("error leaks the token: %v", err)
		}
	}
}

func TestSlackCalls(t *testing.T) {
	f := slacktest.New(t, testToken)
	p := newPoster(t, f)
	ctx := context.Background()

	text := "*done* in `1m` <https://gitlab.example.com/job/1|job> &amp; more"
	ts, err := p.PostMessage(ctx, "C1", "", text)
	if err != nil || ts == "" {
		t.Fatalf("post: %q %v", ts, err)
	}
	if _, err := p.PostMessage(ctx, "C1", ts, "in thread"); err != nil {
		t.Fatal(err)
	}
	if err := p.UpdateMessage(ctx, "C1", ts, "edited"); err != nil {
		t.Fatal(err)
	}
	if err := p.PostEphemeral(ctx, "C1", "U1", "only you"); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 5<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	if err := p.UploadFile(ctx, FileUpload{Channel: "C1", ThreadTS: ts, Filename: "output.txt", Title: "output",
		Comment: "full output", Size: int64(len(data)), Content: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}

	msgs := f.Events()
	if len(msgs) != 5 {
		t.Fatalf("fake got %d effects, want 5: %+v", len(msgs), msgs)
	}
	if m := msgs[0]; m.Text != text || m.Channel != "C1" || m.ThreadTS != "" {
		t.Errorf("post: %+v (text must arrive unescaped: it is mrkdwn already)", m)
	}
	if m := msgs[1]; m.ThreadTS != ts {
		t.Errorf("thread reply: %+v, want thread %s", m, ts)
	}
	if m := msgs[2]; m.Method != "chat.update" || m.TS != ts || m.Text != "edited" {
		t.Errorf("update: %+v", m)
	}
	if m := msgs[3]; m.Method != "chat.postEphemeral" || m.User != "U1" {
		t.Errorf("ephemeral: %+v", m)
	}
	if m := msgs[4]; m.ThreadTS != ts || m.Text != "full output" || sha256.Sum256(fileContent(m)) != sha256.Sum256(data) {
		t.Errorf("upload: thread %q comment %q, %d bytes (want %d, same hash)", m.ThreadTS, m.Text, len(fileContent(m)), len(data))
	}
	if c := f.Calls("chat.postMessage")[0]; c.Params["unfurl_links"] != "false" || !c.Auth {
		t.Errorf("post form %v auth %v", c.Params, c.Auth)
	}
	if c := f.Calls("files.getUploadURLExternal")[0]; c.Params["length"] != "5242880" || c.Params["filename"] != "output.txt" {
		t.Errorf("getUploadURLExternal form %v", c.Params)
	}
}

// Every failure is classified once, by whether Slack could have acted, and its text never
// carries the token.
func TestSlackClassifiesErrors(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		fault slacktest.Fault
		class Class
		code  string
		hint  string
	}{
		{"rate limit", slacktest.Fault{Status: 429, RetryAfter: "7"}, Retryable, "rate_limited", ""},
		{"server error", slacktest.Fault{Status: 500}, Retryable, "http_500", ""},
		{"bad gateway", slacktest.Fault{Status: 502}, Retryable, "http_502", ""},
		{"not in channel", slacktest.Fault{Error: "not_in_channel"}, Permanent, "not_in_channel", "invite the bot"},
		{"channel not found", slacktest.Fault{Error: "channel_not_found"}, Permanent, "channel_not_found", "private channel"},
		{"invalid auth", slacktest.Fault{Error: "invalid_auth"}, Permanent, "invalid_auth", "token"},
		{"too long", slacktest.Fault{Error: "msg_too_long"}, Permanent, "msg_too_long", "inline_limit"},
		{"ratelimited code", slacktest.Fault{Error: "ratelimited"}, Retryable, "ratelimited", ""},
		{"internal error", slacktest.Fault{Error: "internal_error"}, Uncertain, "internal_error", ""},
		{"echoed token", slacktest.Fault{Error: "bad token " + testToken}, Permanent, "", ""},
		{"slow", slacktest.Fault{Delay: 2 * time.Second}, Uncertain, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := slacktest.New(t, testToken)
			f.Fail("chat.postMessage", tt.fault)
			p := newPoster(t, f)
			actx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			_, err := p.PostMessage(actx, "C1", "", "hi")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not *Error", err, err)
			}
			if e.Class != tt.class || (tt.code != "" && e.Code != tt.code) || !strings.Contains(e.Hint, tt.hint) {
				t.Errorf("got class %v code %q hint %q, want %v %q %q (%v)", e.Class, e.Code, e.Hint, tt.class, tt.code, tt.hint, e)
			}
			if tt.fault.RetryAfter == "7" && e.RetryAfter != 7*time.Second {
				t.Errorf("RetryAfter %v, want 7s", e.RetryAfter)
			}
			if strings.Contains(e.Error(), testToken) || strings.Contains(e.Error(), "S3CR3T") {
				t.Errorf("error text leaks the token: %q", e.Error())
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		f := slacktest.New(t, testToken)
		p := newPoster(t, f)
		f.Down()
		_, err := p.PostMessage(ctx, "C1", "", "hi")
		e := Classify(err)
		if e.Class != Retryable || !strings.Contains(e.Error(), "Slack unreachable") || strings.Contains(e.Error(), testToken) {
			t.Errorf("refused: %v %v", e.Class, e)
		}
	})
}

// The upload URL must be on the API host: slack-go sends the token there.
func TestSlackUploadRefusesForeignHost(t *testing.T) {
	f := slacktest.New(t, testToken)
	other := slacktest.New(t, testToken)
	f.SetUploadHost(other.Addr())
	err := newPoster(t, f).UploadFile(context.Background(),
		FileUpload{Channel: "C1", Filename: "a.txt", Size: 1, Content: strings.NewReader("x")})
	e := Classify(err)
	if e.Class != Permanent || !strings.Contains(e.Hint, "api_url") {
		t.Errorf("foreign upload host: class %v hint %q err %v", e.Class, e.Hint, e)
	}
	if len(other.Calls(slacktest.UploadMethod)) != 0 {
		t.Error("the file (and token) went to a host other than the API URL's")
	}
}

// fileContent is what a file share event uploaded (nil for other events).
func fileContent(e slacktest.Event) []byte {
	if len(e.Files) == 0 {
		return nil
	}
	return e.Files[0].Content
}
