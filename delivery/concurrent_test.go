package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
)

// When the test binary is re-executed with helperEnv set, it is a flush process, like two
// `chatops-executor flush` (or a flush and a cleanup) started by cron at the same moment.
const helperEnv = "DELIVERY_TEST_FLUSH_PROCESS"

func TestMain(m *testing.M) {
	if args := os.Getenv(helperEnv); args != "" {
		os.Exit(flushProcess(strings.Split(args, "|")))
	}
	os.Exit(m.Run())
}

func flushProcess(args []string) int {
	state, api, barrier := args[0], args[1], args[2]
	// Start together: report ready, wait for the starting shot.
	os.WriteFile(filepath.Join(barrier, fmt.Sprintf("ready-%d", os.Getpid())), nil, 0o600)
	for {
		if _, err := os.Stat(filepath.Join(barrier, "go")); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	p, err := NewSlack(testToken, api)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	reps, err := Open(state, p, Options{}).Flush(context.Background(), FlushOptions{Wait: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	json.NewEncoder(os.Stdout).Encode(reps)
	return 0
}

const (
	concJobs = 6
	concMsgs = 5 // per job: start, 3 thread replies, the final edit
)

// queueWhileDown fills the outbox with Slack down, the state `flush` finds after an outage.
func queueWhileDown(t *testing.T, r *rig) {
	r.f.Down()
	ctx := context.Background()
	for jn := 1; jn <= concJobs; jn++ {
		j := r.job(t, fmt.Sprint(jn))
		msgs := []Message{{Kind: KindPost, Name: "start", Channel: "C1", Text: fmt.Sprintf("job %d msg 1", jn)}}
		for i := 2; i < concMsgs; i++ {
			msgs = append(msgs, Message{Kind: KindPost, ThreadOf: "start", Channel: "C1", Text: fmt.Sprintf("job %d msg %d", jn, i)})
		}
		msgs = append(msgs, Message{Kind: KindUpdate, Target: "start", Channel: "C1", Text: fmt.Sprintf("job %d msg %d", jn, concMsgs)})
		if rep, err := j.Send(ctx, time.Millisecond, msgs...); err != nil || len(rep.Waiting) != concMsgs {
			t.Fatalf("queue job %d: %s %v", jn, rep, err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Slow Slack down a little so that senders really overlap.
	for _, m := range []string{"chat.postMessage", "chat.update"} {
		r.f.FailAlways(m, slacktest.Fault{Delay: 5 * time.Millisecond})
	}
	r.f.Up()
}

// assertExactlyOnceInOrder checks the channel: every message of every job exactly once, in
// the order queued, threaded under and editing its own job's start message.
func assertExactlyOnceInOrder(t *testing.T, r *rig) {
	t.Helper()
	seen := map[string]int{}
	byJob := map[int][]slacktest.Event{}
	for _, m := range r.f.Events() {
		seen[m.Text]++
		var jn, i int
		fmt.Sscanf(m.Text, "job %d msg %d", &jn, &i)
		byJob[jn] = append(byJob[jn], m)
	}
	for text, n := range seen {
		if n != 1 {
			t.Errorf("%q delivered %d times", text, n)
		}
	}
	for jn := 1; jn <= concJobs; jn++ {
		ms := byJob[jn]
		if len(ms) != concMsgs {
			t.Errorf("job %d: %d messages, want %d", jn, len(ms), concMsgs)
			continue
		}
		start := ms[0].TS
		for i, m := range ms {
			if want := fmt.Sprintf("job %d msg %d", jn, i+1); m.Text != want {
				t.Errorf("job %d position %d: %q, want %q (out of order)", jn, i+1, m.Text, want)
			}
			switch {
			case i == 0:
			case i == concMsgs-1 && (m.Method != "chat.update" || m.TS != start):
				t.Errorf("job %d final edit %+v does not edit %s", jn, m, start)
			case i < concMsgs-1 && m.ThreadTS != start:
				t.Errorf("job %d reply %+v not in thread %s", jn, m, start)
			}
		}
	}
	if st, err := r.ob.Status(); err != nil || len(st) != 0 {
		t.Errorf("outbox not empty after flushing: %+v %v", st, err)
	}
	left, _ := os.ReadDir(r.ob.Dir())
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if len(names) != 0 {
		t.Errorf("outbox still holds %v", names)
	}
}

func TestConcurrentFlushGoroutines(t *testing.T) {
	r := newRig(t)
	// The real clock: goroutines share it, and backoff never comes into play here.
	r.ob = Open(r.state, newPoster(t, r.f), Options{})
	queueWhileDown(t, r)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			// Each flusher opens the outbox itself, as a separate process would.
			ob := Open(r.state, newPoster(t, r.f), Options{})
			if _, err := ob.Flush(context.Background(), FlushOptions{Wait: true}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assertExactlyOnceInOrder(t, r)
}

func TestConcurrentFlushProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	r := newRig(t)
	r.ob = Open(r.state, newPoster(t, r.f), Options{})
	queueWhileDown(t, r)
	const procs = 4
	type result struct {
		out []byte
		err error
	}
	results := make([]result, procs)
	barrier := t.TempDir()
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+r.state+"|"+r.f.APIURL()+"|"+barrier)
			out, err := cmd.CombinedOutput()
			results[i] = result{out, err}
		})
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ready, _ := filepath.Glob(filepath.Join(barrier, "ready-*"))
		if len(ready) == procs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d flush processes started", len(ready), procs)
		}
	}
	os.WriteFile(filepath.Join(barrier, "go"), nil, 0o600)
	wg.Wait()
	delivered := 0
	for i, res := range results {
		if res.err != nil {
			t.Fatalf("flush process %d: %v\n%s", i, res.err, res.out)
		}
		var reps []Report
		if err := json.Unmarshal(res.out, &reps); err != nil {
			t.Fatalf("flush process %d output %q: %v", i, res.out, err)
		}
		for _, rep := range reps {
			delivered += len(rep.Delivered)
		}
	}
	if delivered != concJobs*concMsgs {
		t.Errorf("flush processes report %d deliveries, want %d", delivered, concJobs*concMsgs)
	}
	assertExactlyOnceInOrder(t, r)
}

// Two deliveries of the same job racing from the start: one waits for the other and then
// finds nothing left to do.
func TestConcurrentDeliverSameJob(t *testing.T) {
	r := newRig(t)
	r.ob = Open(r.state, newPoster(t, r.f), Options{})
	queueWhileDown(t, r)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total []int
	for range 4 {
		wg.Go(func() {
			j, _ := Open(r.state, newPoster(t, r.f), Options{}).Job("3")
			rep, err := j.Deliver(context.Background(), 0)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total = append(total, len(rep.Delivered))
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Ints(total)
	if fmt.Sprint(total) != fmt.Sprint([]int{0, 0, 0, concMsgs}) {
		t.Errorf("deliveries %v: exactly one should deliver all %d", total, concMsgs)
	}
}
