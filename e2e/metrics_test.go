package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chatops-executor/chatops-executor/emulator"
)

// promSum parses the text file with Prometheus's parser and sums the samples of name
// whose labels include want (a histogram contributes its sample count).
func promSum(t *testing.T, path, name string, want map[string]string) float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	sum := 0.0
	mf := mfs[name]
	if mf == nil {
		return 0
	}
	for _, m := range mf.GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestMetricsTextfileCountsTheJobsRun runs chat jobs that succeed, fail and are denied, and
// checks the .prom file cleanup writes against them, then that a later job adds on.
func TestMetricsTextfileCountsTheJobsRun(t *testing.T) {
	prom := filepath.Join(t.TempDir(), "textfile", "chatops_executor.prom")
	h := newHost(t, allowAll+"[metrics]\ntextfile = "+strconv.Quote(prom)+"\n")
	jobs := []struct {
		script string
		vars   map[string]string
		state  string
	}{
		{"echo ok", nil, "success"},
		{"echo ok", nil, "success"},
		{"exit 3", nil, "failed"},
		{"echo never", map[string]string{"CI_PIPELINE_SOURCE": "push"}, "failed"}, // denied
		{"echo ok", nil, "success"},
	}
	for i, j := range jobs {
		res := h.run(context.Background(), emulator.Job{Response: response(t, int64(7000+i), j.vars), Script: []string{j.script}})
		if res.State != j.state {
			t.Fatalf("job %d: %s, want %s\n%s", 7000+i, res.State, j.state, res.RunnerLog)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"chatops_executor_jobs_total", map[string]string{"status": "succeeded"}, 3},
		{"chatops_executor_jobs_total", map[string]string{"status": "failed"}, 1},
		{"chatops_executor_jobs_total", map[string]string{"status": "denied"}, 1},
		{"chatops_executor_policy_decisions_total", map[string]string{"result": "allow"}, 4},
		{"chatops_executor_policy_decisions_total", map[string]string{"result": "deny", "rule": "executor.non_chat_jobs"}, 1},
		// Four jobs ran: a start message and a reply each, and a final edit. The denied one
		// is not a chat job (a push), so nobody is told in chat.
		{"chatops_executor_deliveries_total", map[string]string{"kind": "post", "outcome": "sent"}, 8},
		{"chatops_executor_deliveries_total", map[string]string{"kind": "update", "outcome": "sent"}, 4},
		{"chatops_executor_deliveries_total", map[string]string{"kind": "ephemeral", "outcome": "sent"}, 0},
		{"chatops_executor_deliveries_total", map[string]string{"outcome": "failed"}, 0},
		{"chatops_executor_slack_rate_limited_total", nil, 0},
		{"chatops_executor_stage_duration_seconds", map[string]string{"stage": "build_script"}, 4},
		{"chatops_executor_stage_duration_seconds", map[string]string{"stage": "prepare"}, 5},
		{"chatops_executor_stage_duration_seconds", map[string]string{"stage": "cleanup"}, 5},
		{"chatops_executor_outbox_waiting_messages", nil, 0},
		{"chatops_executor_outbox_oldest_message_age_seconds", nil, 0},
	} {
		if got := promSum(t, prom, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if t.Failed() {
		data, _ := os.ReadFile(prom)
		t.Fatalf("the text file:\n%s", data)
	}

	// Slack rate limits the next job's start message once; its counters add on to the
	// earlier ones, and flush rewrites the file too.
	h.slack.Fail("chat.postMessage", slackRateLimited())
	res := h.run(context.Background(), emulator.Job{Response: response(t, 7010, nil), Script: []string{"echo ok"}})
	if res.State != "success" {
		t.Fatalf("job 7010: %s", res.State)
	}
	os.Remove(prom)
	cmd := exec.Command(binary, "--config", h.config, "flush")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SLACK_BOT_TOKEN=" + slackToken}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("flush: %v\n%s", err, out)
	}
	if got := promSum(t, prom, "chatops_executor_jobs_total", map[string]string{"status": "succeeded"}); got != 4 {
		t.Errorf("succeeded after one more job = %v, want 4", got)
	}
	if got := promSum(t, prom, "chatops_executor_slack_rate_limited_total", map[string]string{"method": "chat.postMessage"}); got != 1 {
		t.Errorf("429s = %v, want 1", got)
	}
}
