// Package metrics keeps the executor's counters for the admin and writes them as a
// Prometheus text file for node_exporter's textfile collector.
//
// The executor has no long-running process to scrape: every runner call and every flush is
// a process of its own, living seconds. So counters are kept in a small file under the
// state directory (metrics.json), and each process adds its events to it under an flock;
// cleanup and flush then rewrite the .prom file from it, with client_golang's registry and
// prometheus.WriteToTextfile (a temporary file renamed over the old one). The state file is
// replaced atomically and synced, so a crash cannot leave it torn, and counters only ever
// grow: a restart of node_exporter or of the host loses nothing. The .prom file is written
// while the lock is held, so an older snapshot can never replace a newer one.
//
// Label values come from the executor's own vocabulary (job statuses, message kinds,
// outcomes, Slack methods, the stage names of the runner's protocol, the admin's rule
// names), never from what a job sets: a job cannot grow the file or forge a series.
package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/atomicfile"
	"golang.org/x/sys/unix"
)

// StateFile is where the counters live under the state directory.
const StateFile = "metrics.json"

// Store is the host's persisted counters. A nil *Store records nothing (metrics are off).
type Store struct {
	path string
}

// Open returns the counters kept under stateDir.
func Open(stateDir string) *Store { return &Store{path: filepath.Join(stateDir, StateFile)} }

// state is the file: counters and histograms by metric, each by its label values joined
// with "\x00".
type state struct {
	Counters   map[string]map[string]float64 `json:"counters"`
	Histograms map[string]map[string]*hist   `json:"histograms"`
}

type hist struct {
	Count   uint64    `json:"count"`
	Sum     float64   `json:"sum"`
	Buckets []uint64  `json:"buckets"` // cumulative, one per durationBuckets entry
	Bounds  []float64 `json:"bounds"`
}

