package main

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/stages"
)

// The run stage copies the job's output with one P (stages.RunProcs), unless the admin
// set GOMAXPROCS, and gives the process its own setting back when the stage ends.
func TestRunStageRunsWithOneP(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	if before == stages.RunProcs {
		runtime.GOMAXPROCS(stages.RunProcs + 1)
		defer runtime.GOMAXPROCS(before)
		before = stages.RunProcs + 1
	}
	dir := t.TempDir()
	jr, err := os.ReadFile("../examples/job-response.json")
	if err != nil {
		t.Fatal(err)
	}
	e := env{
		"JOB_RESPONSE_FILE":    writeFile(t, dir, "job.json", string(jr), 0o600),
		"BUILD_EXIT_CODE_FILE": filepath.Join(dir, "code"),
		"PATH":                 os.Getenv("PATH"),
	}
	cfg := validConfig(t, dir)
	if code, _, stderr := runCmd(t, e, "--config", cfg, "prepare"); code != 0 {
		t.Fatalf("prepare: %d %s", code, stderr)
	}
	if during := procsDuringRun(t, e, cfg, dir); during != stages.RunProcs {
		t.Errorf("GOMAXPROCS while the run stage ran = %d, want %d", during, stages.RunProcs)
	}
	if after := runtime.GOMAXPROCS(0); after != before {
		t.Errorf("GOMAXPROCS after the run stage = %d, want it restored to %d", after, before)
	}
	e["GOMAXPROCS"] = "7" // the runtime read it at start; here it only says the admin chose
	if during := procsDuringRun(t, e, cfg, dir); during != before {
		t.Errorf("GOMAXPROCS while the run stage ran with $GOMAXPROCS set = %d, want it left at %d", during, before)
	}
}

// procsDuringRun runs a run stage whose job waits to be let go, and returns GOMAXPROCS
// as it was while the job ran.
func procsDuringRun(t *testing.T, e env, cfg, dir string) int {
	t.Helper()
	started, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
	os.Remove(started)
	os.Remove(release)
	script := writeFile(t, dir, "s.sh", "touch "+started+"\nfor i in $(seq 100); do [ -e "+release+" ] && exit 0; sleep 0.1; done\nexit 7\n", 0o755)
	done := make(chan int, 1)
	go func() {
		code, _, _ := runCmd(t, e, "--config", cfg, "run", script, "build_script")
		done <- code
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			os.WriteFile(release, nil, 0o644)
			t.Fatalf("the job never started (exit %d)", <-done)
		}
	}
	during := runtime.GOMAXPROCS(0)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 {
		t.Fatalf("run: exit %d", code)
	}
	return during
}
