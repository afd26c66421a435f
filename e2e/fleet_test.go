package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/emulator"
)

// slackLimits are Slack's documented limits as the fake enforces them: chat.update is Tier 3
// (50 a minute), chat.postMessage about one a second per channel, chat.postEphemeral Tier 4.
// The bursts are what we allow Slack to tolerate; the executor's budget never exceeds them.
func slackLimits(s *slacktest.Server) {
	s.SetLimit("chat.update", slacktest.Limit{PerMinute: 50, Burst: 10})
	s.SetLimit("chat.postMessage", slacktest.Limit{PerMinute: 60, Burst: 3, PerChannel: true})
	s.SetLimit("chat.postEphemeral", slacktest.Limit{PerMinute: 100, Burst: 20})
}

// fleetFigures is what one busy run cost.
type fleetFigures struct {
	throttled   int           // 429s the fake answered
	updates     int           // chat.update calls Slack accepted (progress and final)
	lastFinal   time.Duration // from the start until the last final reply arrived
	flushRounds int           // flush runs needed after the jobs ended
	resent      int           // final edits sent again after their answer was lost
}

// busyHost runs n chat jobs at once on one host against a rate-limited fake Slack, with
// progress edits every second, then runs flush until the outbox is empty, and checks that
// every job's final status and reply arrived exactly once.
func busyHost(t *testing.T, n int, rateShare string) fleetFigures {
	t.Helper()
	h := newHost(t, allowAll+"[slack]\nprogress_interval = \"1s\"\nrate_share = "+rateShare+"\napi_url = \"PLACEHOLDER\"\n")
	cfg, _ := os.ReadFile(h.config)
	_ = os.WriteFile(h.config, []byte(strings.Replace(string(cfg), "PLACEHOLDER", h.slack.APIURL(), 1)), 0o600)
	slackLimits(h.slack)

	start := time.Now()
	var wg sync.WaitGroup
	results := make([]*emulator.Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := int64(5000 + i)
			results[i], errs[i] = h.runner.Run(context.Background(), emulator.Job{
				Response: response(t, id, map[string]string{"CHAT_CHANNEL": fmt.Sprintf("C0FLEET%03d", i)}),
				Script:   []string{"for s in 1 2 3 4 5 6; do echo step $s; sleep 0.5; done", chatReply("answer of job $CI_JOB_ID")},
			})
		}(i)
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("job %d: %v", 5000+i, errs[i])
		}
		if results[i].State != "success" {
			t.Fatalf("job %d: %s %v\n%s", 5000+i, results[i].State, results[i].Err, results[i].RunnerLog)
		}
	}
	// What cleanup could not deliver in its budget waits in the outbox: flush, as cron would.
	fig := fleetFigures{}
	for {
		cmd := exec.Command(binary, "--config", h.config, "flush")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SLACK_BOT_TOKEN=" + slackToken}
		out, err := cmd.CombinedOutput()
		fig.flushRounds++
		if err == nil {
			break
		}
		if fig.flushRounds > 20 || time.Since(start) > 8*time.Minute {
			t.Fatalf("outbox still not empty after %d flushes (%s): %v\n%s", fig.flushRounds, time.Since(start), err, out)
		}
	}

	for i := range n {
		id, ch := 5000+i, fmt.Sprintf("C0FLEET%03d", i)
		var top []slacktest.Message
		for _, m := range h.slack.Channel(ch) {
			if m.ThreadTS == "" {
				top = append(top, m)
			}
		}
		if len(top) != 1 {
			t.Fatalf("job %d: channel %s has %d top-level messages, want the start message only:\n%s", id, ch, len(top), h.slack)
		}
		// The final status is an edit, and an edit whose answer was lost (a timeout on a
		// busy host) is sent again: chat.update is idempotent (delivery/doc.go). So the same
		// final text may be set more than once; what must not happen is a second, different
		// final status, or the message going back to an earlier text after it.
		var finals []string
		regressed := false
		for _, text := range top[0].History {
			switch {
			case strings.HasPrefix(text, ":white_check_mark:"):
				finals = append(finals, text)
			case len(finals) > 0:
				regressed = true
			}
		}
		if len(slices.Compact(slices.Clone(finals))) != 1 || regressed || !strings.HasPrefix(top[0].Text, ":white_check_mark:") {
			t.Errorf("job %d: want one final status, last, set again only unchanged; the message's texts were:\n%s",
				id, strings.Join(top[0].History, "\n"))
		}
		fig.resent += len(finals) - 1
		thread := h.slack.Thread(ch, top[0].TS)
		if len(thread) != 1 || !strings.Contains(thread[0].Text, fmt.Sprintf("answer of job %d", id)) {
			t.Errorf("job %d: thread %+v, want its reply once", id, thread)
		}
	}
	for _, e := range h.slack.Events() {
		if strings.HasPrefix(e.Text, ":white_check_mark:") || e.ThreadTS != "" {
			fig.lastFinal = max(fig.lastFinal, e.Time.Sub(start))
		}
		if e.Method == "chat.update" {
			fig.updates++
		}
	}
	fig.throttled = h.slack.Throttled(slacktest.AnyMethod)
	return fig
}

