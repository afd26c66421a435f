package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/emulator"
)

// testdata/upgrade/<release>/state is a state_dir that release's binary left with Slack
// down: its outbox keeps every message of its jobs (see testdata/upgrade/README.md). An
// upgrade with replies waiting must deliver them: the current binary's flush sends each
// exactly once, in order, threaded as the old binary queued them.

func upgradeFixtures(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("testdata/upgrade/*/state")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no upgrade fixtures: %v", err)
	}
	return dirs
}

// fixtureTime matches the timestamps of queue files.
var fixtureTime = regexp.MustCompile(`"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)"`)

// installFixture copies a fixture state_dir to dst with the modes the executor gives it, as
// an upgrade finds it. The messages' times are moved forward together, the newest to a
// minute ago: the upgrade happens soon after the jobs, not after the outbox's age limit.
func installFixture(t *testing.T, src, dst string) {
	t.Helper()
	var newest time.Time
	files := map[string][]byte{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		files[rel] = data
		if strings.HasPrefix(rel, "outbox/") && strings.HasSuffix(rel, ".json") {
			for _, m := range fixtureTime.FindAllSubmatch(data, -1) {
				if ts, err := time.Parse(time.RFC3339Nano, string(m[1])); err == nil && ts.After(newest) {
					newest = ts
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	shift := time.Until(newest.Add(time.Minute)) * -1
	for rel, data := range files {
		if strings.HasPrefix(rel, "outbox/") && strings.HasSuffix(rel, ".json") {
			data = fixtureTime.ReplaceAllFunc(data, func(b []byte) []byte {
				ts, err := time.Parse(time.RFC3339Nano, string(b[1:len(b)-1]))
				if err != nil {
					return b
				}
				return []byte(strconv.Quote(ts.Add(shift).UTC().Format(time.RFC3339Nano)))
			})
		}
		p := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// queuedOp is what the test needs of a queued message, in any release's queue files.
type queuedOp struct {
	Seq      int    `json:"seq"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Channel  string `json:"channel"`
	Text     string `json:"text"`
	ThreadOf string `json:"thread_of"`
	Target   string `json:"target"`
	State    string `json:"state"`
}

// waitingOps reads what waits in a fixture's outbox, job by job, oldest job first.
func waitingOps(t *testing.T, stateDir string) map[string][]queuedOp {
	t.Helper()
	jobs := map[string][]queuedOp{}
	dirs, _ := filepath.Glob(filepath.Join(stateDir, "outbox", "*"))
	for _, d := range dirs {
		byseq := map[int]queuedOp{}
		batches, _ := filepath.Glob(filepath.Join(d, "batch-*.json"))
		for _, n := range batches {
			var b struct{ Ops []queuedOp }
			data, _ := os.ReadFile(n)
			if err := json.Unmarshal(data, &b); err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			for _, o := range b.Ops {
				byseq[o.Seq] = o
			}
		}
		ops, _ := filepath.Glob(filepath.Join(d, "op-*.json"))
		for _, n := range ops {
			var o queuedOp
			data, _ := os.ReadFile(n)
			if err := json.Unmarshal(data, &o); err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			byseq[o.Seq] = o
		}
		var list []queuedOp
		for _, o := range byseq {
			if o.State == "pending" || o.State == "in-flight" {
				list = append(list, o)
			}
		}
		sort.Slice(list, func(a, b int) bool { return list[a].Seq < list[b].Seq })
		jobs[filepath.Base(d)] = list
	}
	return jobs
}

func sortedJobs(jobs map[string][]queuedOp) []string {
	var ids []string
	for id := range jobs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool {
		x, _ := strconv.Atoi(ids[a])
		y, _ := strconv.Atoi(ids[b])
		return x < y
	})
	return ids
}

// assertDeliveredAsQueued checks that the events Slack accepted are the queued messages of
// the jobs, each once, in order, every reply in the thread of the post it named and every
// edit on the post it named.
func assertDeliveredAsQueued(t *testing.T, events []slacktest.Event, jobs map[string][]queuedOp, ids []string) {
	t.Helper()
	i := 0
	for _, id := range ids {
		ts := map[string]string{}
		for _, o := range jobs[id] {
			if i >= len(events) {
				t.Fatalf("job %s: #%d %s %q never reached Slack; events: %+v", id, o.Seq, o.Kind, o.Text, events)
			}
			e := events[i]
			i++
			switch o.Kind {
			case "post":
				want := ts[o.ThreadOf]
				if e.Method != "chat.postMessage" || e.Text != o.Text || e.Channel != o.Channel || e.ThreadTS != want {
					t.Errorf("job %s #%d: got %s %q in %s thread %q, want a post %q in %s thread %q", id, o.Seq, e.Method, e.Text, e.Channel, e.ThreadTS, o.Text, o.Channel, want)
				}
				if o.Name != "" {
					ts[o.Name] = e.TS
				}
			case "update":
				if e.Method != "chat.update" || e.Text != o.Text || e.TS != ts[o.Target] || e.TS == "" {
					t.Errorf("job %s #%d: got %s %q on %q, want an edit %q of %q (%s)", id, o.Seq, e.Method, e.Text, e.TS, o.Text, o.Target, ts[o.Target])
				}
			default:
				t.Fatalf("job %s #%d: the fixture has a %s; teach this test about it", id, o.Seq, o.Kind)
			}
		}
	}
	if i != len(events) {
		t.Errorf("Slack got %d messages, %d were queued: %+v", len(events), i, events[i:])
	}
}

func (h *host) flush(args ...string) (string, error) {
	h.t.Helper()
	cmd := exec.Command(binary, append([]string{"--config", h.config, "flush"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SLACK_BOT_TOKEN=" + slackToken}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestUpgradeDeliversWaitingReplies(t *testing.T) {
	for _, src := range upgradeFixtures(t) {
		release := filepath.Base(filepath.Dir(src))
		t.Run(release, func(t *testing.T) {
			h := newHost(t, allowAll)
			state := filepath.Join(h.dir, "state")
			installFixture(t, src, state)
			jobs := waitingOps(t, state)
			ids := sortedJobs(jobs)
			n := 0
			for _, id := range ids {
				n += len(jobs[id])
			}
			if len(ids) < 2 || n < 6 {
				t.Fatalf("the fixture holds %d messages of %d jobs: not what README.md says it is", n, len(ids))
			}
			if out, err := h.flush("--status"); err == nil || !strings.Contains(out, "waiting") {
				t.Fatalf("flush --status before the flush: %v\n%s", err, out)
			}
			out, err := h.flush()
			if err != nil || !strings.Contains(out, "outbox is empty") {
				t.Fatalf("flush: %v\n%s", err, out)
			}
			assertDeliveredAsQueued(t, h.slack.Events(), jobs, ids)
			// Threaded as before: each job's start message carries its final status and,
			// under it, its reply.
			for i, start := range channel(t, h.slack, len(ids)) {
				if !strings.HasPrefix(start.Text, ":white_check_mark:") || !strings.Contains(start.Text, "job #"+ids[i]) {
					t.Errorf("job %s: start message %q", ids[i], start.Text)
				}
				if th := h.slack.Thread("C0123ABCD", start.TS); len(th) != 1 || !strings.HasPrefix(th[0].Text, "```") {
					t.Errorf("job %s: thread %+v", ids[i], th)
				}
			}
			again, err := h.flush()
			if err != nil || !strings.Contains(again, "outbox is empty") || len(h.slack.Events()) != n {
				t.Errorf("a second flush: %v, %d events\n%s", err, len(h.slack.Events()), again)
			}
			if ents, _ := os.ReadDir(filepath.Join(state, "outbox")); len(ents) != 0 {
				t.Errorf("the outbox keeps %v after delivery", ents)
			}
			assertNoSecret(t, h.slack)
		})
	}
}

// After a downgrade, what a newer binary left — a queue file, a job's state — is neither
// delivered nor removed, and flush, flush --status and a job's runner log say why; the rest
// is delivered as usual.
func TestDowngradeLeavesNewerFilesAlone(t *testing.T) {
	src := upgradeFixtures(t)[0]
	h := newHost(t, allowAll)
	state := filepath.Join(h.dir, "state")
	installFixture(t, src, state)
	jobs := waitingOps(t, state)
	ids := sortedJobs(jobs)
	held, rest := ids[0], ids[1:]
	newerOp := filepath.Join(state, "outbox", held, "op-000002.json")
	data, err := os.ReadFile(newerOp)
	if err != nil {
		t.Fatal(err)
	}
	data = append([]byte(`{"format": 99, "future": true,`), bytes.TrimPrefix(bytes.TrimSpace(data), []byte("{"))...)
	if err := os.WriteFile(newerOp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	newerState := filepath.Join(state, "9001")
	if err := os.MkdirAll(newerState, 0o700); err != nil {
		t.Fatal(err)
	}
	newerJob := []byte(`{"format": 99, "job_id": 9001, "name": "deploy", "prepared_at": "2026-01-01T00:00:00Z"}` + "\n")
	if err := os.WriteFile(filepath.Join(newerState, "job.json"), newerJob, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-24 * time.Hour)
	os.Chtimes(newerState, old, old)

	out, err := h.flush()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("flush with newer files: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{"job " + held + ": left alone", "op-000002.json written by a newer chatops-executor (queue format 99",
		"upgrade, or discard the job with 'chatops-executor flush --discard --job " + held + "'",
		"job 9001: left alone", "job.json written by a newer chatops-executor (state format 99"} {
		if !strings.Contains(out, want) {
			t.Errorf("flush does not say %q:\n%s", want, out)
		}
	}
	delete(jobs, held)
	assertDeliveredAsQueued(t, h.slack.Events(), jobs, rest)

	status, err := h.flush("--status")
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(status, "job "+held+": left alone") ||
		!strings.Contains(status, "job 9001: left alone: ") || !strings.Contains(status, "written by a newer chatops-executor") {
		t.Errorf("flush --status: %v\n%s", err, status)
	}

	// A job's cleanup sweeps the state and flushes the outbox: its runner log says it too.
	res := h.run(context.Background(), emulator.Job{Response: response(t, 7100, nil), Script: []string{chatReply("fine")}})
	if res.State != "success" {
		t.Fatalf("job: %s %v\n%s", res.State, res.Err, res.RunnerLog)
	}
	for _, want := range []string{"job 9001: left alone", "chat: left alone: outbox: job " + held + ": op-000002.json written by a newer chatops-executor"} {
		if !strings.Contains(string(res.RunnerLog), want) {
			t.Errorf("runner log does not say %q:\n%s", want, res.RunnerLog)
		}
	}
	if got, _ := os.ReadFile(newerOp); !bytes.Equal(got, data) {
		t.Errorf("the newer queue file changed:\n%s", got)
	}
	if got, _ := os.ReadFile(filepath.Join(newerState, "job.json")); !bytes.Equal(got, newerJob) {
		t.Errorf("the newer job state changed or is gone:\n%s", got)
	}
	for _, e := range h.slack.Events() {
		if strings.Contains(e.Text, "job #"+held) {
			t.Errorf("a message of the held job was sent: %+v", e)
		}
	}
}
