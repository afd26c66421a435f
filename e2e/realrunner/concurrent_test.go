package realrunner

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/gitlab/coordinatortest"
)

// Two runners of one host take two jobs of one project at once, with one executor
// config: each job has its own build directory, state and reply.
func TestTwoConcurrentJobs(t *testing.T) {
	r := newRig(t, rigOptions{runners: 2})
	shared := filepath.Join(r.dir, "started")
	write(t, shared, "")
	ids := []int64{600, 601}
	jobs := map[int64]*coordinatortest.Job{}
	for _, id := range ids {
		jobs[id] = r.gitlab.Enqueue(t, chatJob(t, jobSpec{id: id, vars: map[string]string{"CHAT_INPUT": fmt.Sprintf("input-%d", id)},
			script: []string{
				`echo "$CI_JOB_ID" > mine`,
				// Wait (up to 60 s) until both jobs run: proof that they ran at once.
				`echo "$CI_JOB_ID" >> ` + shared,
				`for i in $(seq 1 600); do [ "$(wc -l < ` + shared + `)" -ge 2 ] && break; sleep 0.1; done`,
				`[ "$(wc -l < ` + shared + `)" -ge 2 ] && echo "both running"`,
				chatReply(`job $CI_JOB_ID sees $(cat mine) with $CHAT_INPUT`),
			}}))
	}
	a, b := r.start(1), r.start(2)
	a.wait(t)
	b.wait(t)
	for _, id := range ids {
		assertFinal(t, r.final(jobs[id]), "success", "", 0)
		if !strings.Contains(jobs[id].Log(), "\nboth running\n") {
			t.Errorf("job %d did not run alongside the other", id)
		}
		r.assertClean(id)
	}
	got := map[string]bool{}
	for _, m := range channel(t, r.slack, 2) {
		if !strings.HasPrefix(m.Text, ":white_check_mark:") {
			t.Errorf("final status = %q", m.Text)
		}
		got[reply(t, r.slack, m).Text] = true
	}
	for _, id := range ids {
		want := fmt.Sprintf("```\njob %d sees %d with input-%d\n```", id, id, id)
		if !got[want] {
			t.Errorf("no reply %q among %v", want, got)
		}
	}
	runners := map[string]int64{}
	for _, req := range r.gitlab.Requests() {
		if req.JobID != 0 {
			runners[req.Token] = req.JobID
		}
	}
	if len(runners) != 2 {
		t.Errorf("jobs went to runners %v, want one each", runners)
	}
}

// GitLab loses a trace chunk it acknowledged: the runner's next PATCH starts past what
// GitLab holds, is answered 416 with the Range GitLab has, and the runner resends from
// there. GitLab ends up with the whole trace, and its checksum.
func TestTraceResentAfterRangeMismatch(t *testing.T) {
	r := newRig(t, rigOptions{})
	job := r.gitlab.Enqueue(t, chatJob(t, jobSpec{id: 610,
		script: []string{"for i in $(seq 1 8); do echo line $i; sleep 0.5; done"}}))
	job.LosePatches(1)
	r.start(1).wait(t)
	final := r.final(job)
	assertFinal(t, final, "success", "", 0)
	if !final.TraceComplete {
		t.Error("GitLab's trace does not match the runner's checksum")
	}
	var lost, mismatched int
	for _, p := range job.Patches() {
		if p.Lost {
			lost++
		}
		if p.Status == http.StatusRequestedRangeNotSatisfiable {
			mismatched++
		}
	}
	if lost != 1 || mismatched == 0 {
		t.Errorf("patches %+v: want one lost and a 416 after it", job.Patches())
	}
	log := job.Log()
	for i := 1; i <= 8; i++ {
		if n := strings.Count(log, fmt.Sprintf("\nline %d\n", i)); n != 1 {
			t.Errorf("line %d is %d times in GitLab's log", i, n)
		}
	}
}
