package stages

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// preparedAndRun leaves what a job whose cleanup was killed leaves: job.json, a stage
// record and cleanup.json.
func preparedAndRun(t *testing.T, f *fixture) []string {
	t.Helper()
	if err := f.stages.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.stages.Run(context.Background(), f.script("echo the answer"), "build_script"); err != nil {
		t.Fatal(err)
	}
	st := f.state()
	if err := st.writeCleanup(cleanupRecord{StartedAt: f.stages.now(), Runner: RunnerSuccess}); err != nil {
		t.Fatal(err)
	}
	stages, _ := filepath.Glob(filepath.Join(st.Dir, "stage-*.json"))
	if len(stages) != 1 {
		t.Fatalf("stage records %v, want one", stages)
	}
	return []string{filepath.Join(st.Dir, "job.json"), stages[0], filepath.Join(st.Dir, cleanupMark)}
}

// setFormat rewrites the record at path with format f; f 0 removes the field, as the last
// release wrote it.
func setFormat(t *testing.T, path string, f int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "format")
	if f > 0 {
		m["format"] = f
	}
	data, _ = json.Marshal(m)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestStateRecordsCarryTheirFormat(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range preparedAndRun(t, f) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			Format *int `json:"format"`
		}
		if err := json.Unmarshal(data, &h); err != nil || h.Format == nil || *h.Format != stateFormat {
			t.Errorf("%s has no format %d: %s", filepath.Base(p), stateFormat, data)
		}
	}
}

// Records without a format are the last release's: a job prepared before an upgrade is
// finished after it.
func TestStateWithoutFormatIsFinished(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range preparedAndRun(t, f) {
		setFormat(t, p, 0)
	}
	got, err := f.stages.Sweep(context.Background(), 0)
	if err != nil || len(got) != 1 || !strings.Contains(got[0].What, "succeeded") || !strings.Contains(got[0].What, "reply queued") {
		t.Fatalf("sweep = %+v, %v", got, err)
	}
	if f.state().Exists() {
		t.Error("the raw output is still there")
	}
}

// A job whose state a newer chatops-executor wrote (a downgrade while it ran) is left whole:
// neither cleanup nor a sweep reads, rewrites or removes it, however old, and both say so.
func TestNewerStateIsLeftAlone(t *testing.T) {
	for i, name := range []string{"job.json", "stage record", "cleanup.json"} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			files := preparedAndRun(t, f)
			setFormat(t, files[i], stateFormat+1)
			st := f.state()
			before := map[string]string{}
			ents, _ := os.ReadDir(st.Dir)
			for _, e := range ents {
				data, _ := os.ReadFile(filepath.Join(st.Dir, e.Name()))
				before[e.Name()] = string(data)
			}
			old := time.Now().Add(-time.Hour)
			os.Chtimes(st.Dir, old, old)

			if _, err := st.ReadJob(); !errors.Is(err, ErrNewerFormat) {
				t.Fatalf("ReadJob: %v, want ErrNewerFormat", err)
			}
			got, err := f.stages.Sweep(context.Background(), 0)
			if err != nil || len(got) != 1 || !strings.Contains(got[0].What, "left alone") ||
				!strings.Contains(got[0].What, "written by a newer chatops-executor") || !strings.Contains(got[0].What, "upgrade, or remove") {
				t.Fatalf("sweep = %+v, %v", got, err)
			}
			if la := f.stages.LeftAlone(); len(la) != 1 || la[0].JobID != "4242" {
				t.Errorf("LeftAlone = %+v", la)
			}
			if err := f.stages.Cleanup(context.Background()); err != nil {
				t.Fatalf("cleanup: %v", err)
			}
			if !strings.Contains(f.stderr.String(), "written by a newer chatops-executor") {
				t.Errorf("cleanup's log does not say why the job is left:\n%s", f.stderr)
			}
			for n, data := range before {
				now, err := os.ReadFile(filepath.Join(st.Dir, n))
				if err != nil || string(now) != data {
					t.Errorf("%s changed or removed (%v)", n, err)
				}
			}
			if _, err := os.Stat(filepath.Join(f.stages.Cfg.Executor.StateDir, "outbox", "4242", "closed")); err == nil {
				t.Error("a reply was queued for a job this binary cannot read")
			}
		})
	}
}
