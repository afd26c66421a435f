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
)

const testToken = "xoxb-1111-2222-S3CR3Tt0k3nValue"

func newPoster(t *testing.T, f *fakeSlack) *Slack {
	t.Helper()
	// No trailing slash on purpose: NewSlack must add it.
	p, err := NewSlack(testToken, strings.TrimSuffix(f.apiURL(), "/"))
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
	f := newFakeSlack(t, testToken)
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

	msgs := f.messages()
	if len(msgs) != 5 {
		t.Fatalf("fake got %d effects, want 5: %+v", len(msgs), msgs)
	}
	if m := msgs[0]; m.Text != text || m.Channel != "C1" || m.Thread != "" {
		t.Errorf("post: %+v (text must arrive unescaped: it is mrkdwn already)", m)
	}
	if m := msgs[1]; m.Thread != ts {
		t.Errorf("thread reply: %+v, want thread %s", m, ts)
	}
	if m := msgs[2]; m.Method != "chat.update" || m.TS != ts || m.Text != "edited" {
		t.Errorf("update: %+v", m)
	}
	if m := msgs[3]; m.Method != "chat.postEphemeral" || m.User != "U1" {
		t.Errorf("ephemeral: %+v", m)
	}
	if m := msgs[4]; m.Thread != ts || m.Text != "full output" || sha256.Sum256(m.File) != sha256.Sum256(data) {
		t.Errorf("upload: thread %q comment %q, %d bytes (want %d, same hash)", m.Thread, m.Text, len(m.File), len(data))
	}
	if c := f.callsTo("chat.postMessage")[0]; c.Form["unfurl_links"] != "false" || !c.Auth {
		t.Errorf("post form %v auth %v", c.Form, c.Auth)
	}
	if c := f.callsTo("files.getUploadURLExternal")[0]; c.Form["length"] != "5242880" || c.Form["filename"] != "output.txt" {
		t.Errorf("getUploadURLExternal form %v", c.Form)
	}
}

// Every failure is classified once, by whether Slack could have acted, and its text never
// carries the token.
func TestSlackClassifiesErrors(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		fault fault
		class Class
		code  string
		hint  string
	}{
		{"rate limit", fault{status: 429, retryAfter: "7"}, Retryable, "rate_limited", ""},
		{"server error", fault{status: 500}, Retryable, "http_500", ""},
		{"bad gateway", fault{status: 502}, Retryable, "http_502", ""},
		{"not in channel", fault{slackErr: "not_in_channel"}, Permanent, "not_in_channel", "invite the bot"},
		{"channel not found", fault{slackErr: "channel_not_found"}, Permanent, "channel_not_found", "private channel"},
		{"invalid auth", fault{slackErr: "invalid_auth"}, Permanent, "invalid_auth", "token"},
		{"too long", fault{slackErr: "msg_too_long"}, Permanent, "msg_too_long", "inline_limit"},
		{"ratelimited code", fault{slackErr: "ratelimited"}, Retryable, "ratelimited", ""},
		{"internal error", fault{slackErr: "internal_error"}, Uncertain, "internal_error", ""},
		{"echoed token", fault{slackErr: "bad token " + testToken}, Permanent, "", ""},
		{"slow", fault{delay: 2 * time.Second}, Uncertain, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSlack(t, testToken)
			f.fail("chat.postMessage", tt.fault)
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
			if tt.fault.retryAfter == "7" && e.RetryAfter != 7*time.Second {
				t.Errorf("RetryAfter %v, want 7s", e.RetryAfter)
			}
			if strings.Contains(e.Error(), testToken) || strings.Contains(e.Error(), "S3CR3T") {
				t.Errorf("error text leaks the token: %q", e.Error())
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		f := newFakeSlack(t, testToken)
		p := newPoster(t, f)
		f.down()
		_, err := p.PostMessage(ctx, "C1", "", "hi")
		e := Classify(err)
		if e.Class != Retryable || !strings.Contains(e.Error(), "Slack unreachable") || strings.Contains(e.Error(), testToken) {
			t.Errorf("refused: %v %v", e.Class, e)
		}
	})
}

// The upload URL must be on the API host: slack-go sends the token there.
func TestSlackUploadRefusesForeignHost(t *testing.T) {
	f := newFakeSlack(t, testToken)
	other := newFakeSlack(t, testToken)
	f.mu.Lock()
	f.uploadHost = other.addr
	f.mu.Unlock()
	err := newPoster(t, f).UploadFile(context.Background(),
		FileUpload{Channel: "C1", Filename: "a.txt", Size: 1, Content: strings.NewReader("x")})
	e := Classify(err)
	if e.Class != Permanent || !strings.Contains(e.Hint, "api_url") {
		t.Errorf("foreign upload host: class %v hint %q err %v", e.Class, e.Hint, e)
	}
	if len(other.callsTo("files.upload")) != 0 {
		t.Error("the file (and token) went to a host other than the API URL's")
	}
}
