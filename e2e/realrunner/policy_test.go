package realrunner

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/gitlab"
)

// The job's variables say alice; GitLab, asked with the job's token, says mallory.
func TestSpoofedJobDenied(t *testing.T) {
	r := newRig(t, rigOptions{})
	marker := filepath.Join(r.dir, "ran")
	job := r.gitlab.Enqueue(t, chatJob(t, jobSpec{id: 560, script: []string{"touch " + marker}}))
	job.SetIdentity(gitlab.Job{ID: 560, Name: "deploy", Status: "running",
		User:     gitlab.User{ID: 7, Username: "mallory"},
		Pipeline: gitlab.Pipeline{ID: 5242, Source: "chat", ProjectID: 7}})
	r.start(1).wait(t)
	final := r.final(job)
	// A denial is the job's failure, not the runner's: not retried, reported as a script
	// failure with the runner's BUILD_FAILURE_EXIT_CODE.
	assertFinal(t, final, "failed", "script_failure", 1)
	if _, err := os.Stat(marker); err == nil {
		t.Error("the denied job's script ran")
	}
	log := job.Log()
	if !strings.Contains(log, "possible spoofing attempt") || strings.Count(log, "Preparing chat job 560") != 1 {
		t.Errorf("GitLab's job log (one prepare, the reason):\n%s", log)
	}
	if len(job.Verifications()) == 0 {
		t.Error("the executor never asked GitLab who started the job")
	}
	for _, m := range r.slack.Messages() {
		if !m.Ephemeral {
			t.Errorf("a denied job posted to the channel: %q", m.Text)
		}
	}
	r.assertClean(560)
}

// GitLab says the job was started by someone no rule allows: denied, and told so in an
// ephemeral message that quotes nothing the job controls (its name, its input, its
// project path or job URL variables): the bot's voice must not relay a job's text. Only
// the job id, the policy's rule and the job's page on the configured GitLab appear.
func TestDeniedJob(t *testing.T) {
	r := newRig(t, rigOptions{})
	hostile := map[string]string{
		"CHAT_INPUT":      "<!channel> your session expired, log in again at https://phish.example/login",
		"CI_JOB_NAME":     "deploy-now <!here>",
		"CI_PROJECT_PATH": "evil/phish-project",
		"CI_JOB_URL":      "https://phish.example/jobs/561",
	}
	vars := map[string]string{"GITLAB_USER_LOGIN": "bob", "GITLAB_USER_ID": "102"}
	maps.Copy(vars, hostile)
	job := r.gitlab.Enqueue(t, chatJob(t, jobSpec{id: 561, script: []string{"echo should not run"}, vars: vars}))
	r.start(1).wait(t)
	assertFinal(t, r.final(job), "failed", "script_failure", 1)
	if strings.Contains(job.Log(), "\nshould not run\n") {
		t.Error("the denied job's script ran")
	}
	want := ":lock: The runner's policy denied your chat command (rule `default`); the job's log says why · <" +
		r.gitlab.URL + "/ops/infra/-/jobs/561|job #561>"
	var eph int
	for _, m := range r.slack.Messages() {
		if !m.Ephemeral {
			t.Errorf("a denied job posted to the channel: %q", m.Text)
			continue
		}
		eph++
		if m.User != "U0123ABCD" || m.Text != want {
			t.Errorf("ephemeral message to %s:\n%q, want\n%q", m.User, m.Text, want)
		}
		// The job's name (job_info.name, from .gitlab-ci.yml) and whatever it set.
		for _, bad := range append(slices.Collect(maps.Values(hostile)), "deploy", "phish", "<!", "bob") {
			if strings.Contains(m.Text, bad) {
				t.Errorf("the denial quotes %q, which the job controls: %q", bad, m.Text)
			}
		}
	}
	if eph != 1 {
		t.Errorf("%d ephemeral messages, want 1:\n%s", eph, r.slack)
	}
}
