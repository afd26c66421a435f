package mattermosttest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

const token = "faketokenfaketokenfaketok1"

type client struct {
	t     *testing.T
	s     *Server
	token string
}

func (c client) do(verb, path, ctype string, body io.Reader) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(verb, c.s.URL()+"/api/v4"+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (c client) post(v any) (int, map[string]any) {
	data, _ := json.Marshal(v)
	return c.do("POST", "/posts", "application/json", bytes.NewReader(data))
}

func (c client) upload(channel, name, content string) string {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("channel_id", channel)
	w, _ := mw.CreateFormFile("files", name)
	io.WriteString(w, content)
	mw.Close()
	code, out := c.do("POST", "/files", mw.FormDataContentType(), &b)
	if code != 201 {
		c.t.Fatalf("upload: %d %v", code, out)
	}
	return out["file_infos"].([]any)[0].(map[string]any)["id"].(string)
}

// The fake holds clients to what Mattermost documents, so a test passing against it means
// something.
func TestFakeEnforcesMattermostsRules(t *testing.T) {
	s := New(t, token)
	const ch, other = "chan0chan0chan0chan0chan01", "chan0chan0chan0chan0chan02"
	s.AddChannel(ch)
	s.AddChannel(other)
	s.AddChannelWithoutBot("nobot0nobot0nobot0nobot01")
	c := client{t: t, s: s, token: token}

	if code, _ := (client{t: t, s: s, token: "wrong"}).post(map[string]any{"channel_id": ch, "message": "x"}); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	if code, _ := (client{t: t, s: s}).post(map[string]any{"channel_id": ch, "message": "x"}); code != 401 {
		t.Errorf("no token: %d", code)
	}
	code, root := c.post(map[string]any{"channel_id": ch, "message": "root"})
	if code != 201 {
		t.Fatalf("post: %d %v", code, root)
	}
	rootID := root["id"].(string)
	_, reply := c.post(map[string]any{"channel_id": ch, "root_id": rootID, "message": "reply"})
	for name, body := range map[string]map[string]any{
		"too long":           {"channel_id": ch, "message": strings.Repeat("é", MaxMessageRunes+1)},
		"empty":              {"channel_id": ch, "message": ""},
		"root elsewhere":     {"channel_id": other, "root_id": rootID, "message": "x"},
		"reply to a reply":   {"channel_id": ch, "root_id": reply["id"], "message": "x"},
		"bot not in channel": {"channel_id": "nobot0nobot0nobot0nobot01", "message": "x"},
	} {
		if code, out := c.post(body); code < 400 {
			t.Errorf("%s: accepted (%d %v)", name, code, out)
		}
	}
	if code, _ := c.post(map[string]any{"channel_id": ch, "message": strings.Repeat("é", MaxMessageRunes)}); code != 201 {
		t.Errorf("exactly the limit: %d", code)
	}
	f := c.upload(ch, "out.txt", "content")
	if code, _ := c.post(map[string]any{"channel_id": other, "message": "x", "file_ids": []string{f}}); code != 400 {
		t.Errorf("file from another channel: %d", code)
	}
	if code, _ := c.post(map[string]any{"channel_id": ch, "message": "x", "file_ids": []string{f}}); code != 201 {
		t.Errorf("file: %d", code)
	}
	if code, _ := c.post(map[string]any{"channel_id": ch, "message": "x", "file_ids": []string{f}}); code != 400 {
		t.Errorf("file attached twice: %d", code)
	}
	data, _ := json.Marshal(map[string]any{"user_id": "u", "post": map[string]any{"channel_id": ch, "message": "x"}})
	if code, _ := c.do("POST", "/posts/ephemeral", "application/json", bytes.NewReader(data)); code != 403 {
		t.Errorf("ephemeral without the permission: %d", code)
	}
	for _, call := range s.Calls("") {
		if strings.Contains(call.Body+call.Path, token) {
			t.Errorf("the token was recorded: %+v", call)
		}
	}
	if n := len(s.Calls("posts.create")); n < 9 {
		t.Errorf("%d posts.create calls recorded", n)
	}
}
