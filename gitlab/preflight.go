package gitlab

import (
	"context"
	"errors"
	"net/url"
)

// The calls below serve `chatops-executor check --online`: is gitlab.url a GitLab, which
// version, and what may the token in gitlab.token_file do.

// Version is GitLab's answer to GET /api/v4/version.
type Version struct {
	Version  string `json:"version"`
	Revision string `json:"revision"`
}

// Token is GitLab's description of an access token, from GET
// /api/v4/personal_access_tokens/self (GitLab 15.5 and later; project and group access
// tokens answer too).
type Token struct {
	ID        int64    `json:"id"`
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	Active    bool     `json:"active"`
	Revoked   bool     `json:"revoked"`
	ExpiresAt string   `json:"expires_at"` // YYYY-MM-DD, "" for never
	UserID    int64    `json:"user_id"`
}

// Version asks GitLab its version, with the read_api token when the client has one. GitLab
// answers 401 without a token: the *Error then has StatusCode 401, which still proves that
// something answering like GitLab is at the URL.
func (c *Client) Version(ctx context.Context) (Version, error) {
	var v Version
	header := ""
	if c.token != "" {
		header = "PRIVATE-TOKEN"
	}
	if err := c.get(ctx, "/api/v4/version", header, c.token, &v, false); err != nil {
		return Version{}, err
	}
	if v.Version == "" {
		return Version{}, &Error{Method: "GET", Path: "/api/v4/version", StatusCode: 200, Msg: `the answer has no "version": is gitlab.url really a GitLab?`}
	}
	return v, nil
}

// TokenSelf describes the client's own token. A GitLab too old to have the API answers
// with an *Error wrapping ErrNotFound.
func (c *Client) TokenSelf(ctx context.Context) (Token, error) {
	const path = "/api/v4/personal_access_tokens/self"
	var t Token
	err := c.get(ctx, path, "PRIVATE-TOKEN", c.token, &t, true)
	if errors.Is(err, ErrNotFound) {
		return Token{}, &Error{Method: "GET", Path: path, StatusCode: 404, Msg: "GitLab does not describe tokens (before 15.5)", Err: ErrNotFound}
	}
	return t, err
}

// CanSee reports whether the client's token can see a group or project (kind "groups" or
// "projects", id a full path or numeric id): false, nil when GitLab says it has none.
func (c *Client) CanSee(ctx context.Context, kind, id string) (bool, error) {
	var v struct {
		ID int64 `json:"id"`
	}
	err := c.get(ctx, "/api/v4/"+kind+"/"+url.PathEscape(id), "PRIVATE-TOKEN", c.token, &v, true)
	var nf *notFound
	if errors.As(err, &nf) {
		return false, nil
	}
	return err == nil, err
}
