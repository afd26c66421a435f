package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mattermost is the Poster for Mattermost's REST API v4, with net/http (Mattermost's Go
// client is not served by the module proxy). Like Slack it does no retrying of its own:
// every failure is classified (see classify) and the outbox decides.
//
// The calls: POST /posts (root_id for a thread reply), PUT /posts/{id}/patch (edits),
// POST /files then POST /posts with file_ids (uploads), POST /posts/ephemeral for a denial,
// falling back to a direct message (POST /channels/direct) when the bot may not post
// ephemeral messages, which needs a permission most bot accounts lack.
type Mattermost struct {
	base   string // ".../api/v4"
	token  string
	client *http.Client

	mu    sync.Mutex
	botID string
	names map[string]string // user id → username, looked up once per process
}

// NewMattermost returns a Poster for the bot account's access token on the Mattermost
// server at serverURL (config mattermost.url, e.g. "https://chat.example.com").
func NewMattermost(token, serverURL string, opts ...SlackOption) (*Mattermost, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, errors.New("mattermost: no bot token")
	}
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mattermost: url %q is not an http(s) URL", serverURL)
	}
	o := slackOptions{client: &http.Client{}}
	for _, opt := range opts {
		opt(&o)
	}
	// A redirect would carry the bearer token to wherever it points: report it instead.
	client := *o.client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	base := strings.TrimSuffix(strings.TrimRight(serverURL, "/"), "/api/v4") + "/api/v4"
	return &Mattermost{base: base, token: token, client: &client, names: map[string]string{}}, nil
}

// Error.Method for Mattermost is "mattermost." and the call's name ("mattermost.posts.create"):
// a log, a report and the rate-limit metric tell it from a Slack Web API method.

// mmPost is the part of Mattermost's Post model the executor writes and reads.
type mmPost struct {
	ID        string   `json:"id,omitempty"`
	ChannelID string   `json:"channel_id,omitempty"`
	RootID    string   `json:"root_id,omitempty"`
	Message   string   `json:"message"`
	FileIDs   []string `json:"file_ids,omitempty"`
	UserID    string   `json:"user_id,omitempty"`
	CreateAt  int64    `json:"create_at,omitempty"`
	DeleteAt  int64    `json:"delete_at,omitempty"`
}

// PostMessage implements Poster: POST /api/v4/posts, threaded with root_id.
func (m *Mattermost) PostMessage(ctx context.Context, channel, threadTS, text string) (string, error) {
	var p mmPost
	err := m.call(ctx, "POST", "/posts", "mattermost.posts.create", mmPost{ChannelID: channel, RootID: threadTS, Message: text}, &p)
	if err != nil {
		return "", err
	}
	return p.ID, nil
}

// UpdateMessage implements Poster: PUT /api/v4/posts/{id}/patch, which changes only the
// message and so may be repeated.
func (m *Mattermost) UpdateMessage(ctx context.Context, channel, ts, text string) error {
	if !mattermostChannelRe.MatchString(ts) {
		return errorf("mattermost.posts.patch", Permanent, "post id %q is not a Mattermost id", ts)
	}
	return m.call(ctx, "PUT", "/posts/"+ts+"/patch", "mattermost.posts.patch", map[string]string{"message": text}, nil)
}

// EphemeralRefused is how the outbox learns that PostEphemeral fell back to a direct
// message; see EphemeralNoter.
const EphemeralRefused = "the bot may not post ephemeral messages (it lacks the create_post_ephemeral permission): sent to the requester as a direct message instead"

// PostEphemeral implements Poster. It is PostEphemeralNote without the note.
func (m *Mattermost) PostEphemeral(ctx context.Context, channel, user, text string) error {
	_, err := m.PostEphemeralNote(ctx, channel, user, text)
	return err
}

