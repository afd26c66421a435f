package slackrecorder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// request is what the handler read from an HTTP request.
type request struct {
	contentType   string
	params        map[string]string
	header, param TokenCheck
	filename      string
	file          []byte
	hasFile       bool
	malformed     bool
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	var method, uploadID string
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/"):
		method = strings.TrimPrefix(r.URL.Path, "/api/")
	case strings.HasPrefix(r.URL.Path, uploadPath) && r.Method == http.MethodPost:
		method, uploadID = UploadMethod, strings.TrimPrefix(r.URL.Path, uploadPath)
	default:
		http.NotFound(w, r)
		return
	}
	req := s.read(r)
	call := &Call{Method: method, Time: now, ContentType: req.contentType, Params: req.params,
		Header: req.header, Param: req.param, Auth: req.header == TokenValid || req.param == TokenValid,
		Filename: req.filename, Size: int64(len(req.file))}

	s.mu.Lock()
	s.calls = append(s.calls, call)
	ft := s.limited(method, call.Params, now)
	if !ft.failing() {
		ft = s.nextFault(method)
	}
	s.mu.Unlock()

	status, resp := http.StatusOK, map[string]any(nil)
	if !ft.failing() || ft.AfterEffect {
		status, resp = s.act(method, uploadID, call, req, r.Host, now)
	}
	if ft.Delay > 0 {
		t := time.NewTimer(ft.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	var code string
	switch {
	case ft.Status != 0:
		status = ft.Status
		if ft.RetryAfter != "" {
			w.Header().Set("Retry-After", ft.RetryAfter)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, "<html><body><h1>Slack is having trouble</h1></body></html>\n")
	case ft.Error != "":
		status, code = http.StatusOK, ft.Error
		writeJSON(w, map[string]any{"ok": false, "error": ft.Error})
	case status != http.StatusOK:
		http.Error(w, http.StatusText(status), status)
	case method == "auth.test" && resp["ok"] == true:
		// What auth.test tells a client about its token's scopes: the header, as Slack does.
		s.mu.Lock()
		w.Header().Set("X-OAuth-Scopes", strings.Join(s.scopes, ","))
		s.mu.Unlock()
		writeJSON(w, resp)
	case method == UploadMethod && resp["ok"] == true:
		// What files.slack.com answers a successful upload with.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "OK - %d", len(req.file))
	default:
		if e, ok := resp["error"].(string); ok {
			code = e
		}
		writeJSON(w, resp)
	}
	s.mu.Lock()
	call.Status, call.Error = status, code
	s.mu.Unlock()
}

// read parses the request's parameters and checks its credentials. The token goes no
// further than this function.
func (s *Server) read(r *http.Request) request {
	req := request{params: map[string]string{}}
	req.header = s.check(bearer(r.Header.Get("Authorization")))
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	req.contentType = mt
	switch {
	case mt == "multipart/form-data":
		mr, err := r.MultipartReader()
		if err != nil {
			req.malformed = true
			break
		}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				req.malformed = true
				break
			}
			b, err := io.ReadAll(p)
			if err != nil {
				req.malformed = true
			}
			switch name := p.FormName(); {
			case name == "file":
				req.file, req.filename, req.hasFile = b, p.FileName(), true
			case name == "token":
				req.param = s.check(string(b))
			default:
				if _, dup := req.params[name]; !dup {
					req.params[name] = string(b)
				}
			}
		}
	case mt == "application/json":
		d := json.NewDecoder(r.Body)
		d.UseNumber()
		var body map[string]any
		if err := d.Decode(&body); err != nil {
			req.malformed = true
		}
		for k, v := range body {
			if k == "token" { // Slack reads no token from a JSON body, and we keep none
				continue
			}
			if str, ok := v.(string); ok {
				req.params[k] = str
			} else {
				b, _ := json.Marshal(v)
				req.params[k] = string(b)
			}
		}
		// The query string counts too.
		for k, vs := range r.URL.Query() {
			if _, dup := req.params[k]; !dup && k != "token" {
				req.params[k] = vs[0]
			}
		}
	default:
		if err := r.ParseForm(); err != nil {
			req.malformed = true
		}
		for k, vs := range r.Form {
			if k == "token" {
				req.param = s.check(vs[0])
				continue
			}
			req.params[k] = vs[0]
		}
	}
	return req
}

// bearer returns the token of an Authorization header, "-" for a header of another form.
func bearer(h string) string {
	if h == "" {
		return ""
	}
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return t
	}
	return "-"
}

func (s *Server) check(token string) TokenCheck {
	switch token {
	case "":
		return TokenAbsent
	case s.token:
		return TokenValid
	}
	return TokenWrong
}

