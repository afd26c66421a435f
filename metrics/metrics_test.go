package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ParseFile reads a .prom file with Prometheus's own text parser.
func parseFile(t *testing.T, path string) map[string]*dto.MetricFamily {
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
	return mfs
}

// value is the sample of name whose labels include want (counter, gauge, or a histogram's
// count).
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestCountersPersistAcrossProcessesAndParse(t *testing.T) {
	dir := t.TempDir()
	prom := filepath.Join(dir, "textfile", "chatops_executor.prom")
	var wg sync.WaitGroup
	for range 10 { // a Store per goroutine, as per executor process
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := Open(dir)
			for _, err := range []error{
				s.JobEnded("succeeded"),
				s.PolicyDecision("allow", "deployers"),
				s.Delivery("post", "sent"),
				s.StageDurations(map[string][]time.Duration{"step_script": {2 * time.Second}, "after_script": {time.Second}}),
			} {
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	s := Open(dir)
	_ = s.JobEnded("timed out")
	_ = s.PolicyDecision("deny", "")
	_ = s.RateLimited("chat.update")
	if err := s.WriteTextfile(prom, Outbox{Waiting: 3, Failed: 1, Oldest: 90 * time.Second}); err != nil {
		t.Fatal(err)
	}
	mfs := parseFile(t, prom)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"chatops_executor_jobs_total", map[string]string{"status": "succeeded"}, 10},
		{"chatops_executor_jobs_total", map[string]string{"status": "timed out"}, 1},
		{"chatops_executor_policy_decisions_total", map[string]string{"result": "allow", "rule": "deployers"}, 10},
		{"chatops_executor_policy_decisions_total", map[string]string{"result": "deny", "rule": "none"}, 1},
		{"chatops_executor_deliveries_total", map[string]string{"kind": "post", "outcome": "sent"}, 10},
		{"chatops_executor_slack_rate_limited_total", map[string]string{"method": "chat.update"}, 1},
		{"chatops_executor_stage_duration_seconds", map[string]string{"stage": "step_script"}, 10},
		{"chatops_executor_outbox_waiting_messages", nil, 3},
		{"chatops_executor_outbox_failed_messages", nil, 1},
		{"chatops_executor_outbox_oldest_message_age_seconds", nil, 90},
	} {
		if got := value(mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	h := mfs["chatops_executor_stage_duration_seconds"].GetMetric()
	for _, m := range h {
		if m.GetLabel()[0].GetValue() == "step_script" && m.GetHistogram().GetSampleSum() != 20 {
			t.Errorf("step_script sum = %v, want 20", m.GetHistogram().GetSampleSum())
		}
	}
	if fi, _ := os.Stat(prom); fi.Mode().Perm() != 0o644 {
		t.Errorf("textfile mode %04o, want 0644 (node_exporter reads it)", fi.Mode().Perm())
	}
	// A later process adds on, never from zero.
	if err := Open(dir).JobEnded("succeeded"); err != nil {
		t.Fatal(err)
	}
	if err := Open(dir).WriteTextfile(prom, Outbox{}); err != nil {
		t.Fatal(err)
	}
	if got := value(parseFile(t, prom), "chatops_executor_jobs_total", map[string]string{"status": "succeeded"}); got != 11 {
		t.Errorf("after one more job: %v, want 11", got)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(prom), "*")); len(leftovers) != 1 {
		t.Errorf("textfile dir holds %v: a temporary file would be read by node_exporter", leftovers)
	}
}

func TestDamagedStateIsAnErrorNotAReset(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(`{"counters":{"chatops_exe`), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Open(dir).JobEnded("failed")
	if err == nil || !strings.Contains(err.Error(), "is damaged") {
		t.Fatalf("JobEnded on a damaged file: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, StateFile))
	if string(data) != `{"counters":{"chatops_exe` {
		t.Errorf("the damaged file was overwritten: %q", data)
	}
}

func TestNilStoreRecordsNothing(t *testing.T) {
	var s *Store
	if err := s.JobEnded("succeeded"); err != nil {
		t.Error(err)
	}
	if err := s.WriteTextfile("/nonexistent/x.prom", Outbox{}); err != nil {
		t.Error(err)
	}
}

func TestStageLabelIsBounded(t *testing.T) {
	for in, want := range map[string]string{
		"step_script": "step_script", "after_script": "after_script", "step_release": "step_other",
		"whatever-a-job-says": "other",
	} {
		if got := StageLabel(in); got != want {
			t.Errorf("StageLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
