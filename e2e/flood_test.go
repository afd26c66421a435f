package e2e

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/emulator"
)

// The run stage copies the job's output on one P (stages.RunProcs), the same P on which
// the runner's SIGTERM is handled. A job that prints without pause keeps the copy busy all
// the time: it must still be stopped at once on a cancel, by the executor itself, not by
// the runner's SIGKILL after its graceful timeout.
func TestCancelWhileTheJobFloodsItsLog(t *testing.T) {
	h := newHost(t, allowAll)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen atomic.Int64
	var once sync.Once
	var cancelledAt atomic.Int64 // unix nanoseconds
	h.runner.TraceSink = writerFunc(func(p []byte) (int, error) {
		// Cancel once the flood has been going for a while: 16 MiB of it.
		if seen.Add(int64(len(p))) > 16<<20 {
			once.Do(func() { cancelledAt.Store(time.Now().UnixNano()); cancel() })
		}
		return len(p), nil
	})
	res := h.run(ctx, emulator.Job{
		Response: response(t, 110, nil),
		Script:   []string{"yes 'a job that floods its log with one line after another'"},
	})
	if res.State != "failed" || res.RunnerFailureReason != "job_canceled" {
		t.Fatalf("state %s reason %s (%v)", res.State, res.RunnerFailureReason, res.Err)
	}
	var run *emulator.Call
	for i, c := range res.Calls {
		if c.Stage == "run:step_script" || c.Stage == "run:build_script" {
			run = &res.Calls[i]
		}
	}
	if run == nil {
		t.Fatalf("no run call of the user script: %+v", res.Calls)
	}
	if slices.Contains(run.Signals, "killed") {
		t.Errorf("the runner had to SIGKILL the run stage (signals %v): the executor did not act on SIGTERM in time", run.Signals)
	}
	// The runner's SIGKILL comes after its graceful timeout (3 s here); `yes` dies on the
	// executor's SIGTERM at once.
	took := run.End.Sub(time.Unix(0, cancelledAt.Load()))
	t.Logf("%s ended %s after the cancel, %d MiB of output seen", run.Stage, took.Round(time.Millisecond), seen.Load()>>20)
	h.assertClean(110)
}