// durationBuckets are the upper bounds (seconds) of the stage duration histogram: from a
// quick script to GitLab's longest job timeout.
var durationBuckets = []float64{1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// The metrics, their help and their labels.
type spec struct {
	name, help string
	labels     []string
	histogram  bool
}

var specs = []spec{
	{name: "chatops_executor_jobs_total", help: "Chat jobs ended, by final status (succeeded, failed, cancelled, timed out, denied).", labels: []string{"status"}},
	{name: "chatops_executor_policy_decisions_total", help: "Policy decisions made in prepare, by result (allow, deny, error) and the rule that decided.", labels: []string{"result", "rule"}},
	{name: "chatops_executor_deliveries_total", help: "Chat messages handled, by kind (post, update, ephemeral, upload, progress) and outcome (sent, failed, unknown, expired, postponed, skipped).", labels: []string{"kind", "outcome"}},
	{name: "chatops_executor_slack_rate_limited_total", help: "HTTP 429 answers from Slack, by Web API method.", labels: []string{"method"}},
	{name: "chatops_executor_mattermost_rate_limited_total", help: "HTTP 429 answers from Mattermost, by call (posts.create, posts.patch, files.upload…).", labels: []string{"method"}},
	{name: "chatops_executor_stage_duration_seconds", help: "Duration of the job's stages: the runner's stage names for run, and prepare (with the policy decision) and cleanup (with the reply).", labels: []string{"stage"}, histogram: true},
}

func specFor(name string) (spec, bool) {
	i := slices.IndexFunc(specs, func(s spec) bool { return s.name == name })
	if i < 0 {
		return spec{}, false
	}
	return specs[i], true
}

// JobEnded counts a job's final status.
func (s *Store) JobEnded(status string) error {
	return s.add("chatops_executor_jobs_total", 1, status)
}

// PolicyDecision counts a decision: result is "allow", "deny" or "error".
func (s *Store) PolicyDecision(result, rule string) error {
	if rule == "" {
		rule = "none"
	}
	return s.add("chatops_executor_policy_decisions_total", 1, result, rule)
}

// Delivery counts what became of one chat message.
func (s *Store) Delivery(kind, outcome string) error {
	return s.add("chatops_executor_deliveries_total", 1, kind, outcome)
}

// RateLimited counts a 429 from Slack.
func (s *Store) RateLimited(method string) error {
	return s.add("chatops_executor_slack_rate_limited_total", 1, method)
}

// MattermostRateLimited counts a 429 from Mattermost.
func (s *Store) MattermostRateLimited(method string) error {
	return s.add("chatops_executor_mattermost_rate_limited_total", 1, method)
}

// StageDurations observes the duration of each run stage of a job.
func (s *Store) StageDurations(stages map[string][]time.Duration) error {
	if s == nil || len(stages) == 0 {
		return nil
	}
	return s.update(func(st *state) {
		names := make([]string, 0, len(stages))
		for n := range stages {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			for _, d := range stages[n] {
				st.observe("chatops_executor_stage_duration_seconds", d.Seconds(), StageLabel(n))
			}
		}
	})
}

// knownStages are the stage names gitlab-runner 19.4 passes to run, and the executor's
// prepare and cleanup calls. Others (a future
// runner's) are counted as "other", so the label set stays bounded.
var knownStages = []string{
	"prepare", "cleanup", // the executor's own calls
	"prepare_script", "get_sources", "clear_worktree", "restore_cache", "download_artifacts",
	"step_script", "build_script", "after_script", "archive_cache", "archive_cache_on_failure",
	"upload_artifacts_on_success", "upload_artifacts_on_failure", "cleanup_file_variables",
}

// StageLabel is the label value for the runner's stage name.
func StageLabel(stage string) string {
	if slices.Contains(knownStages, stage) {
		return stage
	}
	if strings.HasPrefix(stage, "step_") {
		return "step_other"
	}
	return "other"
}

func (s *Store) add(name string, v float64, labels ...string) error {
	if s == nil {
		return nil
	}
	return s.update(func(st *state) {
		if st.Counters[name] == nil {
			st.Counters[name] = map[string]float64{}
		}
		st.Counters[name][strings.Join(labels, "\x00")] += v
	})
}

func (st *state) observe(name string, v float64, labels ...string) {
	if st.Histograms[name] == nil {
		st.Histograms[name] = map[string]*hist{}
	}
	key := strings.Join(labels, "\x00")
	h := st.Histograms[name][key]
	if h == nil || !slices.Equal(h.Bounds, durationBuckets) {
		h = &hist{Buckets: make([]uint64, len(durationBuckets)), Bounds: durationBuckets}
		st.Histograms[name][key] = h
	}
	h.Count++
	h.Sum += v
	for i, b := range durationBuckets {
		if v <= b {
			h.Buckets[i]++
		}
	}
}

// update changes the state under the lock.
func (s *Store) update(fn func(*state)) error {
	return s.locked(func(st *state) (bool, error) {
		fn(st)
		return true, nil
	})
}

// locked runs fn on the state with the lock held, and writes it back when fn says so.
func (s *Store) locked(fn func(*state) (bool, error)) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	lf, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer lf.Close()
	for {
		err = unix.Flock(int(lf.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("metrics: lock: %w", err)
	}
	st, err := s.read()
	if err != nil {
		return err
	}
	write, err := fn(st)
	if err != nil || !write {
		return err
	}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := atomicfile.WriteFile(s.path, data, 0o600); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// read loads the state. A file that does not parse is an error, not a reset: counters must
// not go backwards behind the admin's back.
func (s *Store) read() (*state, error) {
	st := &state{}
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("metrics: %w", err)
	default:
		if err := json.Unmarshal(data, st); err != nil {
			return nil, fmt.Errorf("metrics: %s is damaged (move it away to start the counters from zero): %w", s.path, err)
		}
	}
	if st.Counters == nil {
		st.Counters = map[string]map[string]float64{}
	}
	if st.Histograms == nil {
		st.Histograms = map[string]map[string]*hist{}
	}
	return st, nil
}