// PostEphemeralNote implements EphemeralNoter: POST /api/v4/posts/ephemeral, and when
// Mattermost refuses it (403: the permission is a system admin's by default) a direct
// message to user from the bot, whose text then says why it came that way. The note says
// which was used. A refused ephemeral post showed nothing, so the fallback cannot make a
// duplicate.
func (m *Mattermost) PostEphemeralNote(ctx context.Context, channel, user, text string) (string, error) {
	if !mattermostChannelRe.MatchString(user) {
		return "", errorf("mattermost.posts.ephemeral", Permanent, "user id %q is not a Mattermost id", user)
	}
	body := map[string]any{"user_id": user, "post": mmPost{ChannelID: channel, Message: text}}
	err := m.call(ctx, "POST", "/posts/ephemeral", "mattermost.posts.ephemeral", body, nil)
	var e *Error
	if err == nil || !errors.As(err, &e) || e.Code != "http_403" {
		return "", err
	}
	bot, err := m.me(ctx)
	if err != nil {
		return "", notShared(err)
	}
	var dm struct {
		ID string `json:"id"`
	}
	// Creating the direct channel returns the existing one: safe to repeat.
	if err := m.call(ctx, "POST", "/channels/direct", "mattermost.channels.direct", []string{bot, user}, &dm); err != nil {
		return "", notShared(err)
	}
	dmText := text + "\n\n_(Sent as a direct message: this bot may not post messages only you can see in that channel.)_"
	if err := m.call(ctx, "POST", "/posts", "mattermost.posts.create", mmPost{ChannelID: dm.ID, Message: dmText}, nil); err != nil {
		return "", err
	}
	return EphemeralRefused, nil
}

// me is the bot's own user id, from GET /api/v4/users/me, asked once.
func (m *Mattermost) me(ctx context.Context) (string, error) {
	m.mu.Lock()
	id := m.botID
	m.mu.Unlock()
	if id != "" {
		return id, nil
	}
	u, err := m.Me(ctx)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	m.botID = u.ID
	m.mu.Unlock()
	return u.ID, nil
}

// MattermostUser is the part of Mattermost's User model the executor reads.
type MattermostUser struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	IsBot    bool   `json:"is_bot"`
}

// Me returns the account the token belongs to (GET /api/v4/users/me): check --online uses
// it to tell a valid token from a revoked one.
func (m *Mattermost) Me(ctx context.Context) (MattermostUser, error) {
	var u MattermostUser
	err := m.call(ctx, "GET", "/users/me", "mattermost.users.me", nil, &u)
	if err == nil && !mattermostChannelRe.MatchString(u.ID) {
		err = errorf("mattermost.users.me", Permanent, "the server named no valid user id for the token")
	}
	return u, err
}

// usernameRe is what Mattermost allows in a username: a name outside it could be markup.
var usernameRe = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)

// Username returns the username of user id (GET /api/v4/users/{id}), for the reply's
// @mention. It is looked up once per process and checked against Mattermost's own rules
// for usernames, so it can be written after an @ as it is.
func (m *Mattermost) Username(ctx context.Context, id string) (string, error) {
	if !mattermostChannelRe.MatchString(id) {
		return "", errorf("mattermost.users.get", Permanent, "user id %q is not a Mattermost id", id)
	}
	m.mu.Lock()
	name, ok := m.names[id]
	m.mu.Unlock()
	if ok {
		return name, nil
	}
	var u MattermostUser
	if err := m.call(ctx, "GET", "/users/"+id, "mattermost.users.get", nil, &u); err != nil {
		return "", err
	}
	if !usernameRe.MatchString(u.Username) {
		return "", errorf("mattermost.users.get", Permanent, "the server gave user %s a username that is not one: %q", id, u.Username)
	}
	m.mu.Lock()
	m.names[id] = u.Username
	m.mu.Unlock()
	return u.Username, nil
}

// ChannelMember reports whether the bot is a member of channel
// (GET /api/v4/channels/{id}/members/me): check --online asks it for every channel the
// policy names. A 404 means not a member, or no such channel the bot can see.
func (m *Mattermost) ChannelMember(ctx context.Context, channel string) (bool, error) {
	if !mattermostChannelRe.MatchString(channel) {
		return false, errorf("mattermost.channels.members.me", Permanent, "channel id %q is not a Mattermost id", channel)
	}
	err := m.call(ctx, "GET", "/channels/"+channel+"/members/me", "mattermost.channels.members.me", nil, nil)
	var e *Error
	if errors.As(err, &e) && e.Code == "http_404" {
		return false, nil
	}
	return err == nil, err
}

