package realrunner

import (
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
)

// Tokens the runner masks in the trace by default (FF_MASK_ALL_DEFAULT_TOKENS, on in
// 19.4), a masked variable and the job token: GitLab's trace holds none of them, so
// neither may chat. The job's features.token_mask_prefixes is only GitLab's default
// (glpat-), so the executor cannot lean on it for the others.
func TestSecretsMaskedInTraceAndSlack(t *testing.T) {
	secrets := map[string]string{
		"masked variable": "s3cr3t-deploy-value-0123",
		"job token":       jobToken(570),
		"glpat- token":    "glpat-abcdefghij0123456789",
	}
	// Prefixes the runner masks by default (common/buildlogger/internal/tokensanitizer),
	// beyond features.token_mask_prefixes: the executor must mask them as well.
	for _, p := range []string{"gldt-", "glrt-", "glcbt-", "glptt-", "glft-", "gloas-", "glsoat-"} {
		secrets[p+" token"] = p + "abcdefghij0123456789"
	}
	r := newRig(t, rigOptions{})
	script := []string{`echo "var: $DEPLOY_SECRET"`, `echo "job token: $CI_JOB_TOKEN"`}
	for _, name := range sortedKeys(secrets) {
		if strings.HasSuffix(name, " token") && name != "job token" {
			script = append(script, "echo '"+name+": "+secrets[name]+"'")
		}
	}
	// No chat_reply section: the reply is all of the script's output.
	j, final := r.run(chatJob(t, jobSpec{id: 570, script: script, maskPrefixes: []string{"glpat-"},
		masked: map[string]string{"DEPLOY_SECRET": secrets["masked variable"]}}))
	assertFinal(t, final, "success", "", 0)
	log := j.Log()
	for _, name := range sortedKeys(secrets) {
		if strings.Contains(log, secrets[name]) {
			t.Errorf("GitLab's trace holds the %s %q", name, secrets[name])
		}
	}
	if n := strings.Count(log, "[MASKED]"); n < len(secrets) {
		t.Errorf("GitLab's trace has %d [MASKED], want at least %d:\n%s", n, len(secrets), log)
	}
	for _, name := range slackLeaks(r.slack, secrets) {
		t.Errorf("the %s reached Slack", name)
	}
}

// slackLeaks names the secrets found in anything Slack received.
func slackLeaks(s *slacktest.Server, secrets map[string]string) []string {
	var all strings.Builder
	for _, c := range s.Calls(slacktest.AnyMethod) {
		for k, v := range c.Params {
			all.WriteString(k + "=" + v + "\n")
		}
	}
	for _, m := range s.Messages() {
		all.WriteString(strings.Join(m.History, "\n"))
		for _, f := range m.Files {
			all.WriteString(f.Title + f.Comment)
			all.Write(f.Content)
		}
	}
	var leaked []string
	for _, name := range sortedKeys(secrets) {
		if strings.Contains(all.String(), secrets[name]) {
			leaked = append(leaked, name)
		}
	}
	return leaked
}
