package stages

import (
	"bytes"
	"os/exec"
	"sync"
	"syscall"
	"testing"
)

// startGroup starts a shell command as the leader of a new process group, the way run
// starts a script, and reaps it when the test ends.
func startGroup(t *testing.T, command string) int {
	t.Helper()
	cmd := exec.Command("bash", "-c", command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return cmd.Process.Pid
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes a stage makes in tests: the
// script's output copied by os/exec and the executor's own messages. In production both go
// to the runner's file descriptors, where the kernel orders them.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Bytes() []byte { return []byte(b.String()) }

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}