// UploadFile implements Poster: POST /api/v4/files (multipart, into the channel), then a
// post with its file_ids. The uploaded file is invisible until the post, so any failure of
// the first call may be repeated.
func (m *Mattermost) UploadFile(ctx context.Context, f FileUpload) error {
	if f.Filename == "" {
		return errorf("mattermost.files.upload", Permanent, "file upload needs a file name")
	}
	if f.Size <= 0 {
		return errorf("mattermost.files.upload", Permanent, "file upload of an empty file")
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := mw.WriteField("channel_id", f.Channel)
		if err == nil {
			var w io.Writer
			if w, err = mw.CreateFormFile("files", f.Filename); err == nil {
				_, err = io.Copy(w, io.LimitReader(f.Content, f.Size))
			}
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	var up struct {
		FileInfos []struct {
			ID string `json:"id"`
		} `json:"file_infos"`
	}
	err := m.do(ctx, "POST", "/files", "mattermost.files.upload", mw.FormDataContentType(), pr, &up)
	pr.Close()
	var e *Error
	if errors.As(err, &e) && e.Code == "http_413" && f.Comment != "" {
		// Larger than the server takes (its Maximum File Size): the preview still goes,
		// saying why the file does not. Nothing was posted, so this cannot duplicate.
		text := f.Comment + fmt.Sprintf("\n_(The whole output is not attached: at %d bytes it is larger than this Mattermost server accepts as a file.)_", f.Size)
		return m.call(ctx, "POST", "/posts", "mattermost.posts.create", mmPost{ChannelID: f.Channel, RootID: f.ThreadTS, Message: text}, nil)
	}
	if err != nil {
		return notShared(err)
	}
	if len(up.FileInfos) != 1 || up.FileInfos[0].ID == "" {
		return notShared(errorf("mattermost.files.upload", Uncertain, "the server named %d files for one upload", len(up.FileInfos)))
	}
	text := f.Comment
	if text == "" {
		text = f.Title
	}
	return m.call(ctx, "POST", "/posts", "mattermost.posts.create",
		mmPost{ChannelID: f.Channel, RootID: f.ThreadTS, Message: text, FileIDs: []string{up.FileInfos[0].ID}}, nil)
}

// FindPost implements Finder: the bot's posts in channel since since (GET
// /api/v4/channels/{id}/posts?since=), or in the thread of threadTS (GET
// /api/v4/posts/{id}/thread).
func (m *Mattermost) FindPost(ctx context.Context, channel, threadTS, text string, since time.Time) (string, bool, error) {
	// Both go into a URL path that carries the token: only ids.
	if !mattermostChannelRe.MatchString(channel) || threadTS != "" && !mattermostChannelRe.MatchString(threadTS) {
		return "", false, errorf("mattermost.posts.since", Permanent, "channel %q or post %q is not a Mattermost id", channel, threadTS)
	}
	bot, err := m.me(ctx)
	if err != nil {
		return "", false, err
	}
	var list struct {
		Order []string          `json:"order"`
		Posts map[string]mmPost `json:"posts"`
	}
	path := "/channels/" + channel + "/posts?since=" + strconv.FormatInt(since.Add(-time.Minute).UnixMilli(), 10)
	method := "mattermost.posts.since"
	if threadTS != "" {
		path, method = "/posts/"+threadTS+"/thread", "mattermost.posts.thread"
	}
	if err := m.call(ctx, "GET", path, method, nil, &list); err != nil {
		return "", false, err
	}
	if len(list.Posts) >= findLimit {
		return "", false, fmt.Errorf("%s: more than %d posts since the post: cannot tell", method, findLimit)
	}
	for id, p := range list.Posts {
		if p.Message == text && p.UserID == bot && p.DeleteAt == 0 && id != threadTS {
			return id, true, nil
		}
	}
	return "", false, nil
}

// call sends body as JSON (none when nil) and decodes the answer into out (when not nil).
func (m *Mattermost) call(ctx context.Context, verb, path, method string, body, out any) error {
	var r io.Reader
	ctype := ""
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return errorf(method, Permanent, "encode request: %v", err)
		}
		r, ctype = bytes.NewReader(data), "application/json"
	}
	return m.do(ctx, verb, path, method, ctype, r, out)
}