// TestBusyHostSharesOneRateBudget is issue 16's test: 50 jobs at once, each its own
// executor processes, against a Slack that enforces its tier limits. With the host's budget
// every final reply arrives exactly once and Slack answers fewer 429s than with every
// process on its own (rate_share = 0).
func TestBusyHostSharesOneRateBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("50 concurrent jobs, twice: about two minutes")
	}
	const n = 50
	with := busyHost(t, n, "1")
	t.Logf("with the host budget:    %d jobs, %d 429s, %d edits accepted, last final reply after %s, %d flush runs, %d final edits sent again",
		n, with.throttled, with.updates, with.lastFinal.Round(time.Second), with.flushRounds, with.resent)
	without := busyHost(t, n, "0")
	t.Logf("without (rate_share=0):  %d jobs, %d 429s, %d edits accepted, last final reply after %s, %d flush runs, %d final edits sent again",
		n, without.throttled, without.updates, without.lastFinal.Round(time.Second), without.flushRounds, without.resent)
	if with.throttled >= without.throttled {
		t.Errorf("the budget did not reduce 429s: %d with, %d without", with.throttled, without.throttled)
	}
	// 50 final edits at Tier 3 (50 a minute, a burst of 10) need about 48 s once the jobs
	// end; the jobs themselves take a few seconds. Three minutes is ample even on a loaded
	// machine, and far less than a cron flush interval.
	if with.lastFinal > 3*time.Minute {
		t.Errorf("the last final reply came after %s", with.lastFinal)
	}
}

// TestAuditChainAndSyslogFromRealJobs runs jobs through the executor with policy.audit_syslog
// pointing at a fake syslog socket: every decision arrives there as written to the file, the
// file's chain verifies, and an edit made on the host is caught.
func TestAuditChainAndSyslogFromRealJobs(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "syslog-") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := newHost(t, allowAll+"audit_syslog = "+strconv.Quote(sock)+"\n")
	for i := range 3 {
		res := h.run(context.Background(), emulator.Job{Response: response(t, int64(6000+i), nil), Script: []string{"echo hi"}})
		if res.State != "success" {
			t.Fatalf("job %d: %s %v\n%s", 6000+i, res.State, res.Err, res.RunnerLog)
		}
	}
	auditPath := filepath.Join(h.dir, "state", "audit.jsonl")
	data, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d audit lines, want 3:\n%s", len(lines), data)
	}
	buf := make([]byte, 1<<16)
	for i := range 3 {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("syslog datagram %d: %v", i+1, err)
		}
		if msg := strings.TrimSuffix(string(buf[:n]), "\n"); !strings.HasSuffix(msg, ": "+lines[i]) {
			t.Errorf("syslog datagram %d = %q\nwant the file's line %q", i+1, msg, lines[i])
		}
	}
	verify := func() (string, error) {
		cmd := exec.Command(binary, "--config", h.config, "audit", "verify")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "3 records") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	edited := strings.Replace(string(data), `"job_id":6001`, `"job_id":6009`, 1)
	if err := os.WriteFile(auditPath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(); err == nil || !strings.Contains(out, "audit.jsonl:3: the line before (record 2) was edited") {
		t.Errorf("audit verify after an edit: %v\n%s", err, out)
	}
}

// slackRateLimited is one 429 with a Retry-After of a second.
func slackRateLimited() slacktest.Fault { return slacktest.RateLimited(time.Second) }
