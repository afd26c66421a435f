package delivery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
)

type rig struct {
	f     *slacktest.Server
	clk   *fakeClock
	ob    *Outbox
	state string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	f := slacktest.New(t, testToken)
	clk := newFakeClock()
	state := t.TempDir()
	ob := Open(state, newPoster(t, f), Options{Clock: clk, AttemptTimeout: 300 * time.Millisecond,
		Jitter: func(d time.Duration) time.Duration { return 0 }})
	return &rig{f: f, clk: clk, ob: ob, state: state}
}

func (r *rig) job(t *testing.T, id string) *Job {
	t.Helper()
	j, err := r.ob.Job(id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// replyMsgs is what cleanup typically queues after prepare's start message.
func replyMsgs(channel string) []Message {
	return []Message{
		{Kind: KindUpdate, Target: "start", Channel: channel, Text: ":white_check_mark: succeeded"},
		{Kind: KindPost, ThreadOf: "start", Channel: channel, Text: "```output```"},
	}
}

func startMsg(channel string) Message {
	return Message{Kind: KindPost, Name: "start", Channel: channel, Text: ":hourglass: running"}
}

func TestSendDeliversInOrderAndRemovesClosedJob(t *testing.T) {
	r := newRig(t)
	j := r.job(t, "101")
	ctx := context.Background()
	rep, err := j.Send(ctx, 0, startMsg("C1"))
	if err != nil || len(rep.Delivered) != 1 || !rep.Clear() {
		t.Fatalf("start: %+v %v", rep, err)
	}
	if err := j.Progress(ctx, "start", "running 1m"); err != nil {
		t.Fatal(err)
	}
	rep, err = j.Send(ctx, 0, replyMsgs("C1")...)
	if err != nil || len(rep.Delivered) != 2 || !rep.Clear() {
		t.Fatalf("reply: %+v %v", rep, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.state, "outbox", "101")); !os.IsNotExist(err) {
		t.Errorf("delivered and closed job still in the outbox: %v", err)
	}
	msgs := r.f.Events()
	want := []string{"chat.postMessage", "chat.update", "chat.update", "chat.postMessage"}
	if len(msgs) != len(want) {
		t.Fatalf("effects %+v", msgs)
	}
	start := msgs[0].TS
	for i, m := range msgs {
		if m.Method != want[i] {
			t.Errorf("effect %d: %s, want %s", i, m.Method, want[i])
		}
	}
	if msgs[1].Text != "running 1m" || msgs[2].TS != start || msgs[3].ThreadTS != start {
		t.Errorf("progress/update/thread do not refer to the start message %s: %+v", start, msgs)
	}
}

func TestRateLimitHonoured(t *testing.T) {
	r := newRig(t)
	r.f.Fail("chat.postMessage", slacktest.Fault{Status: 429, RetryAfter: "7"})
	rep, err := r.job(t, "1").Send(context.Background(), 0, startMsg("C1"))
	if err != nil || len(rep.Delivered) != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	if got := r.clk.slept(); len(got) != 1 || got[0] != 7*time.Second {
		t.Errorf("slept %v, want exactly Slack's Retry-After [7s]", got)
	}
	if n := len(r.f.Calls("chat.postMessage")); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}

// A Retry-After longer than the budget is not waited out in the stage: the message waits in
// the outbox, and the report says why.
func TestRateLimitBeyondBudgetWaits(t *testing.T) {
	r := newRig(t)
	r.f.Fail("chat.postMessage", slacktest.Fault{Status: 429, RetryAfter: "120"})
	rep, err := r.job(t, "1").Send(context.Background(), 10*time.Second, startMsg("C1"))
	if err != nil || len(rep.Waiting) != 1 || !strings.Contains(rep.String(), "retry after 2m0s") {
		t.Fatalf("%s %v", rep, err)
	}
	if len(r.clk.slept()) != 0 {
		t.Errorf("slept %v past the budget", r.clk.slept())
	}
}

func TestServerErrorsRetriedWithBackoff(t *testing.T) {
	r := newRig(t)
	r.f.Fail("chat.postMessage", slacktest.Fault{Status: 500}, slacktest.Fault{Status: 503}, slacktest.Fault{Status: 500})
	rep, err := r.job(t, "1").Send(context.Background(), 0, startMsg("C1"))
	if err != nil || len(rep.Delivered) != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	// Jitter is 0 in the rig, so each wait is half the doubling delay.
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}
	if got := r.clk.slept(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("backoff %v, want %v", got, want)
	}
	if n := len(r.f.Events()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestPermanentErrorNotRetried(t *testing.T) {
	r := newRig(t)
	r.f.Fail("chat.postMessage", slacktest.Fault{Error: "not_in_channel"})
	j := r.job(t, "1")
	rep, err := j.Send(context.Background(), 0, startMsg("C1"))
	if err != nil || len(rep.Failed) != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	if n := len(r.f.Calls("chat.postMessage")); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
	if s := rep.String(); !strings.Contains(s, "not_in_channel") || !strings.Contains(s, "invite the bot") {
		t.Errorf("report %q lacks the code and the hint", s)
	}
	// The failure does not hold up the rest: the edit of the failed start message degrades
	// to a new post, the thread reply to a channel post.
	rep, err = j.Send(context.Background(), 0, replyMsgs("C1")...)
	if err != nil || len(rep.Delivered) != 2 || len(rep.Failed) != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	msgs := r.f.Events()
	if len(msgs) != 2 || msgs[0].Method != "chat.postMessage" || msgs[1].ThreadTS != "" {
		t.Errorf("degraded delivery: %+v", msgs)
	}
	if !strings.Contains(rep.Delivered[0].Note, "posted as a new message") {
		t.Errorf("note %q", rep.Delivered[0].Note)
	}
	// Closed with a failure in it: kept for the admin.
	j.Close()
	if _, err := os.Stat(j.dir); err != nil {
		t.Errorf("a job with a failed message was removed: %v", err)
	}
}

// A post that reached Slack but whose answer did not come back is not sent again; an edit
// (idempotent) is.
func TestUncertainPostNotRepeatedUpdateIs(t *testing.T) {
	r := newRig(t)
	r.f.Fail("chat.postMessage", slacktest.Fault{Delay: 2 * time.Second})
	r.f.Fail("chat.update", slacktest.Fault{Delay: 2 * time.Second})
	j := r.job(t, "1")
	rep, err := j.Send(context.Background(), 0, startMsg("C1"))
	if err != nil || len(rep.Failed) != 1 || rep.Failed[0].State != StateUnknown {
		t.Fatalf("%+v %v", rep, err)
	}
	if n := len(r.f.Calls("chat.postMessage")); n != 1 {
		t.Errorf("uncertain post sent %d times, want 1", n)
	}

	// A second job: its start arrives, its final edit is slow once and is retried.
	j2 := r.job(t, "2")
	if _, err := j2.Send(context.Background(), 0, startMsg("C1")); err != nil {
		t.Fatal(err)
	}
	rep, err = j2.Send(context.Background(), 0, replyMsgs("C1")[0])
	if err != nil || len(rep.Delivered) != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	if n := len(r.f.Calls("chat.update")); n != 2 {
		t.Errorf("update tried %d times, want 2", n)
	}
}

func TestSlackDownThenFlushDeliversOnce(t *testing.T) {
	r := newRig(t)
	r.f.Down()
	j := r.job(t, "7")
	ctx := context.Background()
	data := bytes.Repeat([]byte("line of output\n"), 5<<20/15)
	rep, err := j.Send(ctx, 5*time.Second, startMsg("C1"))
	if err != nil || len(rep.Waiting) != 1 || !strings.Contains(rep.String(), "Slack unreachable") {
		t.Fatalf("%s %v", rep, err)
	}
	msgs := append(replyMsgs("C1"), Message{Kind: KindUpload, ThreadOf: "start", Channel: "C1", Filename: "output.txt",
		Text: "full output", Content: bytes.NewReader(data)})
	rep, err = j.Send(ctx, 5*time.Second, msgs...)
	if err != nil || len(rep.Waiting) != 4 {
		t.Fatalf("%s %v", rep, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	assertNoToken(t, r.state)

	r.f.Up()
	reps, err := r.ob.Flush(ctx, FlushOptions{Wait: true})
	if err != nil || len(reps) != 1 || len(reps[0].Delivered) != 4 || !reps[0].Clear() {
		t.Fatalf("flush: %+v %v", reps, err)
	}
	reps, err = r.ob.Flush(ctx, FlushOptions{Wait: true})
	if err != nil || len(reps) != 0 {
		t.Fatalf("second flush: %+v %v", reps, err)
	}
	got := r.f.Events()
	if len(got) != 4 {
		t.Fatalf("effects %+v", got)
	}
	start := got[0].TS
	if got[0].Text != ":hourglass: running" || got[1].Method != "chat.update" || got[1].TS != start ||
		got[2].ThreadTS != start || got[3].ThreadTS != start || !bytes.Equal(fileContent(got[3]), data) {
		t.Errorf("out of order or detached: %+v", got)
	}
	if _, err := os.Stat(j.dir); !os.IsNotExist(err) {
		t.Errorf("flushed closed job not removed: %v", err)
	}
}

// A sender killed between "in flight" and Slack's answer leaves the op in flight. When the
// channel cannot be read (no history scope), the next sender must not post it again (it
// may be in the channel) but must re-send an edit. (With the scope, see find_test.go.)
func TestInFlightAfterCrash(t *testing.T) {
	r := newRig(t)
	r.f.FailAlways("conversations.history", slacktest.SlackError("missing_scope"))
	r.f.Down()
	j := r.job(t, "9")
	ctx := context.Background()
	j.Send(ctx, time.Second, startMsg("C1"))
	j.Send(ctx, time.Second, replyMsgs("C1")...)
	setState(t, j, 1, StateInFlight)
	r.f.Up()

	rep, err := j.Deliver(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != 1 || rep.Failed[0].State != StateUnknown || !strings.Contains(rep.Failed[0].Err, "stopped before") {
		t.Fatalf("report %+v", rep)
	}
	if n := len(r.f.Calls("chat.postMessage")); n != 2 { // the update degraded to a post, and the thread reply
		t.Errorf("%d posts, want 2 (never the in-flight start)", n)
	}
	for _, m := range r.f.Events() {
		if m.Text == ":hourglass: running" {
			t.Errorf("in-flight post was sent again")
		}
	}

	// An in-flight edit is simply sent again.
	r2 := newRig(t)
	j2 := r2.job(t, "10")
	j2.Send(ctx, 0, startMsg("C1"))
	r2.f.Down()
	j2.Send(ctx, time.Second, replyMsgs("C1")[0])
	setState(t, j2, 2, StateInFlight)
	r2.f.Up()
	rep, err = j2.Deliver(ctx, 0)
	if err != nil || len(rep.Delivered) != 1 || !rep.Clear() {
		t.Fatalf("in-flight edit: %+v %v", rep, err)
	}

	// The admin decides to risk it: --retry-failed.
	n, err := r.ob.Requeue(ctx, "9")
	if err != nil || n != 1 {
		t.Fatalf("requeue: %d %v", n, err)
	}
	rep, err = j.Deliver(ctx, 0)
	if err != nil || len(rep.Delivered) != 1 || !rep.Clear() {
		t.Fatalf("after requeue: %+v %v", rep, err)
	}
}

func setState(t *testing.T, j *Job, seq int, s State) {
	t.Helper()
	data, err := os.ReadFile(j.opPath(seq))
	if err != nil {
		t.Fatal(err)
	}
	var o op
	json.Unmarshal(data, &o)
	o.State = s
	if err := j.write(&o); err != nil {
		t.Fatal(err)
	}
}

func TestExpiredIsReportedAndKept(t *testing.T) {
	r := newRig(t)
	r.f.Down()
	j := r.job(t, "3")
	ctx := context.Background()
	j.Send(ctx, time.Second, startMsg("C1"))
	r.clk.advance(73 * time.Hour)
	r.f.Up()
	reps, err := r.ob.Flush(ctx, FlushOptions{Wait: true})
	if err != nil || len(reps) != 1 || len(reps[0].Failed) != 1 || reps[0].Failed[0].State != StateExpired {
		t.Fatalf("%+v %v", reps, err)
	}
	if len(r.f.Events()) != 0 {
		t.Error("expired message was sent")
	}
	st, _ := r.ob.Status()
	if len(st) != 1 {
		t.Errorf("expired job not in Status: %+v", st)
	}
	if _, err := r.ob.Discard(ctx, "3"); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.ob.Status(); len(st) != 0 {
		t.Errorf("discarded job still there: %+v", st)
	}
}

func TestProgressNeverOvertakesTheQueue(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	j := r.job(t, "4")
	// No start message yet: nothing to edit.
	if err := j.Progress(ctx, "start", "1m"); err != nil {
		t.Fatal(err)
	}
	r.f.Down()
	j.Send(ctx, time.Second, startMsg("C1"))
	// Slack down: the edit is dropped, not queued.
	j.Progress(ctx, "start", "2m")
	r.f.Up()
	// The start message is still waiting: an edit must not run before it.
	if err := j.Progress(ctx, "start", "3m"); err != nil {
		t.Fatal(err)
	}
	if len(r.f.Events()) != 0 {
		t.Fatalf("progress overtook the queue: %+v", r.f.Events())
	}
	j.Deliver(ctx, 0)
	if err := j.Progress(ctx, "start", "4m"); err != nil {
		t.Fatal(err)
	}
	got := r.f.Events()
	if len(got) != 2 || got[1].Text != "4m" {
		t.Errorf("effects %+v", got)
	}
	st, _ := j.Status()
	if !st.Clear() {
		t.Errorf("progress left something queued: %+v", st)
	}
}

func TestEnqueueValidates(t *testing.T) {
	r := newRig(t)
	j := r.job(t, "5")
	for _, m := range []Message{
		{Kind: KindUpdate, Target: "start", Channel: "C1", Text: "x"},
		{Kind: KindPost, ThreadOf: "nope", Channel: "C1", Text: "x"},
		{Kind: KindPost, Text: "no channel"},
		{Kind: KindEphemeral, Channel: "C1", Text: "no user"},
		{Kind: KindUpload, Channel: "C1", Filename: "a", Content: strings.NewReader("")},
		{Kind: "shout", Channel: "C1", Text: "x"},
	} {
		if err := j.Enqueue(m); err == nil {
			t.Errorf("Enqueue(%+v) succeeded", m)
		}
	}
	// A bad message rejects its whole batch.
	if err := j.Enqueue(startMsg("C1"), Message{Kind: KindPost, Text: "no channel"}); err == nil || j.Has("start") {
		t.Errorf("half a batch queued: %v", err)
	}
	if err := j.Enqueue(startMsg("C1")); err != nil {
		t.Fatal(err)
	}
	if err := j.Enqueue(startMsg("C1")); err == nil {
		t.Error("duplicate name accepted")
	}
	if !j.Has("start") || j.Has("other") {
		t.Error("Has")
	}
	for _, id := range []string{"", "../x", "a/b", ".hidden"} {
		if _, err := r.ob.Job(id); err == nil {
			t.Errorf("job id %q accepted", id)
		}
	}
}

func TestOutboxFilesArePrivate(t *testing.T) {
	r := newRig(t)
	r.f.Down()
	j := r.job(t, "6")
	j.Send(context.Background(), time.Second, startMsg("C1"),
		Message{Kind: KindUpload, Channel: "C1", Filename: "o.txt", Content: strings.NewReader("data")})
	filepath.WalkDir(filepath.Join(r.state, "outbox"), func(p string, d fs.DirEntry, err error) error {
		fi, _ := d.Info()
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		if strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// Everything an admin or a log can see — errors, reports, outbox files — is free of the
// token, whatever way Slack failed.
func TestTokenNeverLeaks(t *testing.T) {
	ctx := context.Background()
	for _, ft := range []slacktest.Fault{
		{Status: 500}, {Status: 429, RetryAfter: "1"}, {Error: "invalid_auth"},
		{Error: "weird " + testToken}, {Delay: 2 * time.Second},
	} {
		r := newRig(t)
		r.f.FailAlways("chat.postMessage", ft)
		j := r.job(t, "1")
		rep, err := j.Send(ctx, 3*time.Second, startMsg("C1"))
		text := fmt.Sprintf("%v %s %+v", err, rep, rep)
		if strings.Contains(text, testToken) || strings.Contains(text, "S3CR3T") {
			t.Errorf("fault %+v: report leaks the token: %s", ft, text)
		}
		assertNoToken(t, r.state)
	}
	r := newRig(t)
	r.f.Down()
	rep, err := r.job(t, "1").Send(ctx, time.Second, startMsg("C1"))
	if text := fmt.Sprintf("%v %+v", err, rep); strings.Contains(text, "S3CR3T") {
		t.Errorf("refused: %s", text)
	}
	assertNoToken(t, r.state)
}

func assertNoToken(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(p)
		if bytes.Contains(data, []byte("S3CR3T")) {
			t.Errorf("%s contains the token", p)
		}
		return nil
	})
}

func TestUpload5MBArrivesWhole(t *testing.T) {
	r := newRig(t)
	data := make([]byte, 5<<20)
	rand.NewChaCha8([32]byte{7}).Read(data)
	j := r.job(t, "8")
	ctx := context.Background()
	// The upload step fails once: the whole file goes again, and only once is it shared.
	r.f.Fail(slacktest.UploadMethod, slacktest.Fault{Status: 500})
	rep, err := j.Send(ctx, 0, startMsg("C1"),
		Message{Kind: KindUpload, ThreadOf: "start", Channel: "C1", Filename: "output.txt", Title: "job 8 output",
			Text: "preview", Content: bytes.NewReader(data)})
	if err != nil || len(rep.Delivered) != 2 {
		t.Fatalf("%+v %v", rep, err)
	}
	msgs := r.f.Events()
	if len(msgs) != 2 || sha256.Sum256(fileContent(msgs[1])) != sha256.Sum256(data) || msgs[1].ThreadTS != msgs[0].TS {
		t.Errorf("upload arrived as %d bytes in thread %q", len(fileContent(msgs[len(msgs)-1])), msgs[len(msgs)-1].ThreadTS)
	}
	if n := len(r.f.Calls("files.completeUploadExternal")); n != 1 {
		t.Errorf("shared %d times", n)
	}
}

// A start message someone deleted: the final status is posted instead of lost.
func TestUpdateOfDeletedMessageBecomesPost(t *testing.T) {
	r := newRig(t)
	j := r.job(t, "11")
	ctx := context.Background()
	j.Send(ctx, 0, startMsg("C1"))
	r.f.Fail("chat.update", slacktest.Fault{Error: "message_not_found"})
	rep, err := j.Send(ctx, 0, replyMsgs("C1")...)
	if err != nil || len(rep.Delivered) != 2 || !rep.Clear() {
		t.Fatalf("%+v %v", rep, err)
	}
	if !strings.Contains(rep.Delivered[0].Note, "deleted") {
		t.Errorf("note %q", rep.Delivered[0].Note)
	}
	msgs := r.f.Events()
	if len(msgs) != 3 || msgs[1].Method != "chat.postMessage" || msgs[1].Text != ":white_check_mark: succeeded" {
		t.Errorf("effects %+v", msgs)
	}
}
