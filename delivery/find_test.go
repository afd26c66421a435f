package delivery

import (
	"context"
	"strings"
	"testing"
)

// A sender killed between "in flight" and Slack's answer: the outbox asks the channel
// instead of giving the post up as "unknown". Found, it is done with its ts (later edits
// and thread replies use it) and not sent again; absent, it is sent.
func TestInFlightPostSettledByTheChannel(t *testing.T) {
	for _, tt := range []struct {
		name    string
		arrived bool
		thread  bool
	}{
		{"arrived", true, false},
		{"never arrived", false, false},
		{"arrived in the thread", true, true},
		{"never arrived in the thread", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			j := r.job(t, "41")
			ctx := context.Background()
			if _, err := j.Send(ctx, 0, startMsg("C1")); err != nil {
				t.Fatal(err)
			}
			reply := Message{Kind: KindPost, Channel: "C1", Text: "the reply", Name: "final"}
			if tt.thread {
				reply.ThreadOf = "start"
			}
			edit := Message{Kind: KindUpdate, Target: "final", Channel: "C1", Text: "the reply, edited"}
			if tt.thread {
				edit = Message{Kind: KindPost, ThreadOf: "start", Channel: "C1", Text: "more"}
			}
			r.f.Down()
			if _, err := j.Send(ctx, 0, reply, edit); err != nil {
				t.Fatal(err)
			}
			r.f.Up()
			if tt.arrived {
				thread := ""
				if tt.thread {
					thread = r.f.Events()[0].TS
				}
				if _, err := newPoster(t, r.f).PostMessage(ctx, "C1", thread, "the reply"); err != nil {
					t.Fatal(err)
				}
			}
			setState(t, j, 2, StateInFlight)
			rep, err := j.Deliver(ctx, 0)
			if err != nil || !rep.Clear() || len(rep.Delivered) != 2 {
				t.Fatalf("deliver: %+v %v", rep, err)
			}
			n := 0
			for _, m := range r.f.Messages() {
				if m.History[0] == "the reply" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("the reply is in the channel %d times, want once:\n%s", n, r.f)
			}
			if !strings.Contains(rep.Delivered[0].Note, map[bool]string{true: "found in the channel", false: "sent again"}[tt.arrived]) {
				t.Errorf("note %q", rep.Delivered[0].Note)
			}
			if !tt.thread && len(r.f.Calls("chat.update")) != 1 {
				t.Errorf("the edit of the settled post did not find it:\n%s", r.f)
			}
		})
	}
}
