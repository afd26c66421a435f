package mattermostrecorder

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The routes, and what each does to the server's channels as Mattermost would.

// appError answers as Mattermost does.
func appError(w http.ResponseWriter, status int, id, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "message": msg, "status_code": status})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// route names a request, and returns the id in its path when it has one.
func route(r *http.Request) (string, string) {
	p := strings.TrimPrefix(r.URL.Path, "/api/v4")
	parts := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case r.Method == "POST" && p == "/posts":
		return "posts.create", ""
	case r.Method == "POST" && p == "/posts/ephemeral":
		return "posts.ephemeral", ""
	case r.Method == "PUT" && len(parts) == 3 && parts[0] == "posts" && parts[2] == "patch":
		return "posts.patch", parts[1]
	case r.Method == "GET" && len(parts) == 3 && parts[0] == "posts" && parts[2] == "thread":
		return "posts.thread", parts[1]
	case r.Method == "POST" && p == "/channels/direct":
		return "channels.direct", ""
	case r.Method == "POST" && p == "/files":
		return "files.upload", ""
	case r.Method == "GET" && p == "/users/me":
		return "users.me", ""
	case r.Method == "GET" && len(parts) == 2 && parts[0] == "users":
		return "users.get", parts[1]
	case r.Method == "GET" && len(parts) == 4 && parts[0] == "channels" && parts[2] == "members" && parts[3] == "me":
		return "channels.members.me", parts[1]
	case r.Method == "GET" && len(parts) == 3 && parts[0] == "channels" && parts[2] == "posts":
		return "posts.since", parts[1]
	}
	return "", ""
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	name, id := route(r)
	token := r.Header.Get("Authorization") == "Bearer "+s.token
	var body []byte
	var upload *File
	if name == "files.upload" {
		f, err := s.readUpload(r)
		if err != nil {
			s.record(Call{Route: name, Verb: r.Method, Path: r.URL.RequestURI(), Token: token, Body: err.Error()})
			appError(w, http.StatusBadRequest, "api.file.upload_file.bad_parse.app_error", err.Error())
			return
		}
		upload = f
		body = []byte(fmt.Sprintf("channel_id=%s files=%s (%d bytes)", f.ChannelID, f.Name, len(f.Content)))
	} else {
		body, _ = io.ReadAll(io.LimitReader(r.Body, 1<<20))
	}
	s.record(Call{Route: name, Verb: r.Method, Path: r.URL.RequestURI(), Token: token, Body: string(body)})
	if name == "" {
		appError(w, http.StatusNotFound, "api.context.404.app_error", "Sorry, we could not find the page.")
		return
	}
	if !token {
		appError(w, http.StatusUnauthorized, "api.context.session_expired.app_error", "Invalid or expired session, please login again.")
		return
	}
	f := s.nextFault(name)
	if f.Status != 0 && !f.AfterEffect {
		s.fail(w, r, f)
		return
	}
	status, v := s.act(name, id, body, upload, r)
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if f.Status != 0 {
		s.fail(w, r, f)
		return
	}
	if e, ok := v.(appErr); ok {
		appError(w, status, e.id, e.msg)
		return
	}
	reply(w, status, v)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, f Fault) {
	if f.Status == http.StatusTooManyRequests {
		w.Header().Set("X-RateLimit-Limit", "10")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.Itoa(f.Reset))
		appError(w, f.Status, "api.context.rate_limit.app_error", "Too many requests")
		return
	}
	appError(w, f.Status, "api.fake.fault", "fault injected by the test")
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.At = time.Now()
	s.calls = append(s.calls, c)
}

func (s *Server) nextFault(route string) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range []string{route, "*"} {
		if q := s.faults[k]; len(q) > 0 {
			s.faults[k] = q[1:]
			return q[0]
		}
	}
	return Fault{}
}

func (s *Server) readUpload(r *http.Request) (*File, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, MaxFileSize+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, err
	}
	f := &File{ID: newID()}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(io.LimitReader(part, MaxFileSize+1))
		if err != nil {
			return nil, err
		}
		switch part.FormName() {
		case "channel_id":
			f.ChannelID = string(data)
		case "files":
			if f.Name != "" {
				return nil, errors.New("more than one file")
			}
			f.Name, f.Content = part.FileName(), data
		}
	}
	if f.Name == "" || f.ChannelID == "" {
		return nil, errors.New("channel_id and one file are required")
	}
	return f, nil
}

type appErr struct{ id, msg string }