// maxAnswer bounds what is read of an answer: Mattermost's are small JSON objects.
const maxAnswer = 4 << 20

// do makes one request with the bearer token and classifies its failure.
func (m *Mattermost) do(ctx context.Context, verb, path, method, ctype string, body io.Reader, out any) error {
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	})
	req, err := http.NewRequestWithContext(ctx, verb, m.base+path, body)
	if err != nil {
		return errorf(method, Permanent, "%s", m.scrub(err.Error()))
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	req.Header.Set("Accept", "application/json")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return m.netError(method, err, wrote.Load())
	}
	defer resp.Body.Close()
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if rerr != nil {
			return m.netError(method, rerr, true)
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			// It answered success and we cannot read what: it acted.
			e := errorf(method, Uncertain, "unreadable answer from Mattermost: %v", err)
			return e
		}
		return nil
	}
	return m.statusError(method, resp, data)
}

// mmHints are what an admin can do about Mattermost's answers, by status.
var mmHints = map[int]string{
	http.StatusUnauthorized:          "the bot's access token is not valid: check mattermost.token_file (System Console > Integrations > Bot Accounts)",
	http.StatusForbidden:             "the bot may not do this: add it to the channel (/invite @bot) or give it the permission, then run 'chatops-executor flush --retry-failed'",
	http.StatusNotFound:              "the channel or post does not exist, or the bot cannot see it (add the bot to the channel)",
	http.StatusRequestEntityTooLarge: "the file is larger than the server accepts (System Console > Environment > File Storage > Maximum File Size)",
}

// statusError classifies an answer that is not a success. Mattermost answers with its
// AppError: {"id": "...", "message": "...", "status_code": N}.
func (m *Mattermost) statusError(method string, resp *http.Response, data []byte) *Error {
	var ae struct {
		ID      string `json:"id"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(data, &ae)
	e := &Error{Method: method, Code: fmt.Sprintf("http_%d", resp.StatusCode), Hint: mmHints[resp.StatusCode]}
	e.msg = "Mattermost answered " + resp.Status
	if ae.ID != "" {
		e.msg += " (" + oneLineText(ae.ID, 100) + ": " + oneLineText(ae.Message, 300) + ")"
	}
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests:
		// X-RateLimit-Reset is the number of seconds until the limit resets.
		e.Code, e.Class = "rate_limited", Retryable
		e.RetryAfter = time.Second
		if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("X-RateLimit-Reset"))); err == nil && s > 0 {
			e.RetryAfter = time.Duration(min(s, 3600)) * time.Second
		} else if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s > 0 {
			e.RetryAfter = time.Duration(min(s, 3600)) * time.Second
		}
		e.msg = fmt.Sprintf("rate limited by Mattermost, retry after %s", e.RetryAfter)
	case code >= 300 && code < 400:
		e.Class = Permanent
		e.Hint = "Mattermost answered with a redirect, which is never followed (it would carry the bot token elsewhere): check mattermost.url"
	case code >= 500:
		// As with Slack (see the package doc): a server error status is taken at its word.
		e.Class = Retryable
	default:
		e.Class = Permanent
	}
	e.msg, e.Code = m.scrub(e.msg), m.scrub(e.Code)
	return e
}

// netError classifies a failure without an answer, by whether the request was written in
// full: one that was not cannot have been acted on.
func (m *Mattermost) netError(method string, err error, sent bool) *Error {
	e := &Error{Method: method, cause: err, msg: m.scrub(err.Error())}
	switch {
	case !sent:
		e.Class = Retryable
		e.msg = "Mattermost unreachable: " + e.msg
	case isTimeout(err):
		e.Class = Uncertain
		e.msg = "no answer from Mattermost in time: " + e.msg
	default:
		e.Class = Uncertain
	}
	return e
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &t) && t.Timeout())
}

// scrub removes the token from s: Mattermost tokens have no recognisable shape, so only the
// token itself can be looked for.
func (m *Mattermost) scrub(s string) string { return scrub(s, m.token) }

func oneLineText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
