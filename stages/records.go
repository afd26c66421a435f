package stages

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/chatops-executor/chatops-executor/job"
)

// jobStatusVar is the variable the runner passes every executor call, cleanup included, as
// CUSTOM_ENV_CI_JOB_STATUS.
const jobStatusVar = "CI_JOB_STATUS"

// RunnerJobStatus returns what the runner says about how the job ended, or "" when that
// cannot be trusted. CUSTOM_ENV_* is the runner's variable list, job variables included,
// after its predefined ones: a job that defines CI_JOB_STATUS itself (in .gitlab-ci.yml,
// a trigger, a schedule) overrides the runner's value in the executor's environment. The
// job's own variables are in JOB_RESPONSE_FILE, the runner's predefined ones are not, so
// a CI_JOB_STATUS there is the job's and the environment's value is ignored.
func RunnerJobStatus(j *job.Response, getenv func(string) string) RunnerStatus {
	if _, set := j.Var(jobStatusVar); set {
		return ""
	}
	switch v := RunnerStatus(getenv("CUSTOM_ENV_" + jobStatusVar)); v {
	case RunnerSuccess, RunnerFailed, RunnerCanceled, RunnerTimedOut, RunnerRunning:
		return v
	}
	return ""
}

// startStage records that a stage started, before any of its script runs: if the executor
// is killed from here on, cleanup finds a stage that never ended rather than silence it
// could take for success. A failure to write is reported and the stage runs anyway: a
// record is the reply's business, never a reason to fail the job.
//
// The record is padded to stageRecordSize, so that its end can be written over it in
// place when the disk is full (see endStage).
func (s *Stages) startStage(st State, r StageRecord) {
	r.Running = true
	if err := writeRunning(st, r); err != nil {
		fmt.Fprintf(s.Stderr, "%s: warning: the stage's start could not be recorded: %v\n", DriverName, err)
	}
}

// writeRunning writes the record of a running stage, padded to stageRecordSize.
func writeRunning(st State, r StageRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode stage record: %w", err)
	}
	if len(data) < stageRecordSize {
		data = append(data, bytes.Repeat([]byte(" "), stageRecordSize-len(data)-1)...)
		data = append(data, '\n')
	}
	return st.writeStageData(r, data)
}

// stageRecordSize is the room a stage's start record leaves for its end.
const stageRecordSize = 2048

// endStage records how a stage ended: atomically, or when that fails (a full disk has no
// room for the new file), over the start record in place, which needs no new space. A
// stage left "running" would read as a killed executor: a false failure.
func (s *Stages) endStage(st State, r StageRecord) error {
	err := st.WriteStage(r)
	if err == nil {
		return nil
	}
	data, merr := json.Marshal(r)
	if merr != nil || len(data) >= stageRecordSize {
		return err
	}
	data = append(data, bytes.Repeat([]byte(" "), stageRecordSize-len(data))...)
	f, oerr := os.OpenFile(st.stagePath(r), os.O_WRONLY, 0)
	if oerr != nil {
		return err
	}
	_, werr := f.WriteAt(data, 0)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return err
	}
	return nil
}

// noteTerminated records the runner's SIGTERM as soon as it arrives: the runner may
// SIGKILL the executor before the stage ends (graceful_kill_timeout), and cleanup must
// still tell a cancel or timeout from a crash.
func (s *Stages) noteTerminated(st State, r StageRecord) {
	r.Running = true
	if err := writeRunning(st, r); err != nil {
		fmt.Fprintf(s.Stderr, "%s: warning: %v\n", DriverName, err)
	}
}