var methods = map[string]bool{
	"chat.postMessage": true, "chat.update": true, "chat.postEphemeral": true,
	"files.getUploadURLExternal": true, UploadMethod: true, "files.completeUploadExternal": true,
	"auth.test": true, "conversations.info": true,
	"conversations.history": true, "conversations.replies": true,
}

func slackErr(code string) map[string]any { return map[string]any{"ok": false, "error": code} }

// missing is Slack's answer to a call without a required argument.
func missing(field string) map[string]any {
	return map[string]any{"ok": false, "error": "invalid_arguments",
		"response_metadata": map[string]any{"messages": []string{"[ERROR] missing required field: " + field}}}
}

// act performs a call as Slack would and returns the HTTP status and Slack's answer.
func (s *Server) act(method, uploadID string, call *Call, req request, host string, now time.Time) (int, map[string]any) {
	p := req.params
	if method == UploadMethod {
		s.mu.Lock()
		u := s.uploads[uploadID]
		s.mu.Unlock()
		if u == nil { // a URL never handed out
			return http.StatusNotFound, nil
		}
	}
	switch {
	case !methods[method]:
		return http.StatusOK, slackErr("unknown_method")
	case req.malformed:
		return http.StatusOK, slackErr("invalid_form_data")
	case !call.Auth && call.Header == TokenAbsent && call.Param == TokenAbsent:
		return http.StatusOK, slackErr("not_authed")
	case !call.Auth:
		return http.StatusOK, slackErr("invalid_auth")
	}
	hasContent := p["text"] != "" || p["blocks"] != "" || p["attachments"] != ""

	s.mu.Lock()
	defer s.mu.Unlock()
	switch method {
	case "auth.test":
		return http.StatusOK, map[string]any{"ok": true, "url": "https://" + s.team.Domain + ".slack.com/",
			"team": s.team.Name, "team_id": s.team.ID, "user": s.bot.Name, "user_id": s.bot.ID, "bot_id": s.bot.BotID}

	case "conversations.info":
		ch, ok := s.channels[p["channel"]]
		if p["channel"] == "" || !ok || (ch.Private && !ch.Member) {
			// Slack hides private channels from non-members.
			return http.StatusOK, slackErr("channel_not_found")
		}
		need := "channels:read"
		if ch.Private {
			need = "groups:read"
		}
		if !slices.Contains(s.scopes, need) {
			return http.StatusOK, map[string]any{"ok": false, "error": "missing_scope", "needed": need, "provided": strings.Join(s.scopes, ",")}
		}
		return http.StatusOK, map[string]any{"ok": true, "channel": map[string]any{
			"id": p["channel"], "name": ch.Name, "is_channel": !ch.Private, "is_group": false,
			"is_private": ch.Private, "is_member": ch.Member, "is_archived": ch.Archived}}

	case "chat.postMessage":
		if p["channel"] == "" {
			return http.StatusOK, slackErr("channel_not_found")
		}
		if !hasContent {
			return http.StatusOK, slackErr("no_text")
		}
		if p["blocks"] != "" {
			if e := checkBlocks(p["blocks"]); e != nil {
				return http.StatusOK, e
			}
		}
		m := s.post(now, Message{Channel: p["channel"], ThreadTS: p["thread_ts"], Text: p["text"], Blocks: p["blocks"]}, method)
		msg := map[string]any{"type": "message", "text": m.Text, "ts": m.TS}
		if m.ThreadTS != "" {
			msg["thread_ts"] = m.ThreadTS
		}
		return http.StatusOK, map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS, "message": msg}

	case "chat.update":
		if p["channel"] == "" {
			return http.StatusOK, slackErr("channel_not_found")
		}
		if p["ts"] == "" {
			return http.StatusOK, missing("ts")
		}
		if !hasContent {
			return http.StatusOK, slackErr("no_text")
		}
		var m *Message
		for _, c := range s.msgs {
			if c.Channel == p["channel"] && c.TS == p["ts"] && !c.Ephemeral && c.Files == nil {
				m = c
			}
		}
		if m == nil {
			return http.StatusOK, slackErr("message_not_found")
		}
		if p["blocks"] != "" {
			if e := checkBlocks(p["blocks"]); e != nil {
				return http.StatusOK, e
			}
		}
		// An edit without blocks leaves none: chat.update replaces the message.
		m.Text, m.Blocks, m.Edited = p["text"], p["blocks"], now
		m.History = append(m.History, m.Text)
		s.events = append(s.events, Event{Method: method, Time: now, Channel: m.Channel, TS: m.TS,
			ThreadTS: m.ThreadTS, Text: m.Text})
		return http.StatusOK, map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS, "text": m.Text}

	case "chat.postEphemeral":
		if p["channel"] == "" {
			return http.StatusOK, slackErr("channel_not_found")
		}
		if p["user"] == "" {
			return http.StatusOK, missing("user")
		}
		if !hasContent {
			return http.StatusOK, slackErr("no_text")
		}
		m := s.post(now, Message{Channel: p["channel"], ThreadTS: p["thread_ts"], Text: p["text"],
			Ephemeral: true, User: p["user"]}, method)
		return http.StatusOK, map[string]any{"ok": true, "message_ts": m.TS}

	case "files.getUploadURLExternal":
		if p["filename"] == "" {
			return http.StatusOK, missing("filename")
		}
		n, err := strconv.ParseInt(p["length"], 10, 64)
		if err != nil || n <= 0 {
			return http.StatusOK, missing("length")
		}
		s.nextFile++
		id := fmt.Sprintf("F%08d", s.nextFile)
		s.uploads[id] = &upload{filename: p["filename"], length: n}
		if s.uploadHost != "" {
			host = s.uploadHost
		}
		return http.StatusOK, map[string]any{"ok": true, "file_id": id, "upload_url": "http://" + host + uploadPath + id}

	case UploadMethod:
		u := s.uploads[uploadID]
		if u == nil {
			return http.StatusNotFound, nil
		}
		if !req.hasFile {
			return http.StatusBadRequest, nil
		}
		u.content, u.uploaded = bytes.Clone(req.file), true
		return http.StatusOK, map[string]any{"ok": true}

	case "files.completeUploadExternal":
		var files []struct {
			ID    string `json:"id"`
			Title string `json:"title"`
		}
		if err := json.Unmarshal([]byte(p["files"]), &files); err != nil || len(files) == 0 {
			return http.StatusOK, missing("files")
		}
		comment := p["initial_comment"]
		var shared []File
		var answer []map[string]string
		for _, f := range files {
			u := s.uploads[f.ID]
			if u == nil || !u.uploaded {
				return http.StatusOK, slackErr("file_not_found")
			}
			title := f.Title
			if title == "" {
				title = u.filename
			}
			shared = append(shared, File{ID: f.ID, Filename: u.filename, Title: title, Comment: comment, Content: u.content})
			answer = append(answer, map[string]string{"id": f.ID, "title": title})
		}
		var channels []string
		if p["channel_id"] != "" {
			channels = []string{p["channel_id"]}
		} else if p["channels"] != "" {
			channels = strings.Split(p["channels"], ",")
		}
		// Without a channel the files are uploaded but private: nothing to see.
		for _, ch := range channels {
			s.post(now, Message{Channel: ch, ThreadTS: p["thread_ts"], Text: comment, Files: shared}, method)
		}
		return http.StatusOK, map[string]any{"ok": true, "files": answer}

	case "conversations.history", "conversations.replies":
		return http.StatusOK, s.history(method, p)

	case "reactions.get", "usergroups.users.list":
		return http.StatusOK, s.actControl(method, p) // reactions.go
	}
	return http.StatusOK, slackErr("unknown_method")
}

