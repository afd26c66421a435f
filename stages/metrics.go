package stages

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery"
	"github.com/chatops-executor/chatops-executor/metrics"
)

// Metrics returns the host's counters when metrics.textfile is set, else nil (which records
// nothing). Every process that has something to count opens it; cleanup and flush also
// rewrite the text file.
func Metrics(cfg *config.Config) *metrics.Store {
	if cfg.Metrics.Textfile == "" {
		return nil
	}
	return metrics.Open(cfg.Executor.StateDir)
}

// DeliveryOptions adds the metrics hooks to o. A failure to count goes to log: metrics
// never hold up a message or fail a job.
func DeliveryOptions(m *metrics.Store, o delivery.Options, log io.Writer) delivery.Options {
	if m == nil {
		return o
	}
	o.OnOutcome = func(kind, outcome string) {
		if err := m.Delivery(kind, outcome); err != nil {
			fmt.Fprintf(log, "%s: %v\n", DriverName, err)
		}
	}
	o.On429 = func(method string) {
		count := m.RateLimited
		if mm, ok := strings.CutPrefix(method, "mattermost."); ok {
			count, method = m.MattermostRateLimited, mm
		}
		if err := count(method); err != nil {
			fmt.Fprintf(log, "%s: %v\n", DriverName, err)
		}
	}
	return o
}

// WriteMetrics rewrites metrics.textfile from the counters and the outbox as it is now.
func WriteMetrics(cfg *config.Config, m *metrics.Store, log io.Writer) {
	if m == nil {
		return
	}
	reps, err := delivery.Open(cfg.Executor.StateDir, nil, delivery.Options{}).Status()
	if err != nil {
		fmt.Fprintf(log, "%s: metrics: outbox: %v\n", DriverName, err)
	}
	var ob metrics.Outbox
	for _, r := range reps {
		ob.Waiting += len(r.Waiting)
		ob.Failed += len(r.Failed)
		for _, o := range append(r.Waiting, r.Failed...) {
			ob.Oldest = max(ob.Oldest, o.Age)
		}
	}
	if err := m.WriteTextfile(cfg.Metrics.Textfile, ob); err != nil {
		fmt.Fprintf(log, "%s: %v\n", DriverName, err)
	}
}

// countDecision records prepare's decision.
func (s *Stages) countDecision(d Decision, err error) {
	result := "deny"
	switch {
	case err != nil:
		result = "error"
	case d.Allow:
		result = "allow"
	}
	if merr := Metrics(s.Cfg).PolicyDecision(result, d.Rule); merr != nil {
		fmt.Fprintf(s.Stderr, "%s: %v\n", DriverName, merr)
	}
}

// countCall records how long the executor's prepare or cleanup call of a job took, from
// started on.
func (s *Stages) countCall(call string, started time.Time) {
	if err := Metrics(s.Cfg).StageDurations(map[string][]time.Duration{call: {s.now().Sub(started)}}); err != nil {
		fmt.Fprintf(s.Stderr, "%s: %v\n", DriverName, err)
	}
}

// countJob records a job's end at cleanup: its final status and how long its stages ran.
func (s *Stages) countJob(o Outcome, stages []StageRecord) {
	m := Metrics(s.Cfg)
	if m == nil {
		return
	}
	if err := m.JobEnded(string(o.Status)); err != nil {
		fmt.Fprintf(s.Stderr, "%s: %v\n", DriverName, err)
	}
	durations := map[string][]time.Duration{}
	for _, r := range stages {
		if !r.StartedAt.IsZero() && !r.EndedAt.IsZero() && !r.EndedAt.Before(r.StartedAt) {
			durations[r.Stage] = append(durations[r.Stage], r.EndedAt.Sub(r.StartedAt))
		}
	}
	if err := m.StageDurations(durations); err != nil {
		fmt.Fprintf(s.Stderr, "%s: %v\n", DriverName, err)
	}
}
