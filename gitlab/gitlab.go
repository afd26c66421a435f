// Package gitlab is a small client for the few GitLab REST API calls the executor trusts:
// who started a job (GET /api/v4/job with the job's own token), how a job stands once it
// was stopped (the project jobs API with an admin's read_api token), a user's access level
// in a project or group (the members APIs, with that token), and user look-ups for
// `policy explain`.
//
// The base URL always comes from the executor's config, never from a job: CI_API_V4_URL and
// CI_SERVER_URL are ordinary job variables that a project, group or pipeline variable can
// point at an attacker's server, which would then vouch for any identity it likes.
//
// Every call is bounded in time (gitlab.timeout) and in the size of the answer, does not
// follow redirects (Go forwards custom headers such as JOB-TOKEN to the redirect target),
// and fails with an error that says what to do and never contains a token.
package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// MaxResponseSize bounds how much of an answer is read. The answers used here are a few
// hundred bytes; anything near this size is not GitLab answering the question asked.
const MaxResponseSize = 1 << 20

// Access levels GitLab reports in access_level.
const (
	NoAccess         = 0
	MinimalAccess    = 5
	GuestAccess      = 10
	PlannerAccess    = 15
	ReporterAccess   = 20
	DeveloperAccess  = 30
	MaintainerAccess = 40
	OwnerAccess      = 50
)

// User is a GitLab user as the API names it.
type User struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
}

// Pipeline is the pipeline a job belongs to.
type Pipeline struct {
	ID        int64  `json:"id"`
	Source    string `json:"source"`
	ProjectID int64  `json:"project_id"`
}

// Job is GitLab's answer to GET /api/v4/job (the job a job token belongs to) and to GET
// /api/v4/projects/:id/jobs/:job_id, with the user who started it. Unlike the job's
// variables, nothing in it can be set by the job.
type Job struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	// FailureReason is why GitLab failed the job (script_failure, stuck_or_timeout_failure,
	// runner_system_failure, …), for status failed only.
	FailureReason string   `json:"failure_reason,omitempty"`
	WebURL        string   `json:"web_url"`
	User          User     `json:"user"`
	Pipeline      Pipeline `json:"pipeline"`
}

// Error is a failed API call. Its message names the call and says what to do, and never
// contains a token; StatusCode lets callers tell an answer (401, 500) from no answer (0).
type Error struct {
	Method, Path string // the call, e.g. GET /api/v4/job (path without the base URL)
	StatusCode   int    // the HTTP status GitLab answered, 0 when there was no answer
	Msg          string
	Err          error // the underlying transport or decoding error, when there is one
}

func (e *Error) Error() string { return fmt.Sprintf("GitLab %s %s: %s", e.Method, e.Path, e.Msg) }

func (e *Error) Unwrap() error { return e.Err }

// ErrNotFound is returned (wrapped in an *Error) when a looked-up user does not exist.
var ErrNotFound = errors.New("not found")

// Client calls one trusted GitLab. The zero value is not usable; use New.
type Client struct {
	base    *url.URL
	token   string // read_api token for the members and users APIs; may be empty
	timeout time.Duration
	http    *http.Client
}

