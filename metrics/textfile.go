package metrics

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outbox is the outbox as the textfile shows it: gauges, measured by whoever writes the file.
type Outbox struct {
	// Waiting and Failed count messages that will be retried, and ones that need an admin.
	Waiting, Failed int
	// Oldest is the age of the oldest message still in the outbox (waiting or failed); 0
	// when it is empty.
	Oldest time.Duration
}

// WriteTextfile rewrites path (node_exporter's textfile collector reads *.prom files in its
// directory) with the persisted counters and ob, atomically, under the counters' lock.
func (s *Store) WriteTextfile(path string, ob Outbox) error {
	if s == nil || path == "" {
		return nil
	}
	return s.locked(func(st *state) (bool, error) {
		reg := prometheus.NewPedanticRegistry()
		if err := reg.Register(&collector{st: st}); err != nil {
			return false, fmt.Errorf("metrics: %w", err)
		}
		for _, g := range []struct {
			name, help string
			v          float64
		}{
			{"chatops_executor_outbox_waiting_messages", "Chat messages in the outbox that will be retried.", float64(ob.Waiting)},
			{"chatops_executor_outbox_failed_messages", "Chat messages in the outbox that need an admin (failed, unknown outcome, expired).", float64(ob.Failed)},
			{"chatops_executor_outbox_oldest_message_age_seconds", "Age of the oldest chat message still in the outbox; 0 when it is empty.", ob.Oldest.Seconds()},
		} {
			gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: g.name, Help: g.help})
			gauge.Set(g.v)
			reg.MustRegister(gauge)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return false, fmt.Errorf("metrics: %w", err)
		}
		if err := prometheus.WriteToTextfile(path, reg); err != nil {
			return false, fmt.Errorf("metrics: %w", err)
		}
		// node_exporter runs as another user: the file must be readable by it. It holds
		// counts and rule names only.
		if err := os.Chmod(path, 0o644); err != nil {
			return false, fmt.Errorf("metrics: %w", err)
		}
		return false, nil
	})
}

// collector exposes the persisted state as const metrics.
type collector struct{ st *state }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, sp := range specs {
		ch <- desc(sp)
	}
}

func desc(sp spec) *prometheus.Desc { return prometheus.NewDesc(sp.name, sp.help, sp.labels, nil) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for name, series := range c.st.Counters {
		sp, ok := specFor(name)
		if !ok || sp.histogram {
			continue // written by a newer version: not ours to describe
		}
		for key, v := range series {
			labels := strings.Split(key, "\x00")
			if len(labels) != len(sp.labels) {
				continue
			}
			ch <- prometheus.MustNewConstMetric(desc(sp), prometheus.CounterValue, v, labels...)
		}
	}
	for name, series := range c.st.Histograms {
		sp, ok := specFor(name)
		if !ok || !sp.histogram {
			continue
		}
		for key, h := range series {
			labels := strings.Split(key, "\x00")
			if len(labels) != len(sp.labels) || len(h.Buckets) != len(h.Bounds) {
				continue
			}
			buckets := make(map[float64]uint64, len(h.Bounds))
			for i, b := range h.Bounds {
				buckets[b] = h.Buckets[i]
			}
			ch <- prometheus.MustNewConstHistogram(desc(sp), h.Count, h.Sum, buckets, labels...)
		}
	}
}
