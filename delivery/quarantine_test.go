package delivery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// failingReader gives some bytes and then fails, as a reply file on a dying disk would.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("input/output error")
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	f.n -= k
	return k, nil
}

// A reply is queued whole or not at all: an upload whose content cannot be read must not
// leave the status update before it queued without it (cleanup would then deliver the
// final status and never the output).
func TestEnqueueIsAllOrNothing(t *testing.T) {
	r := newRig(t)
	j := r.job(t, "31")
	if err := j.Enqueue(startMsg("C1")); err != nil {
		t.Fatal(err)
	}
	msgs := append(replyMsgs("C1"), Message{Kind: KindUpload, ThreadOf: "start", Channel: "C1",
		Filename: "out.txt", Content: &failingReader{n: 100}})
	if err := j.Enqueue(msgs...); err == nil {
		t.Fatal("enqueue with an unreadable upload succeeded")
	}
	ops, err := j.read()
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 1 || ops[0].Name != "start" {
		t.Fatalf("after a failed enqueue the queue holds %d ops, want only the start message: %+v", len(ops), ops)
	}
	// And one call is one file: nothing of it is visible before all of it is.
	batches, _ := filepath.Glob(filepath.Join(j.dir, "batch-*.json"))
	if len(batches) != 1 {
		t.Errorf("batch files %v, want one", batches)
	}
}

// One unreadable queue file is set aside; the job's other messages are delivered, and the
// report says what was set aside until an admin discards the job.
func TestCorruptOpIsQuarantined(t *testing.T) {
	for _, tt := range []struct {
		name    string
		content string
		why     string
	}{
		{"empty", "", "empty"},
		{"garbled", `{"seq": 1, "kind": "po`, "not a valid queue file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.f.Down()
			j := r.job(t, "32")
			ctx := context.Background()
			if _, err := j.Send(ctx, time.Second, startMsg("C1")); err != nil {
				t.Fatal(err)
			}
			if err := j.Enqueue(Message{Kind: KindPost, Channel: "C1", Text: "the reply"}); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(j.opPath(1), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			// The start message's batch entry must not come back in its place: the op
			// file superseded it and is now quarantined.
			os.Remove(j.batchPath(1))
			r.f.Up()
			rep, err := j.Deliver(ctx, 0)
			if err != nil {
				t.Fatalf("deliver: %v", err)
			}
			if len(rep.Delivered) != 1 || r.f.Events()[0].Text != "the reply" {
				t.Fatalf("delivered %+v, events %+v", rep.Delivered, r.f.Events())
			}
			if len(rep.Quarantined) != 1 || rep.Quarantined[0].File != "op-000001.json" || !strings.Contains(rep.Quarantined[0].Why, tt.why) {
				t.Fatalf("quarantined %+v", rep.Quarantined)
			}
			if rep.Clear() || !strings.Contains(rep.String(), "set aside") {
				t.Errorf("report %q is clear with a quarantined file", rep.String())
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			reps, err := r.ob.Status()
			if err != nil || len(reps) != 1 || len(reps[0].Quarantined) != 1 {
				t.Fatalf("status after close: %+v %v", reps, err)
			}
			if _, err := os.Stat(filepath.Join(j.dir, quarantineDir, "op-000001.json")); err != nil {
				t.Errorf("the quarantined file is gone: %v", err)
			}
		})
	}
}
