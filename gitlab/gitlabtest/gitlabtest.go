// Package gitlabtest is a fake GitLab API for tests: it answers the calls package gitlab
// makes from tables the test fills in, checks tokens the way GitLab does, and records every
// request so a test can assert what was (or was never) asked.
package gitlabtest

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chatops-executor/chatops-executor/gitlab"
)

// Request is one request the fake received.
type Request struct {
	Method string
	// Path is the escaped path and query as sent, e.g.
	// /api/v4/groups/ops%2Fsre/members/all/7.
	Path         string
	JobToken     string
	PrivateToken string
}

// Server is a fake GitLab on 127.0.0.1. Fill its tables before the code under test runs;
// set Handler to answer every request yourself (a 500, a slow answer, garbage).
type Server struct {
	*httptest.Server

	// Jobs maps a job token to the job GET /api/v4/job answers with, while it runs: as
	// GitLab does, a token of a job whose Status is no longer running or canceling ("" is
	// running) is answered 401. GET /api/v4/projects/:id/jobs/:job_id answers, to
	// PrivateToken, the job of that ID whose Pipeline.ProjectID is :id, whatever its Status.
	Jobs map[string]gitlab.Job
	// PrivateToken is the read_api token the members and users APIs accept.
	PrivateToken string
	// Groups and Projects map a group or project (full path or id, as requested) to user
	// id to access level. A missing user answers 404 "Not found", as GitLab does for
	// non-members; a missing group or project 404 "Group Not Found"/"Project Not Found".
	Groups, Projects map[string]map[int64]int
	// Users are the users the users API knows.
	Users []gitlab.User
	// Version is what GET /api/v4/version answers, to PrivateToken only (GitLab wants a
	// token for it, with the api or read_api scope when Token names its scopes: 403
	// insufficient_scope otherwise); "" answers 404, as a server that is not GitLab would.
	Version string
	// Token is what GET /api/v4/personal_access_tokens/self says of PrivateToken; nil
	// answers 404, as GitLab before 15.5 does.
	Token *gitlab.Token
	// Handler, when set, answers every request instead.
	Handler http.HandlerFunc

	mu       sync.Mutex
	requests []Request
}

// New starts a fake GitLab that is closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{Jobs: map[string]gitlab.Job{}, Groups: map[string]map[int64]int{}, Projects: map[string]map[int64]int{},
		Version: "17.5.2"}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// SetJob sets what both job APIs answer for token while the fake serves: a job whose
// status changes under a running test (a job GitLab aborts). Before the code under test
// runs, Jobs may be filled directly.
func (s *Server) SetJob(token string, j gitlab.Job) {
	s.mu.Lock()
	s.Jobs[token] = j
	s.mu.Unlock()
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Method: r.Method, Path: r.URL.RequestURI(),
		JobToken: r.Header.Get("JOB-TOKEN"), PrivateToken: r.Header.Get("PRIVATE-TOKEN"),
	})
	handler := s.Handler
	jobs := maps.Clone(s.Jobs)
	s.mu.Unlock()
	if handler != nil {
		handler(w, r)
		return
	}
	if r.Method != http.MethodGet {
		reply(w, http.StatusMethodNotAllowed, map[string]string{"message": "405 Method Not Allowed"})
		return
	}
	var parts []string
	for _, p := range strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/api/v4/"), "/") {
		u, err := url.PathUnescape(p)
		if err != nil {
			reply(w, http.StatusBadRequest, map[string]string{"message": "bad path"})
			return
		}
		parts = append(parts, u)
	}
	if len(parts) == 1 && parts[0] == "job" {
		j, ok := jobs[r.Header.Get("JOB-TOKEN")]
		if !ok || (j.Status != "" && j.Status != "running" && j.Status != "canceling") {
			reply(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
			return
		}
		reply(w, http.StatusOK, j)
		return
	}
	if s.PrivateToken == "" || r.Header.Get("PRIVATE-TOKEN") != s.PrivateToken {
		reply(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	switch {
	case len(parts) == 1 && parts[0] == "version" && s.Version != "":
		if s.Token != nil && !slices.Contains(s.Token.Scopes, "read_api") && !slices.Contains(s.Token.Scopes, "api") {
			// As GitLab answers a token without an API scope.
			reply(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope",
				"error_description": "The request requires higher privileges than provided by the access token.", "scope": "api read_api"})
			return
		}
		reply(w, http.StatusOK, map[string]any{"version": s.Version, "revision": "0123abcd", "kas": map[string]any{"enabled": false}})
	case len(parts) == 4 && parts[0] == "projects" && parts[2] == "jobs":
		if j, ok := projectJob(jobs, parts[1], parts[3]); ok {
			reply(w, http.StatusOK, j)
			return
		}
		reply(w, http.StatusNotFound, map[string]string{"message": "404 Not found"})
	case len(parts) == 2 && parts[0] == "personal_access_tokens" && parts[1] == "self" && s.Token != nil:
		reply(w, http.StatusOK, s.Token)
	case len(parts) == 2 && (parts[0] == "groups" || parts[0] == "projects"):
		table, what := s.Groups, "Group"
		if parts[0] == "projects" {
			table, what = s.Projects, "Project"
		}
		if _, ok := table[parts[1]]; !ok {
			reply(w, http.StatusNotFound, map[string]string{"message": "404 " + what + " Not Found"})
			return
		}
		reply(w, http.StatusOK, map[string]any{"id": 1, "full_path": parts[1]})
	case len(parts) == 5 && (parts[0] == "groups" || parts[0] == "projects") && parts[2] == "members" && parts[3] == "all":
		table := s.Groups
		if parts[0] == "projects" {
			table = s.Projects
		}
		uid, _ := strconv.ParseInt(parts[4], 10, 64)
		members, ok := table[parts[1]]
		if !ok {
			what := "Group"
			if parts[0] == "projects" {
				what = "Project"
			}
			reply(w, http.StatusNotFound, map[string]string{"message": "404 " + what + " Not Found"})
			return
		}
		level, ok := members[uid]
		if !ok {
			reply(w, http.StatusNotFound, map[string]string{"message": "404 Not found"})
			return
		}
		reply(w, http.StatusOK, map[string]any{"id": uid, "username": s.username(uid), "access_level": level, "state": "active"})
	case len(parts) == 1 && parts[0] == "users":
		out := []gitlab.User{}
		for _, u := range s.Users {
			if strings.EqualFold(u.Username, r.URL.Query().Get("username")) {
				out = append(out, u)
			}
		}
		reply(w, http.StatusOK, out)
	case len(parts) == 2 && parts[0] == "users":
		uid, _ := strconv.ParseInt(parts[1], 10, 64)
		for _, u := range s.Users {
			if u.ID == uid {
				reply(w, http.StatusOK, u)
				return
			}
		}
		reply(w, http.StatusNotFound, map[string]string{"message": "404 User Not Found"})
	default:
		reply(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
	}
}

// projectJob finds job jobID of project projectID (a numeric id) in jobs.
func projectJob(jobs map[string]gitlab.Job, projectID, jobID string) (gitlab.Job, bool) {
	for _, j := range jobs {
		if strconv.FormatInt(j.ID, 10) == jobID && strconv.FormatInt(j.Pipeline.ProjectID, 10) == projectID {
			if j.Status == "" {
				j.Status = "running"
			}
			return j, true
		}
	}
	return gitlab.Job{}, false
}

func (s *Server) username(id int64) string {
	for _, u := range s.Users {
		if u.ID == id {
			return u.Username
		}
	}
	return ""
}

func reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body) //nolint:errcheck // the client notices a short body
}