// New returns a client for the GitLab at baseURL (for example https://gitlab.example.com,
// or https://example.com/gitlab for a relative-URL install) whose calls each give up after
// timeout. token is the read_api token sent as PRIVATE-TOKEN to the members and users APIs;
// it may be empty when only the job API is needed.
func New(baseURL, token string, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("gitlab url %q: %w", baseURL, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("gitlab url %q: must be an http(s) URL with a host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("gitlab url %q: must not have a query or fragment", u.Redacted())
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("gitlab timeout must be positive, got %v", timeout)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = timeout
	return &Client{
		base:    u,
		token:   token,
		timeout: timeout,
		http: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			// Go forwards custom headers (JOB-TOKEN, PRIVATE-TOKEN) to wherever a redirect
			// points, so a redirect is reported, never followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// HasToken reports whether the client has a read_api token, without which the members and
// users APIs cannot be called.
func (c *Client) HasToken() bool { return c.token != "" }

// CurrentJob asks GitLab which job jobToken belongs to and who started it. The token is the
// runner's own (from JOB_RESPONSE_FILE); it stops working when the job ends.
func (c *Client) CurrentJob(ctx context.Context, jobToken string) (*Job, error) {
	const path = "/api/v4/job"
	if jobToken == "" {
		return nil, &Error{Method: "GET", Path: path, Msg: "no job token to ask with"}
	}
	var j Job
	if err := c.get(ctx, path, "JOB-TOKEN", jobToken, &j, false); err != nil {
		return nil, err
	}
	switch {
	case j.ID <= 0:
		return nil, &Error{Method: "GET", Path: path, StatusCode: http.StatusOK, Msg: `the answer has no job "id": is gitlab.url really a GitLab?`}
	case j.User.ID <= 0 || j.User.Username == "":
		return nil, &Error{Method: "GET", Path: path, StatusCode: http.StatusOK, Msg: `the answer names no "user" who started the job`}
	}
	return &j, nil
}

// ProjectJob asks GitLab, with the read_api token, how job jobID of project projectID
// stands now: its status (and failure_reason), whatever the job's own token still
// allows. A job token stops working as soon as GitLab no longer runs the job, so only this
// call can tell a job GitLab cancelled from one it failed.
func (c *Client) ProjectJob(ctx context.Context, projectID, jobID int64) (*Job, error) {
	path := "/api/v4/projects/" + strconv.FormatInt(projectID, 10) + "/jobs/" + strconv.FormatInt(jobID, 10)
	if projectID <= 0 || jobID <= 0 {
		return nil, &Error{Method: "GET", Path: path, Msg: "need a project id and a job id"}
	}
	var j Job
	if err := c.get(ctx, path, "PRIVATE-TOKEN", c.token, &j, false); err != nil {
		return nil, err
	}
	if j.ID != jobID || j.Status == "" {
		return nil, &Error{Method: "GET", Path: path, StatusCode: http.StatusOK,
			Msg: fmt.Sprintf(`the answer is not job %d with a "status": is gitlab.url really a GitLab?`, jobID)}
	}
	return &j, nil
}

// ProjectAccess returns user userID's access level in project (a numeric id or a full path
// such as "ops/infra"), inherited membership included. NoAccess (0) means not a member.
func (c *Client) ProjectAccess(ctx context.Context, project string, userID int64) (int, error) {
	return c.access(ctx, "projects", project, userID)
}

// GroupAccess returns user userID's access level in group (a numeric id or a full path such
// as "ops/sre"), inherited membership included. NoAccess (0) means not a member.
func (c *Client) GroupAccess(ctx context.Context, group string, userID int64) (int, error) {
	return c.access(ctx, "groups", group, userID)
}

func (c *Client) access(ctx context.Context, kind, id string, userID int64) (int, error) {
	path := "/api/v4/" + kind + "/" + url.PathEscape(id) + "/members/all/" + strconv.FormatInt(userID, 10)
	if id == "" || userID <= 0 {
		return 0, &Error{Method: "GET", Path: path, Msg: "need a " + strings.TrimSuffix(kind, "s") + " and a user id"}
	}
	var m struct {
		AccessLevel *int   `json:"access_level"`
		State       string `json:"state"`
	}
	err := c.get(ctx, path, "PRIVATE-TOKEN", c.token, &m, true)
	var nf *notFound
	if errors.As(err, &nf) {
		// GitLab answers 404 both for "not a member" ("404 Not found") and for a group or
		// project the token cannot see ("404 Group Not Found"). Only the first is an
		// answer; taking the second for one would let a typo in a deny rule's group, or
		// a token without access, quietly turn the rule off.
		if what := strings.ToLower(nf.message); strings.Contains(what, "group not found") || strings.Contains(what, "project not found") {
			return 0, &Error{Method: "GET", Path: path, StatusCode: http.StatusNotFound,
				Msg: fmt.Sprintf("GitLab has no %s %q that the token in gitlab.token_file can see (%s): check the name in the policy and the token's access", strings.TrimSuffix(kind, "s"), id, nf.message)}
		}
		return NoAccess, nil
	}
	if err != nil {
		return 0, err
	}
	if m.AccessLevel == nil {
		return 0, &Error{Method: "GET", Path: path, StatusCode: http.StatusOK, Msg: `the answer has no "access_level"`}
	}
	// A membership awaiting approval or a seat grants nothing yet.
	if m.State != "" && m.State != "active" {
		return NoAccess, nil
	}
	return *m.AccessLevel, nil
}

// UserByUsername looks a user up by username, for `policy explain --user NAME`. A user that
// does not exist is an *Error wrapping ErrNotFound.
func (c *Client) UserByUsername(ctx context.Context, username string) (User, error) {
	path := "/api/v4/users?username=" + url.QueryEscape(username)
	var users []User
	if err := c.get(ctx, path, "PRIVATE-TOKEN", c.token, &users, false); err != nil {
		return User{}, err
	}
	for _, u := range users {
		if strings.EqualFold(u.Username, username) && u.ID > 0 {
			return u, nil
		}
	}
	return User{}, &Error{Method: "GET", Path: path, StatusCode: http.StatusOK, Msg: fmt.Sprintf("no user %q", username), Err: ErrNotFound}
}

// UserByID looks a user up by numeric id, for `policy explain --user ID`. A user that does
// not exist is an *Error wrapping ErrNotFound.
func (c *Client) UserByID(ctx context.Context, id int64) (User, error) {
	path := "/api/v4/users/" + strconv.FormatInt(id, 10)
	var u User
	err := c.get(ctx, path, "PRIVATE-TOKEN", c.token, &u, true)
	if errors.Is(err, ErrNotFound) {
		return User{}, &Error{Method: "GET", Path: path, StatusCode: http.StatusNotFound, Msg: fmt.Sprintf("no user with id %d", id), Err: ErrNotFound}
	}
	if err != nil {
		return User{}, err
	}
	if u.ID <= 0 || u.Username == "" {
		return User{}, &Error{Method: "GET", Path: path, StatusCode: http.StatusOK, Msg: `the answer has no user "id" and "username"`}
	}
	return u, nil
}

// notFound is a 404 answer, with GitLab's message saying what was not found.
type notFound struct{ message string }

func (e *notFound) Error() string { return "not found: " + e.message }

func (e *notFound) Is(target error) bool { return target == ErrNotFound }

// get calls path with the token in header and decodes the JSON answer into out. With
// notFoundOK, a 404 is returned as a *notFound (which is ErrNotFound).
func (c *Client) get(ctx context.Context, path, header, token string, out any, notFoundOK bool) (err error) {
	apiErr := func(status int, cause error, format string, args ...any) error {
		return &Error{Method: "GET", Path: redactPath(path), StatusCode: status, Msg: fmt.Sprintf(format, args...), Err: cause}
	}
	// Whatever goes wrong, the message must not carry a token: Go's own errors quote URLs,
	// and a misbehaving server may echo what it was sent.
	defer func() {
		if err != nil && token != "" {
			var e *Error
			if errors.As(err, &e) {
				e.Msg = strings.ReplaceAll(e.Msg, token, "[MASKED]")
				if e.Err != nil && strings.Contains(e.Err.Error(), token) {
					e.Err = errors.New(strings.ReplaceAll(e.Err.Error(), token, "[MASKED]"))
				}
			}
		}
	}()
	if token == "" && header != "" {
		return apiErr(0, nil, "no token configured: set gitlab.token_file to a file holding a read_api token")
	}
	rel, err := url.Parse(path)
	if err != nil {
		return apiErr(0, err, "bad request path: %v", err)
	}
	u := *c.base
	u.Path = c.base.Path + rel.Path
	u.RawPath = c.base.EscapedPath() + rel.EscapedPath()
	u.RawQuery = rel.RawQuery
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return apiErr(0, err, "%v", err)
	}
	if header != "" { // "" asks without a token (GET /api/v4/version by check --online)
		req.Header.Set(header, token)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "chatops-executor")
	resp, err := c.http.Do(req)
	if err != nil {
		return apiErr(0, transportCause(err), "%s", c.describeTransport(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return apiErr(resp.StatusCode, transportCause(err), "reading the answer: %s", c.describeTransport(err))
	}
	if len(body) > MaxResponseSize {
		return apiErr(resp.StatusCode, nil, "the answer is larger than %d KiB: is gitlab.url really a GitLab?", MaxResponseSize>>10)
	}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
	case s == http.StatusNotFound && notFoundOK:
		msg := strings.TrimSuffix(strings.TrimPrefix(message("", body), " (GitLab says: "), ")")
		return &notFound{message: strings.ReplaceAll(msg, token, "[MASKED]")}
	case s >= 300 && s < 400:
		return apiErr(s, nil, "GitLab answered %s, redirecting to %q; redirects are not followed (they would carry the token): set gitlab.url to the address GitLab really serves", resp.Status, redactURL(resp.Header.Get("Location")))
	case s == http.StatusUnauthorized && header == "JOB-TOKEN":
		return apiErr(s, nil, "GitLab rejected the job token (%s): the job may have finished already, or gitlab.url is not the GitLab that sent this job%s", resp.Status, message(resp.Status, body))
	case s == http.StatusUnauthorized && header == "":
		return apiErr(s, nil, "GitLab answered %s: it wants a token for this%s", resp.Status, message(resp.Status, body))
	case s == http.StatusUnauthorized:
		return apiErr(s, nil, "GitLab rejected the token in gitlab.token_file (%s): it may be expired or revoked%s", resp.Status, message(resp.Status, body))
	case s == http.StatusForbidden:
		return apiErr(s, nil, "GitLab refused access (%s): the token lacks the read_api scope or access to this resource%s", resp.Status, message(resp.Status, body))
	case s == http.StatusNotFound:
		return apiErr(s, nil, "GitLab answered %s: is gitlab.url the GitLab base URL (without /api/v4)?%s", resp.Status, message(resp.Status, body))
	case s == http.StatusTooManyRequests:
		return apiErr(s, nil, "GitLab is rate-limiting requests (%s); try again later", resp.Status)
	case s >= 500:
		return apiErr(s, nil, "GitLab answered %s: it may be down or restarting; try again later%s", resp.Status, message(resp.Status, body))
	default:
		return apiErr(s, nil, "GitLab answered %s%s", resp.Status, message(resp.Status, body))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return apiErr(resp.StatusCode, err, "the answer is not the JSON GitLab sends (%v): is gitlab.url really a GitLab API?", err)
	}
	return nil
}

// describeTransport turns a failed request into words: no answer in time, no connection,
// or whatever the network said, without the URL Go's errors quote.
func (c *Client) describeTransport(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer from %s within %v (gitlab.timeout): GitLab is slow or unreachable", c.base.Host, c.timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("cannot connect to %s: connection refused; is GitLab down, or gitlab.url wrong?", c.base.Host)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Sprintf("cannot resolve %s: %v; check gitlab.url", c.base.Host, dnsErr.Err)
	}
	return fmt.Sprintf("cannot reach %s: %v", c.base.Host, transportCause(err))
}

// transportCause strips *url.Error, whose message repeats the request URL.
func transportCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// message returns GitLab's own explanation from an error body ({"message": …} or
// {"error": …}) as " (GitLab says: …)", short and on one line, or "" when there is none
// or it only repeats the status ("401 Unauthorized").
func message(status string, body []byte) string {
	var m struct {
		Message any    `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	s := m.Error
	if m.Message != nil {
		s = fmt.Sprint(m.Message)
	}
	s = strings.Join(strings.Fields(s), " ")
	if s == "" || strings.EqualFold(s, status) {
		return ""
	}
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return " (GitLab says: " + s + ")"
}

func redactPath(p string) string {
	if u, err := url.Parse(p); err == nil {
		return u.Redacted()
	}
	return p
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}
