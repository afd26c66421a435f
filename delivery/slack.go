package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/slack-go/slack"
)

// Slack is the Poster for the Slack Web API, through slack-go. It does no retrying of its
// own (slack-go's retry client is left off): the outbox decides, because only it knows
// whether a call is safe to repeat and how much time is left.
type Slack struct {
	api   *slack.Client
	token string
}

// SlackOption adjusts NewSlack.
type SlackOption func(*slackOptions)

type slackOptions struct{ client *http.Client }

// WithHTTPClient sets the HTTP client (tests, proxies). Leave its Timeout at zero: the
// outbox gives every call a deadline through its context.
func WithHTTPClient(c *http.Client) SlackOption { return func(o *slackOptions) { o.client = c } }

// NewSlack returns a Poster for the bot token at the Web API base apiURL
// (config slack.api_url, e.g. "https://slack.com/api/"). A missing trailing slash is added:
// slack-go joins method names to the base by plain concatenation.
func NewSlack(token, apiURL string, opts ...SlackOption) (*Slack, error) {
	if strings.TrimSpace(token) == "" {
		return nil, errors.New("slack: no bot token")
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("slack: api_url %q is not an http(s) URL", apiURL)
	}
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	o := slackOptions{client: &http.Client{}}
	for _, opt := range opts {
		opt(&o)
	}
	// Go resends a POST's body (the form with the bot token) on a 307 or 308, to wherever
	// it points: a redirect is an answer to report, never to follow. The caller's client is
	// copied, not changed.
	client := *o.client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Slack{
		api:   slack.New(token, slack.OptionAPIURL(apiURL), slack.OptionHTTPClient(&client)),
		token: token,
	}, nil
}

// PostMessage implements Poster. Link unfurling is off: a job link would otherwise grow a
// GitLab preview card under every reply.
func (s *Slack) PostMessage(ctx context.Context, channel, threadTS, text string) (string, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionDisableLinkUnfurl()}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	var ts string
	err := s.call(ctx, "chat.postMessage", func(ctx context.Context) error {
		var err error
		_, ts, err = s.api.PostMessageContext(ctx, channel, opts...)
		return err
	})
	if err == nil && ts == "" {
		// Slack accepted the message but we cannot refer to it: later edits and thread
		// replies degrade to plain posts, which beats posting it again.
		return "", nil
	}
	return ts, err
}

// UpdateMessage implements Poster.
func (s *Slack) UpdateMessage(ctx context.Context, channel, ts, text string) error {
	return s.call(ctx, "chat.update", func(ctx context.Context) error {
		_, _, _, err := s.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(text, false))
		return err
	})
}

// PostEphemeral implements Poster.
func (s *Slack) PostEphemeral(ctx context.Context, channel, user, text string) error {
	return s.call(ctx, "chat.postEphemeral", func(ctx context.Context) error {
		_, err := s.api.PostEphemeralContext(ctx, channel, user, slack.MsgOptionText(text, false))
		return err
	})
}

// UploadFile implements Poster with the three calls slack-go's UploadFileContext makes
// (files.getUploadURLExternal, the upload itself, files.completeUploadExternal), made one by
// one so a failure can be classified by step: nothing is visible in the channel until the
// last call, so a failure in the first two is always safe to retry.
func (s *Slack) UploadFile(ctx context.Context, f FileUpload) error {
	if f.Filename == "" {
		return errorf("files.getUploadURLExternal", Permanent, "file upload needs a file name")
	}
	if f.Size <= 0 {
		return errorf("files.getUploadURLExternal", Permanent, "file upload of an empty file")
	}
	var u *slack.GetUploadURLExternalResponse
	err := s.call(ctx, "files.getUploadURLExternal", func(ctx context.Context) error {
		var err error
		u, err = s.api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{
			FileName: f.Filename, FileSize: int(f.Size),
		})
		return err
	})
	if err != nil {
		return notShared(err)
	}
	err = s.call(ctx, "files.upload", func(ctx context.Context) error {
		return s.api.UploadToURL(ctx, slack.UploadToURLParameters{
			UploadURL: u.UploadURL, Reader: f.Content, Filename: f.Filename,
		})
	})
	if err != nil {
		return notShared(err)
	}
	return s.call(ctx, "files.completeUploadExternal", func(ctx context.Context) error {
		_, err := s.api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{
			Files:           []slack.FileSummary{{ID: u.FileID, Title: f.Title}},
			Channel:         f.Channel,
			InitialComment:  f.Comment,
			ThreadTimestamp: f.ThreadTS,
		})
		return err
	})
}

// notShared upgrades an uncertain failure before files.completeUploadExternal to retryable:
// an uploaded but unshared file is invisible, so trying again cannot show the file twice.
func notShared(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Class == Uncertain {
		e.Class = Retryable
	}
	return err
}

// call runs fn with a trace that notes whether the request was written in full, and
// classifies its error. A request that was not fully written cannot have been acted on:
// Slack parses the whole form before doing anything.
func (s *Slack) call(ctx context.Context, method string, fn func(context.Context) error) error {
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	})
	err := fn(ctx)
	if err == nil {
		return nil
	}
	return s.classify(method, err, wrote.Load())
}

func (s *Slack) classify(method string, err error, sent bool) *Error {
	e := &Error{Method: method, cause: err, msg: scrub(err.Error(), s.token)}
	var rl *slack.RateLimitedError
	var sc slack.StatusCodeError
	var se slack.SlackErrorResponse
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &rl):
		e.Code, e.Class, e.RetryAfter = "rate_limited", Retryable, rl.RetryAfter
		e.msg = fmt.Sprintf("rate limited by Slack, retry after %s", rl.RetryAfter)
	case errors.As(err, &sc):
		e.Code = fmt.Sprintf("http_%d", sc.Code)
		if sc.Code >= 300 && sc.Code < 400 {
			e.Class = Permanent
			e.Hint = "Slack's API answered with a redirect, which is never followed (it would carry the bot token elsewhere): check slack.api_url"
		} else if sc.Code >= 500 || sc.Code == http.StatusTooManyRequests {
			// Slack answered with a server error status: it says it did not do it. Taken at
			// its word (SPEC: retry 5xx); see the package doc for what that costs.
			e.Class = Retryable
		} else {
			e.Class = Permanent
		}
		e.msg = "Slack answered " + scrub(sc.Status, s.token)
	case errors.As(err, &se):
		e.Code, e.Class, e.Hint = se.Err, codeClass(se.Err), hints[se.Err]
		e.msg = se.Err
		if se.Needed != "" {
			e.msg += " (needs scope " + se.Needed + ")"
		}
	case !sent:
		// Never fully written: connection refused, DNS, TLS, or the deadline hit first.
		e.Class = Retryable
		e.msg = "Slack unreachable: " + e.msg
	case errors.As(err, &oe) && oe.Op == "dial":
		e.Class = Retryable
		e.msg = "Slack unreachable: " + e.msg
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		e.Class = Uncertain
		e.msg = "no answer from Slack in time: " + e.msg
	default:
		// Sent in full, then a reset, EOF or an answer we cannot read: Slack may have acted.
		e.Class = Uncertain
	}
	if strings.Contains(e.msg, "refusing to send the token") {
		e.Class = Permanent
		e.Hint = "the upload URL is not on the API host: check slack.api_url"
	}
	// Last, over everything shown: Slack's own error text is not ours to trust either.
	e.msg, e.Code = scrub(e.msg, s.token), scrub(e.Code, s.token)
	return e
}