// act does what the call asks, as Mattermost would, and returns the answer.
func (s *Server) act(name, id string, body []byte, upload *File, r *http.Request) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = max(s.clock+1, time.Now().UnixMilli())
	switch name {
	case "users.me":
		return 200, map[string]any{"id": BotID, "username": BotName, "is_bot": true}
	case "users.get":
		u, ok := s.users[id]
		if !ok {
			return 404, appErr{"app.user.missing_account.const", "Unable to find the user."}
		}
		return 200, map[string]any{"id": id, "username": u}
	case "channels.members.me":
		if !s.members[id][BotID] {
			return 404, appErr{"app.channel.get_member.missing.app_error", "No channel member found for that user ID and channel ID."}
		}
		return 200, map[string]any{"channel_id": id, "user_id": BotID}
	case "channels.direct":
		var ids []string
		if err := json.Unmarshal(body, &ids); err != nil || len(ids) != 2 {
			return 400, appErr{"api.context.invalid_body_param.app_error", "Invalid or missing user_ids in request body."}
		}
		if ids[0] != BotID && ids[1] != BotID {
			return 403, appErr{"api.context.permissions.app_error", "You do not have the appropriate permissions."}
		}
		other := ids[0]
		if other == BotID {
			other = ids[1]
		}
		if _, ok := s.users[other]; !ok {
			return 400, appErr{"api.channel.create_direct_channel.invalid_user.app_error", "Invalid user ID for direct channel creation."}
		}
		ch := DirectChannel(other)
		s.members[ch] = map[string]bool{BotID: true, other: true}
		return 201, map[string]any{"id": ch, "type": "D"}
	case "files.upload":
		if !s.members[upload.ChannelID][BotID] {
			return 403, appErr{"api.context.permissions.app_error", "You do not have the appropriate permissions."}
		}
		if limit := s.maxFileSize; len(upload.Content) > MaxFileSize || limit > 0 && len(upload.Content) > limit {
			return 413, appErr{"api.file.upload_file.too_large_detailed.app_error", "Unable to upload file. File is too large."}
		}
		s.files[upload.ID] = upload
		return 201, map[string]any{"file_infos": []map[string]any{{"id": upload.ID, "name": upload.Name, "size": len(upload.Content)}}}
	case "posts.create", "posts.ephemeral":
		var p struct {
			ChannelID string   `json:"channel_id"`
			RootID    string   `json:"root_id"`
			Message   string   `json:"message"`
			FileIDs   []string `json:"file_ids"`
		}
		var eph struct {
			UserID string          `json:"user_id"`
			Post   json.RawMessage `json:"post"`
		}
		raw := body
		if name == "posts.ephemeral" {
			if !s.allowEphemeral {
				return 403, appErr{"api.context.permissions.app_error", "You do not have the appropriate permissions."}
			}
			if err := json.Unmarshal(body, &eph); err != nil || eph.UserID == "" {
				return 400, appErr{"api.context.invalid_body_param.app_error", "Invalid or missing user_id in request body."}
			}
			raw = eph.Post
		}
		if err := json.Unmarshal(raw, &p); err != nil || p.ChannelID == "" {
			return 400, appErr{"api.context.invalid_body_param.app_error", "Invalid or missing post in request body."}
		}
		if !s.members[p.ChannelID][BotID] {
			return 403, appErr{"api.context.permissions.app_error", "You do not have the appropriate permissions."}
		}
		if n := utf8.RuneCountInString(p.Message); n > MaxMessageRunes {
			return 400, appErr{"model.post.is_valid.message_length.app_error", fmt.Sprintf("Message length %d exceeds %d", n, MaxMessageRunes)}
		}
		if p.Message == "" && len(p.FileIDs) == 0 {
			return 400, appErr{"model.post.is_valid.msg.app_error", "Invalid Message."}
		}
		if p.RootID != "" {
			root := s.find(p.RootID)
			if root == nil || root.ChannelID != p.ChannelID || root.RootID != "" || root.Ephemeral {
				return 400, appErr{"api.post.create_post.root_id.app_error", "Invalid RootId parameter."}
			}
		}
		post := &Post{ID: newID(), ChannelID: p.ChannelID, RootID: p.RootID, UserID: BotID, Message: p.Message, CreateAt: s.clock}
		for _, fid := range p.FileIDs {
			f := s.files[fid]
			if f == nil || f.attached || f.ChannelID != p.ChannelID {
				return 400, appErr{"api.post.create_post.attach_files.app_error", "Cannot attach the file."}
			}
		}
		for _, fid := range p.FileIDs {
			s.files[fid].attached = true
			post.Files = append(post.Files, *s.files[fid])
		}
		if name == "posts.ephemeral" {
			post.Ephemeral, post.ForUser = true, eph.UserID
		}
		s.posts = append(s.posts, post)
		return 201, map[string]any{"id": post.ID, "channel_id": post.ChannelID, "root_id": post.RootID, "message": post.Message, "user_id": BotID, "create_at": post.CreateAt}
	case "posts.patch":
		post := s.find(id)
		if post == nil || post.Ephemeral {
			return 404, appErr{"app.post.get.app_error", "Unable to get the post."}
		}
		var p struct {
			Message *string `json:"message"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Message == nil {
			return 400, appErr{"api.context.invalid_body_param.app_error", "Invalid or missing patch in request body."}
		}
		if n := utf8.RuneCountInString(*p.Message); n > MaxMessageRunes {
			return 400, appErr{"model.post.is_valid.message_length.app_error", fmt.Sprintf("Message length %d exceeds %d", n, MaxMessageRunes)}
		}
		post.Message = *p.Message
		post.Edits++
		return 200, map[string]any{"id": post.ID, "message": post.Message}
	case "posts.since", "posts.thread":
		out := map[string]any{}
		var order []string
		var list []*Post
		for _, p := range s.posts {
			if p.Ephemeral {
				continue
			}
			if name == "posts.thread" && (p.ID == id || p.RootID == id) {
				list = append(list, p)
			}
			if name == "posts.since" && p.ChannelID == id {
				since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
				if p.CreateAt >= since {
					list = append(list, p)
				}
			}
		}
		sort.Slice(list, func(a, b int) bool { return list[a].CreateAt > list[b].CreateAt })
		for _, p := range list {
			order = append(order, p.ID)
			out[p.ID] = map[string]any{"id": p.ID, "channel_id": p.ChannelID, "root_id": p.RootID, "message": p.Message, "user_id": p.UserID, "create_at": p.CreateAt}
		}
		return 200, map[string]any{"order": order, "posts": out}
	}
	return 404, appErr{"api.context.404.app_error", "Sorry, we could not find the page."}
}

func (s *Server) find(id string) *Post {
	for _, p := range s.posts {
		if p.ID == id {
			return p
		}
	}
	return nil
}
