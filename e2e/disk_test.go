package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/emulator"
)

// mountSmall mounts a tmpfs of size on dir for the test, or skips when this machine
// cannot (not root, no mount): a size-limited fake would test the fake, not the disk.
func mountSmall(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
}

// A state_dir on a full file system costs the reply, never the job: a job that exits 0
// still succeeds and exit 42 stays 42 (allow_failure: exit_codes depends on it), the job
// log says what was dropped, and chat still gets the true status.
func TestFullDiskCostsTheReplyNeverTheJob(t *testing.T) {
	for _, tt := range []struct {
		name   string
		id     int64
		exit   string
		state  string
		status string
	}{
		{"success", 700, "0", "success", ":white_check_mark:"},
		{"exit 42", 701, "42", "failed", ":x:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, allowAll)
			mountSmall(t, filepath.Join(h.dir, "state"), "2m")
			res := h.run(context.Background(), emulator.Job{
				Response: response(t, tt.id, nil),
				// 8 MB of output into a 2 MB state_dir.
				Script: []string{"head -c 8000000 /dev/zero | tr '\\0' 'a' | fold -w 100", "echo the end", "exit " + tt.exit},
			})
			if res.State != tt.state {
				t.Fatalf("state %s reason %s (%v): the full disk changed the job's result", res.State, res.RunnerFailureReason, res.Err)
			}
			if tt.exit == "42" && (res.ExitCode != 42 || res.FailureReason != emulator.ScriptFailure) {
				t.Errorf("exit code %d reason %s, want 42 script_failure", res.ExitCode, res.FailureReason)
			}
			trace := string(res.RawTrace)
			if !strings.Contains(trace, "the chat reply will be incomplete") || !strings.Contains(trace, "bytes of output were not captured") || !strings.Contains(trace, "the end\n") {
				t.Errorf("job log does not say what was dropped (or lost its own output):\n%s", tail(trace, 2000))
			}
			if st := finalStatus(t, h, tt.id); !strings.HasPrefix(st, tt.status) {
				t.Errorf("chat status %q, want %s", st, tt.status)
			}
			assertNoRawOutput(t, h, false)
		})
	}
}

// max_state_size bounds all jobs' captures together, before the disk is full.
func TestMaxStateSizeBoundsTheCapture(t *testing.T) {
	h := newHost(t, allowAll+"[executor]\n")
	cfg, _ := os.ReadFile(h.config)
	cfg = []byte(strings.Replace(string(cfg), "kill_grace = \"500ms\"\n", "kill_grace = \"500ms\"\nmax_state_size = \"3MiB\"\n", 1))
	cfg = []byte(strings.Replace(string(cfg), allowAll+"[executor]\n", allowAll, 1))
	if err := os.WriteFile(h.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 702, nil),
		Script:   []string{"head -c 8000000 /dev/zero | tr '\\0' 'b' | fold -w 100", "echo done"},
	})
	if res.State != "success" {
		t.Fatalf("state %s (%v)\n%s", res.State, res.Err, tail(string(res.RawTrace), 2000))
	}
	if !strings.Contains(string(res.RawTrace), "executor.max_state_size reached") {
		t.Errorf("job log does not name the bound:\n%s", tail(string(res.RawTrace), 2000))
	}
	_, thread := jobMessages(h, 702)
	var reply strings.Builder
	for _, m := range thread {
		reply.WriteString(m.Text)
		for _, f := range m.Files {
			reply.Write(f.Content)
		}
	}
	if !strings.Contains(reply.String(), "the reply is incomplete") {
		t.Errorf("the reply does not say it was cut:\n%s", tail(reply.String(), 1000))
	}
	assertNoRawOutput(t, h, false)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
