package realrunner

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatops-executor/chatops-executor/emulator"
)

var update = flag.Bool("update", false, "rewrite emulator/testdata/runner-job-response.json from the real runner")

// schemaFile is the emulator's capture of how the real runner writes JOB_RESPONSE_FILE.
const schemaFile = "../../emulator/testdata/runner-job-response.json"

// The real runner's JOB_RESPONSE_FILE for examples/job-response.json is the emulator's
// schema of it (so a new runner version that changes spec.Job shows here), and the
// emulator re-encodes the example exactly as the runner did.
func TestRunnerJobResponseSchema(t *testing.T) {
	spy := t.TempDir()
	r := newRig(t, rigOptions{spyDir: spy})
	example, err := os.ReadFile("../../examples/job-response.json")
	if err != nil {
		t.Fatal(err)
	}
	r.run(example)
	calls := readSpy(t, spy)
	if len(calls) == 0 || len(calls[0].response) == 0 {
		t.Fatal("the spy recorded no JOB_RESPONSE_FILE")
	}
	got := calls[0].response
	if *update {
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the runner's JOB_RESPONSE_FILE differs from %s (go test -run %s -update rewrites it):\nrunner:  %s\ncapture: %s",
			filepath.Base(schemaFile), t.Name(), got, want)
	}
	emulated, err := emulator.RunnerJobResponse(example)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(emulated, got) {
		t.Errorf("emulator.RunnerJobResponse(example):\n%s\nthe runner:\n%s", emulated, got)
	}
}
