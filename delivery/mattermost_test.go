package delivery

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/mattermosttest"
)

const (
	mmToken   = "mm-bot-token-secret-4711"
	mmChannel = "chan0chan0chan0chan0chan01"
	mmUser    = "user0user0user0user0user01"
)

type mmRig struct {
	f   *mattermosttest.Server
	p   *Mattermost
	clk *fakeClock
	ob  *Outbox
}

func newMMRig(t *testing.T) *mmRig {
	t.Helper()
	f := mattermosttest.New(t, mmToken)
	f.AddChannel(mmChannel)
	f.AddUser(mmUser, "alice")
	p, err := NewMattermost(mmToken, f.URL()+"/")
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	ob := Open(t.TempDir(), nil, Options{Clock: clk, AttemptTimeout: 2 * time.Second,
		Jitter: func(d time.Duration) time.Duration { return 0 }}).Use(BackendMattermost, p)
	return &mmRig{f: f, p: p, clk: clk, ob: ob}
}

func (r *mmRig) job(t *testing.T, id string) *Job {
	t.Helper()
	j, err := r.ob.Job(id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func mmMsg(m Message) Message {
	m.Backend = BackendMattermost
	if m.Channel == "" {
		m.Channel = mmChannel
	}
	return m
}

// assertTokens fails when any call reached the fake without the bearer token, or when the
// token shows in what the outbox keeps.
func (r *mmRig) assertTokens(t *testing.T) {
	t.Helper()
	for _, c := range r.f.Calls("") {
		if !c.Token {
			t.Errorf("%s %s without the bearer token", c.Verb, c.Path)
		}
	}
}

// A whole reply: start post, its edit, a thread reply and a file in the thread, each
// exactly once, with the calls Mattermost documents.
func TestMattermostDeliversAReply(t *testing.T) {
	r := newMMRig(t)
	j := r.job(t, "201")
	rep, err := j.Send(context.Background(), 0, mmMsg(Message{Kind: KindPost, Name: "start", Text: "started"}))
	if err != nil || !rep.Clear() {
		t.Fatalf("start: %v %s", err, rep)
	}
	if err := j.Progress(context.Background(), "start", "running 1m"); err != nil {
		t.Fatal(err)
	}
	rep, err = j.Send(context.Background(), 0,
		mmMsg(Message{Kind: KindUpdate, Target: "start", Text: "succeeded"}),
		mmMsg(Message{Kind: KindPost, ThreadOf: "start", Text: "```\nout\n```"}),
		mmMsg(Message{Kind: KindUpload, ThreadOf: "start", Text: "whole output", Filename: "out.txt", Title: "Output", Content: strings.NewReader("line 1\nline 2\n")}),
	)
	if err != nil || !rep.Clear() || len(rep.Delivered) != 3 {
		t.Fatalf("reply: %v %s", err, rep)
	}
	posts := r.f.Posts(mmChannel)
	if len(posts) != 3 {
		t.Fatalf("want 3 posts, got:\n%s", r.f)
	}
	start := posts[0]
	if start.Message != "succeeded" || start.Edits != 2 || start.RootID != "" {
		t.Errorf("start post: %+v", start)
	}
	if posts[1].RootID != start.ID || posts[1].Message != "```\nout\n```" {
		t.Errorf("thread reply: %+v", posts[1])
	}
	if posts[2].RootID != start.ID || len(posts[2].Files) != 1 || string(posts[2].Files[0].Content) != "line 1\nline 2\n" ||
		posts[2].Files[0].Name != "out.txt" || posts[2].Message != "whole output" {
		t.Errorf("file post: %+v", posts[2])
	}
	if n := len(r.f.Calls("posts.patch")); n != 2 {
		t.Errorf("%d patches, want 2 (progress and final)", n)
	}
	r.assertTokens(t)
}

// The bot usually may not post ephemeral messages: the denial goes to the requester as a
// direct message, and the record says so.
func TestMattermostEphemeralRefusedFallsBackToDirectMessage(t *testing.T) {
	r := newMMRig(t)
	j := r.job(t, "202")
	rep, err := j.Send(context.Background(), 0, mmMsg(Message{Kind: KindEphemeral, Name: "denied", User: mmUser, Text: "denied"}))
	if err != nil || !rep.Clear() || len(rep.Delivered) != 1 {
		t.Fatalf("%v %s", err, rep)
	}
	if rep.Delivered[0].Note != EphemeralRefused {
		t.Errorf("note %q, want it to say a direct message was used", rep.Delivered[0].Note)
	}
	if n := len(r.f.Calls("posts.ephemeral")); n != 1 {
		t.Errorf("%d ephemeral attempts, want 1", n)
	}
	dm := r.f.Posts(mattermosttest.DirectChannel(mmUser))
	if len(dm) != 1 || !strings.HasPrefix(dm[0].Message, "denied") || !strings.Contains(dm[0].Message, "direct message") {
		t.Fatalf("direct message: %+v\n%s", dm, r.f)
	}
	if len(r.f.Posts(mmChannel)) != 0 {
		t.Errorf("the denial reached the channel:\n%s", r.f)
	}
	r.assertTokens(t)
}

func TestMattermostEphemeralAllowed(t *testing.T) {
	r := newMMRig(t)
	r.f.AllowEphemeral(true)
	rep, err := r.job(t, "203").Send(context.Background(), 0, mmMsg(Message{Kind: KindEphemeral, User: mmUser, Text: "denied"}))
	if err != nil || !rep.Clear() || rep.Delivered[0].Note != "" {
		t.Fatalf("%v %s %+v", err, rep, rep.Delivered)
	}
	p := r.f.Posts(mmChannel)
	if len(p) != 1 || !p[0].Ephemeral || p[0].ForUser != mmUser || p[0].Message != "denied" {
		t.Fatalf("%+v", p)
	}
	if len(r.f.Calls("channels.direct")) != 0 {
		t.Error("a direct channel was opened though the ephemeral post worked")
	}
}

// A 429 is waited out for as long as X-RateLimit-Reset says, then the post goes once.
func TestMattermostRateLimitHonoursReset(t *testing.T) {
	r := newMMRig(t)
	r.f.Fail("posts.create", mattermosttest.RateLimited(7))
	rep, err := r.job(t, "204").Send(context.Background(), 0, mmMsg(Message{Kind: KindPost, Text: "hi"}))
	if err != nil || !rep.Clear() {
		t.Fatalf("%v %s", err, rep)
	}
	if s := r.clk.slept(); len(s) != 1 || s[0] != 7*time.Second {
		t.Errorf("slept %v, want [7s]", s)
	}
	if n := len(r.f.Posts(mmChannel)); n != 1 {
		t.Errorf("%d posts, want 1", n)
	}
}

func TestMattermostClassifiesFailures(t *testing.T) {
	r := newMMRig(t)
	ctx := context.Background()
	class := func(err error) Class {
		t.Helper()
		if err == nil {
			t.Fatal("no error")
		}
		if strings.Contains(err.Error(), mmToken) {
			t.Errorf("token in %q", err)
		}
		return Classify(err).Class
	}
	r.f.Fail("posts.create", mattermosttest.HTTPError(503))
	if _, err := r.p.PostMessage(ctx, mmChannel, "", "x"); class(err) != Retryable {
		t.Errorf("503: %v", err)
	}
	if _, err := r.p.PostMessage(ctx, mmChannel, "", strings.Repeat("x", mattermosttest.MaxMessageRunes+1)); class(err) != Permanent {
		t.Errorf("too long: %v", err)
	}
	if _, err := r.p.PostMessage(ctx, "nochannelnochannelnochann1", "", "x"); class(err) != Permanent || Classify(err).Hint == "" {
		t.Errorf("not a member: %v", err)
	}
	// Posted, then no answer in time: it may be in the channel.
	r.f.Fail("posts.create", mattermosttest.Fault{Delay: 5 * time.Second})
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := r.p.PostMessage(tctx, mmChannel, "", "slow")
	cancel()
	if class(err) != Uncertain {
		t.Errorf("timeout: %v", err)
	}
	bad, err := NewMattermost("wrong-token", r.f.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.PostMessage(ctx, mmChannel, "", "x"); class(err) != Permanent || !strings.Contains(Classify(err).Hint, "token") {
		t.Errorf("wrong token: %v", err)
	}
	// Nothing listens: never sent.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	down, _ := NewMattermost(mmToken, "http://"+addr)
	if _, err := down.PostMessage(ctx, mmChannel, "", "x"); class(err) != Retryable {
		t.Errorf("down: %v", err)
	}
}

// A post that timed out after Mattermost took it is not posted again: it is found in the
// channel by a later delivery, or reported unknown, never duplicated.
func TestMattermostUncertainPostIsNotRepeated(t *testing.T) {
	r := newMMRig(t)
	r.ob.opt.AttemptTimeout = 300 * time.Millisecond
	r.f.Fail("posts.create", mattermosttest.Fault{Delay: 3 * time.Second})
	j := r.job(t, "205")
	rep, err := j.Send(context.Background(), 0, mmMsg(Message{Kind: KindPost, Name: "start", Text: "once"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != 1 || rep.Failed[0].State != StateUnknown {
		t.Fatalf("want it unknown: %s", rep)
	}
	if n := len(r.f.Calls("posts.create")); n != 1 {
		t.Errorf("%d post attempts, want 1", n)
	}
}

// A sender that died between "in flight" and the answer: the channel tells whether the post
// arrived (settle with FindPost).
func TestMattermostFindPostSettlesADeadSender(t *testing.T) {
	r := newMMRig(t)
	ctx := context.Background()
	since := time.Now()
	if _, err := r.p.PostMessage(ctx, mmChannel, "", "exactly this"); err != nil {
		t.Fatal(err)
	}
	id, found, err := r.p.FindPost(ctx, mmChannel, "", "exactly this", since)
	if err != nil || !found || id == "" {
		t.Fatalf("find: %q %v %v", id, found, err)
	}
	_, found, err = r.p.FindPost(ctx, mmChannel, "", "something else", since)
	if err != nil || found {
		t.Fatalf("found what was never posted: %v %v", found, err)
	}
	reply, err := r.p.PostMessage(ctx, mmChannel, id, "in thread")
	if err != nil {
		t.Fatal(err)
	}
	got, found, err := r.p.FindPost(ctx, mmChannel, id, "in thread", since)
	if err != nil || !found || got != reply {
		t.Fatalf("thread: %q %v %v, want %q", got, found, err, reply)
	}
}

func TestMattermostUsernameLookedUpOnce(t *testing.T) {
	r := newMMRig(t)
	for range 3 {
		name, err := r.p.Username(context.Background(), mmUser)
		if err != nil || name != "alice" {
			t.Fatalf("%q %v", name, err)
		}
	}
	if n := len(r.f.Calls("users.get")); n != 1 {
		t.Errorf("%d lookups, want 1", n)
	}
	if _, err := r.p.Username(context.Background(), "@all"); err == nil {
		t.Error("looked up a user id that is not one")
	}
	r.f.AddUser("evil0evil0evil0evil0evil01", "x](http://evil)")
	if _, err := r.p.Username(context.Background(), "evil0evil0evil0evil0evil01"); err == nil {
		t.Error("took a username that is not one")
	}
}

func TestMattermostRefusesRedirects(t *testing.T) {
	srv := http.Server{Handler: http.RedirectHandler("http://127.0.0.1:1/elsewhere", http.StatusTemporaryRedirect)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	p, _ := NewMattermost(mmToken, "http://"+l.Addr().String())
	_, err = p.PostMessage(context.Background(), mmChannel, "", "x")
	if e := Classify(err); err == nil || e.Class != Permanent || !strings.Contains(e.Hint, "redirect") {
		t.Fatalf("%v", err)
	}
}

// The token file's content and an outbox full of Mattermost messages: no token anywhere.
func TestMattermostTokenNeverInOutbox(t *testing.T) {
	r := newMMRig(t)
	r.f.Fail("posts.create", mattermosttest.HTTPError(500), mattermosttest.HTTPError(500))
	j := r.job(t, "206")
	r.ob.opt.Budget = 100 * time.Millisecond
	if _, err := j.Send(context.Background(), time.Millisecond, mmMsg(Message{Kind: KindPost, Text: "x"})); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(j.dir)
	for _, e := range entries {
		data, _ := os.ReadFile(j.dir + "/" + e.Name())
		if strings.Contains(string(data), mmToken) {
			t.Errorf("%s holds the token", e.Name())
		}
	}
}

func TestNewMattermostRejectsBadInput(t *testing.T) {
	for _, c := range []struct{ token, url string }{{"", "http://x"}, {"t", "ftp://x"}, {"t", "http://"}, {"t", "x"}} {
		if _, err := NewMattermost(c.token, c.url); err == nil {
			t.Errorf("NewMattermost(%q, %q): no error", c.token, c.url)
		}
	}
	p, err := NewMattermost("t", "https://chat.example.com/api/v4/")
	if err != nil || p.base != "https://chat.example.com/api/v4" {
		t.Errorf("%v %+v", err, p)
	}
	if _, err := p.Username(context.Background(), "x"); !errors.As(err, new(*Error)) {
		t.Errorf("%v", err)
	}
}

func TestBackendOf(t *testing.T) {
	for ch, want := range map[string]Backend{"C0123ABCD": BackendSlack, "D0123": BackendSlack, mmChannel: BackendMattermost,
		"": "", "c0123abcd": "", "general": "", "XHAN0CHAN0CHAN0CHAN0CHAN01": "", "chan0chan0chan0chan0chan0_": "", mmChannel + "1": ""} {
		b, ok := BackendOf(ch)
		if b != want || ok != (want != "") {
			t.Errorf("BackendOf(%q) = %q %v, want %q", ch, b, ok, want)
		}
	}
}

// A sender killed between "in flight" and Mattermost's answer: the channel settles it, as
// for Slack — found, done with its post id and not sent again; absent, sent.
func TestMattermostInFlightPostSettledByTheChannel(t *testing.T) {
	for _, arrived := range []bool{true, false} {
		r := newMMRig(t)
		j := r.job(t, "207")
		ctx := context.Background()
		if _, err := j.Send(ctx, 0, mmMsg(Message{Kind: KindPost, Name: "start", Text: "started"})); err != nil {
			t.Fatal(err)
		}
		root := r.f.Posts(mmChannel)[0].ID
		r.f.Down()
		if _, err := j.Send(ctx, 0, mmMsg(Message{Kind: KindPost, Name: "final", ThreadOf: "start", Text: "the reply"})); err != nil {
			t.Fatal(err)
		}
		r.f.Up()
		if arrived {
			if _, err := r.p.PostMessage(ctx, mmChannel, root, "the reply"); err != nil {
				t.Fatal(err)
			}
		}
		setState(t, j, 2, StateInFlight)
		rep, err := j.Deliver(ctx, 0)
		if err != nil || !rep.Clear() || len(rep.Delivered) != 1 {
			t.Fatalf("arrived %v: %+v %v", arrived, rep, err)
		}
		n := 0
		for _, p := range r.f.Posts(mmChannel) {
			if p.Message == "the reply" && p.RootID == root {
				n++
			}
		}
		if n != 1 {
			t.Errorf("arrived %v: the reply is in the thread %d times, want once:\n%s", arrived, n, r.f)
		}
	}
}

// A Mattermost message in an outbox opened without a Mattermost Poster waits: it is never
// handed to Slack's.
func TestMattermostMessageWaitsWithoutItsPoster(t *testing.T) {
	r := newRig(t)
	j := r.job(t, "208")
	rep, err := j.Send(context.Background(), 0, mmMsg(Message{Kind: KindPost, Text: "for Mattermost"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Waiting) != 1 || len(r.f.Events()) != 0 {
		t.Fatalf("want it waiting and nothing at Slack: %s, %+v", rep, r.f.Events())
	}
	if err := j.Enqueue(Message{Kind: KindPost, Channel: "C1", Backend: "irc", Text: "x"}); err == nil {
		t.Error("queued a message for an unknown backend")
	}
}

// A file larger than the server accepts: the preview is posted, saying why the file is not.
func TestMattermostFileTooLargeStillPostsThePreview(t *testing.T) {
	r := newMMRig(t)
	r.f.SetMaxFileSize(10)
	rep, err := r.job(t, "209").Send(context.Background(), 0, mmMsg(Message{Kind: KindUpload, Text: "preview", Filename: "out.txt",
		Content: strings.NewReader("more than ten bytes of output\n")}))
	if err != nil || !rep.Clear() {
		t.Fatalf("%v %s", err, rep)
	}
	p := r.f.Posts(mmChannel)
	if len(p) != 1 || len(p[0].Files) != 0 || !strings.HasPrefix(p[0].Message, "preview\n") || !strings.Contains(p[0].Message, "30 bytes it is larger than") {
		t.Fatalf("%+v", p)
	}
}

// Ids go into URL paths that carry the token: anything else is refused before a request.
func TestMattermostRefusesNonIDsInPaths(t *testing.T) {
	r := newMMRig(t)
	ctx := context.Background()
	before := len(r.f.Calls(""))
	if err := r.p.UpdateMessage(ctx, mmChannel, "../users/me", "x"); err == nil {
		t.Error("patched a path")
	}
	if _, _, err := r.p.FindPost(ctx, "../../users/me?", "", "x", time.Now()); err == nil {
		t.Error("listed a path")
	}
	if _, _, err := r.p.FindPost(ctx, mmChannel, "x/../../y", "x", time.Now()); err == nil {
		t.Error("listed a thread path")
	}
	if _, err := r.p.ChannelMember(ctx, "a/b"); err == nil {
		t.Error("asked about a path")
	}
	if n := len(r.f.Calls("")) - before; n != 0 {
		t.Errorf("%d requests made", n)
	}
}