// history answers conversations.history (top-level messages, newest first, those posted at
// or after oldest, a Unix time in seconds) and conversations.replies (a thread's parent
// and its replies, oldest first). Every message is the bot's. s.mu is held.
func (s *Server) history(method string, p map[string]string) map[string]any {
	if p["channel"] == "" {
		return slackErr("channel_not_found")
	}
	if method == "conversations.replies" && p["ts"] == "" {
		return missing("ts")
	}
	oldest, _ := strconv.ParseFloat(p["oldest"], 64)
	var out []map[string]any
	for _, m := range s.msgs {
		if m.Channel != p["channel"] || m.Ephemeral {
			continue
		}
		top := m.ThreadTS == "" || m.ThreadTS == m.TS
		switch {
		case method == "conversations.history" && (!top || float64(m.Time.UnixNano())/1e9 < oldest):
			continue
		case method == "conversations.replies" && m.TS != p["ts"] && m.ThreadTS != p["ts"]:
			continue
		}
		msg := map[string]any{"type": "message", "text": m.Text, "ts": m.TS, "bot_id": "B0FAKEBOT"}
		if m.ThreadTS != "" {
			msg["thread_ts"] = m.ThreadTS
		}
		out = append(out, msg)
	}
	if method == "conversations.history" {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return map[string]any{"ok": true, "messages": out, "has_more": false}
}

// post adds m to the channel with a new ts and records the event. s.mu is held.
func (s *Server) post(now time.Time, m Message, method string) *Message {
	s.nextTS++
	m.TS = fmt.Sprintf("1700000000.%06d", s.nextTS)
	m.History = []string{m.Text}
	m.Time = now
	s.msgs = append(s.msgs, &m)
	s.events = append(s.events, Event{Method: method, Time: now, Channel: m.Channel, TS: m.TS,
		ThreadTS: m.ThreadTS, User: m.User, Text: m.Text, Files: m.Files})
	return &m
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(v)
}
