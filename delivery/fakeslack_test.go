package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSlack is a small Slack Web API on 127.0.0.1 that records every call and can be told
// to misbehave. slacktest covers neither chat.update nor the file upload flow.
type fakeSlack struct {
	t     testing.TB
	token string
	addr  string

	mu     sync.Mutex
	srv    *http.Server
	calls  []fakeCall
	faults map[string][]fault // per method, consumed in order
	// always applies to every call of a method (after faults run out).
	always  map[string]fault
	msgs    []fakeMsg // what the channel shows, in the order Slack accepted it
	uploads map[string][]byte
	nextTS  int
	nextF   int
	// uploadHost, when set, is the host files.getUploadURLExternal points uploads at.
	uploadHost string
}

type fakeCall struct {
	Method string
	Form   map[string]string
	Auth   bool // a valid token came with it
	Status int
}

// fakeMsg is one accepted effect: a post, an edit, an ephemeral message or a shared file.
type fakeMsg struct {
	Method  string
	Channel string
	TS      string // the message's ts (its own, or the edited one's)
	Thread  string
	User    string
	Text    string
	File    []byte
}

// fault describes one misbehaviour.
type fault struct {
	status     int    // HTTP status to answer (429, 500…)
	retryAfter string // Retry-After header
	slackErr   string // answer ok:false with this error
	delay      time.Duration
	// processFirst makes the fake act on the call before misbehaving: the ambiguous case.
	processFirst bool
}

func newFakeSlack(t testing.TB, token string) *fakeSlack {
	f := &fakeSlack{t: t, token: token, faults: map[string][]fault{}, always: map[string]fault{},
		uploads: map[string][]byte{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	f.serve(l)
	t.Cleanup(f.down)
	return f
}

func (f *fakeSlack) apiURL() string { return "http://" + f.addr + "/api/" }

func (f *fakeSlack) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(f.handle)}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	go srv.Serve(l)
}

// down closes the listener: connections are refused until up.
func (f *fakeSlack) down() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (f *fakeSlack) up() {
	var l net.Listener
	var err error
	for range 50 { // the port is ours; a closing listener may hold it for a moment
		if l, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	f.serve(l)
}

func (f *fakeSlack) fail(method string, fs ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[method] = append(f.faults[method], fs...)
}

func (f *fakeSlack) setAlways(method string, ft fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.always[method] = ft
}

func (f *fakeSlack) callsTo(method string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeSlack) messages() []fakeMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeMsg(nil), f.msgs...)
}

func (f *fakeSlack) handle(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	if strings.HasPrefix(r.URL.Path, "/upload/") {
		method = "files.upload"
	}
	form := map[string]string{}
	var fileData []byte
	if method == "files.upload" {
		mr, err := r.MultipartReader()
		if err == nil {
			for {
				p, err := mr.NextPart()
				if err != nil {
					break
				}
				b, _ := io.ReadAll(p)
				if p.FormName() == "file" {
					fileData = b
				} else {
					form[p.FormName()] = string(b)
				}
			}
		}
	} else {
		r.ParseForm()
		for k := range r.PostForm {
			form[k] = r.PostForm.Get(k)
		}
	}
	auth := form["token"] == f.token || r.Header.Get("Authorization") == "Bearer "+f.token
	delete(form, "token")

	f.mu.Lock()
	var ft fault
	if q := f.faults[method]; len(q) > 0 {
		ft, f.faults[method] = q[0], q[1:]
	} else {
		ft = f.always[method]
	}
	call := fakeCall{Method: method, Form: form, Auth: auth}
	f.mu.Unlock()

	faulty := ft.status != 0 || ft.slackErr != ""
	var resp map[string]any
	if !faulty || ft.processFirst {
		resp = f.act(method, form, fileData, auth, r)
	}
	if ft.delay > 0 {
		select {
		case <-time.After(ft.delay):
		case <-r.Context().Done():
		}
	}
	status := http.StatusOK
	switch {
	case ft.status != 0:
		status = ft.status
		if ft.retryAfter != "" {
			w.Header().Set("Retry-After", ft.retryAfter)
		}
		w.WriteHeader(status)
		fmt.Fprint(w, "<html>trouble</html>")
	case ft.slackErr != "":
		writeJSON(w, map[string]any{"ok": false, "error": ft.slackErr})
	default:
		writeJSON(w, resp)
	}
	call.Status = status
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

// act performs a call and returns Slack's answer.
func (f *fakeSlack) act(method string, form map[string]string, fileData []byte, auth bool, r *http.Request) map[string]any {
	if !auth {
		return map[string]any{"ok": false, "error": "invalid_auth"}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	newTS := func() string { f.nextTS++; return fmt.Sprintf("1700000000.%06d", f.nextTS) }
	switch method {
	case "chat.postMessage":
		ts := newTS()
		f.msgs = append(f.msgs, fakeMsg{Method: method, Channel: form["channel"], TS: ts, Thread: form["thread_ts"], Text: form["text"]})
		return map[string]any{"ok": true, "channel": form["channel"], "ts": ts}
	case "chat.update":
		found := false
		for _, m := range f.msgs {
			if m.Method == "chat.postMessage" && m.TS == form["ts"] && m.Channel == form["channel"] {
				found = true
			}
		}
		if !found {
			return map[string]any{"ok": false, "error": "message_not_found"}
		}
		f.msgs = append(f.msgs, fakeMsg{Method: method, Channel: form["channel"], TS: form["ts"], Text: form["text"]})
		return map[string]any{"ok": true, "channel": form["channel"], "ts": form["ts"], "text": form["text"]}
	case "chat.postEphemeral":
		f.msgs = append(f.msgs, fakeMsg{Method: method, Channel: form["channel"], User: form["user"], Text: form["text"]})
		return map[string]any{"ok": true, "message_ts": newTS()}
	case "files.getUploadURLExternal":
		f.nextF++
		id := fmt.Sprintf("F%04d", f.nextF)
		host := r.Host
		if f.uploadHost != "" {
			host = f.uploadHost
		}
		return map[string]any{"ok": true, "file_id": id, "upload_url": "http://" + host + "/upload/" + id}
	case "files.upload":
		id := strings.TrimPrefix(r.URL.Path, "/upload/")
		f.uploads[id] = fileData
		return map[string]any{"ok": true}
	case "files.completeUploadExternal":
		var files []struct{ ID, Title string }
		json.Unmarshal([]byte(form["files"]), &files)
		if len(files) != 1 {
			return map[string]any{"ok": false, "error": "invalid_arguments"}
		}
		data, ok := f.uploads[files[0].ID]
		if !ok {
			return map[string]any{"ok": false, "error": "file_not_found"}
		}
		f.msgs = append(f.msgs, fakeMsg{Method: method, Channel: form["channel_id"], Thread: form["thread_ts"], Text: form["initial_comment"], File: data})
		return map[string]any{"ok": true, "files": []map[string]string{{"id": files[0].ID, "title": files[0].Title}}}
	}
	return map[string]any{"ok": false, "error": "unknown_method"}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// fakeClock advances only when slept on, and remembers every sleep.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}
