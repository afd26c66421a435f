package delivery

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// An API host that answers 307 must not get the bot token relayed to another host: Go's
// client would resend the POST body, token included, to the Location.
func TestSlackRefusesRedirects(t *testing.T) {
	var stolen atomic.Value
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		stolen.Store(string(body) + r.Header.Get("Authorization"))
		w.Write([]byte(`{"ok":true,"ts":"1.2"}`))
	}))
	defer evil.Close()
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, evil.URL+r.URL.Path, code)
		}))
		p, err := NewSlack(testToken, api.URL+"/api/")
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.PostMessage(context.Background(), "C1", "", "hello")
		api.Close()
		if v, _ := stolen.Load().(string); v != "" {
			t.Fatalf("%d: the redirect was followed; the other host got %q", code, v)
		}
		e := Classify(err)
		if err == nil || e.Class != Permanent || !strings.Contains(e.Hint, "redirect") {
			t.Errorf("%d: err = %v (class %v, hint %q), want a permanent error that names the redirect", code, err, e.Class, e.Hint)
		}
		if strings.Contains(err.Error(), testToken) {
			t.Errorf("%d: the error shows the token", code)
		}
	}
}
