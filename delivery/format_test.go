package delivery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Every queue file says its format, as queued and as delivery rewrites it: Slack's the
// format every earlier binary reads (1), Mattermost's the one that says "backend" (2).
func TestQueueFilesCarryTheirFormat(t *testing.T) {
	r := newRig(t)
	mm := newMMRig(t)
	r.ob.Use(BackendMattermost, mm.p)
	for _, c := range []struct {
		job     string
		msg     Message
		format  int
		backend string
	}{
		{"41", startMsg("C1"), 1, ""},
		{"43", Message{Kind: KindPost, Name: "start", Channel: mmChannel, Backend: BackendMattermost, Text: "hi"}, 2, `"backend":"mattermost"`},
	} {
		j := r.job(t, c.job)
		if _, err := j.Send(context.Background(), 0, c.msg); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{j.batchPath(1), j.opPath(1)} {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if f, err := fileFormat(data); err != nil || f != c.format || !strings.Contains(string(data), `"format"`) {
				t.Errorf("%s: format %d %v, want a format field of %d:\n%s", filepath.Base(p), f, err, c.format, data)
			}
			compact := strings.ReplaceAll(string(data), `": "`, `":"`)
			if c.backend == "" && strings.Contains(compact, `"backend"`) || !strings.Contains(compact, c.backend) {
				t.Errorf("%s: want backend %q recorded:\n%s", filepath.Base(p), c.backend, data)
			}
		}
	}
}

// A file without a format field is the last release's: read and delivered as such.
func TestQueueFileWithoutFormatIsDelivered(t *testing.T) {
	r := newRig(t)
	j := r.job(t, "42")
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := r.clk.Now().UTC().Format(time.RFC3339Nano)
	legacy := fmt.Sprintf(`{"seq": 1, "kind": "post", "name": "start", "channel": "C1", "text": "old start",
		"queued": %q, "since": %q, "state": "pending", "attempts": 3}`, now, now)
	if err := os.WriteFile(j.opPath(1), []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := j.Deliver(context.Background(), 0)
	if err != nil || len(rep.Delivered) != 1 || rep.Newer != nil {
		t.Fatalf("deliver: %+v %v", rep, err)
	}
	if ev := r.f.Events(); len(ev) != 1 || ev[0].Text != "old start" {
		t.Fatalf("events %+v", ev)
	}
}

// After a downgrade, a job with a file of a newer format is left alone whole: nothing of it
// is sent (its order would break), no file is moved, rewritten or removed, and every report
// says why, until an upgrade delivers it or an admin discards it.
func TestNewerFormatIsLeftAloneAndReported(t *testing.T) {
	r := newRig(t)
	j := r.job(t, "43")
	ctx := context.Background()
	if err := j.Enqueue(startMsg("C1")); err != nil {
		t.Fatal(err)
	}
	newer := []byte(`{"format": ` + strconv.Itoa(queueFormat+1) + `, "seq": 2, "kind": "post", "channel": "C1", "text": "from the future", "blocks": [{"type": "x"}]}` + "\n")
	if err := os.WriteFile(j.opPath(2), newer, 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, j.dir)

	rep, err := j.Deliver(ctx, 0)
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	if len(r.f.Events()) != 0 || len(rep.Delivered) != 0 {
		t.Fatalf("delivered from a job with a newer file: %+v, events %+v", rep, r.f.Events())
	}
	if rep.Clear() || !errors.Is(rep.Newer, ErrNewerFormat) {
		t.Fatalf("report %+v does not say the job is left alone", rep)
	}
	for _, want := range []string{"op-000002.json written by a newer chatops-executor", "format " + strconv.Itoa(queueFormat+1), "upgrade, or discard", "--discard --job 43"} {
		if !strings.Contains(rep.String(), want) {
			t.Errorf("report %q does not say %q", rep.String(), want)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	reps, err := r.ob.Flush(ctx, FlushOptions{})
	if err != nil || len(reps) != 1 || reps[0].Newer == nil {
		t.Fatalf("flush: %+v %v", reps, err)
	}
	reps, err = r.ob.Status()
	if err != nil || len(reps) != 1 || reps[0].Newer == nil {
		t.Fatalf("status: %+v %v", reps, err)
	}
	if err := j.Enqueue(Message{Kind: KindPost, Channel: "C1", Text: "more"}); !errors.Is(err, ErrNewerFormat) {
		t.Errorf("enqueue into a job with a newer file: %v, want ErrNewerFormat", err)
	}
	after := snapshot(t, j.dir)
	for name, data := range before {
		if after[name] != data {
			t.Errorf("%s changed:\n%s\nnow:\n%s", name, data, after[name])
		}
	}
	if _, err := os.Stat(filepath.Join(j.dir, quarantineDir)); err == nil {
		t.Error("a newer file was quarantined; it must stay where its binary looks for it")
	}
	if len(r.f.Events()) != 0 {
		t.Errorf("events %+v", r.f.Events())
	}
}

// A file whose format field is not a positive number is not a queue file.
func TestInvalidFormatIsQuarantined(t *testing.T) {
	r := newRig(t)
	j := r.job(t, "44")
	if err := j.Enqueue(startMsg("C1")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(j.batchPath(1), []byte(`{"format": "two", "ops": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := j.Status()
	if err != nil || len(rep.Quarantined) != 1 || rep.Newer != nil {
		t.Fatalf("status %+v %v", rep, err)
	}
}

// snapshot reads every regular file under dir, by its path relative to dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
