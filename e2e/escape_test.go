package e2e

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/emulator"
)

// cancelOn cancels the returned context once the job log shows marker.
func cancelOn(h *host, marker string) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	seen := make(chan struct{})
	var once sync.Once
	var buf syncBuf
	h.runner.TraceSink = writerFunc(func(p []byte) (int, error) {
		buf.Write(p)
		if bytes.Contains(buf.Bytes(), []byte(marker)) {
			once.Do(func() { close(seen) })
		}
		return len(p), nil
	})
	go func() {
		select {
		case <-seen:
			cancel()
		case <-time.After(60 * time.Second):
		}
	}()
	return ctx
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
}

func (s *syncBuf) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// escapes are ways a job's process can try to leave its process group or session, each
// writing the pid that must not survive. {F} is the pid file.
var escapes = map[string]string{
	"setsid":               `setsid sh -c 'echo $$ >> {F}; exec sleep 300' </dev/null >/dev/null 2>&1 &`,
	"setsid -f":            `setsid -f sh -c 'echo $$ >> {F}; exec sleep 300' </dev/null >/dev/null 2>&1`,
	"set -m":               `set -m; sh -c 'echo $$ >> {F}; exec sleep 300' </dev/null >/dev/null 2>&1 & set +m`,
	"perl setpgrp":         `perl -e 'setpgrp(0, 0); exec @ARGV' sh -c 'echo $$ >> {F}; exec sleep 300' </dev/null >/dev/null 2>&1 &`,
	"setsid holding pipe":  `setsid sh -c 'echo $$ >> {F}; exec sleep 300' &`,
	"double fork":          `( ( sh -c 'echo $$ >> {F}; exec sleep 300' </dev/null >/dev/null 2>&1 & ) & )`,
	"nohup":                `nohup sh -c 'echo $$ >> {F}; exec sleep 300' </dev/null >/dev/null 2>&1 &`,
	"disown":               `sh -c 'echo $$ >> {F}; exec sleep 300' </dev/null >/dev/null 2>&1 & disown`,
	"daemonizing subshell": `( trap "" HUP TERM; cd /; umask 0; setsid sh -c 'trap "" TERM; echo $$ >> {F}; exec sleep 300' </dev/null >/dev/null 2>&1 & ) &`,
}

func TestEscapesDoNotOutliveTheJob(t *testing.T) {
	requireRoot(t)
	for _, cancelled := range []bool{false, true} {
		for name, cmd := range escapes {
			mode := "normal end"
			if cancelled {
				mode = "cancel"
			}
			t.Run(mode+"/"+name, func(t *testing.T) {
				t.Parallel()
				h := newHost(t, allowAll)
				pids := filepath.Join(h.public, "pids")
				// The pid file is written by the escaped process itself: wait for it.
				script := []string{strings.ReplaceAll(cmd, "{F}", pids),
					"for i in $(seq 100); do [ -s " + pids + " ] && break; sleep 0.1; done",
					"echo children started"}
				ctx := context.Background()
				if cancelled {
					ctx = cancelOn(h, "children started\n")
					script = append(script, "sleep 300")
				}
				res := h.run(ctx, emulator.Job{Response: response(t, 810, nil), Script: script})
				want := "success"
				if cancelled {
					want = "failed"
				}
				if res.State != want {
					t.Fatalf("state %s, want %s\n%s", res.State, want, res.RawTrace)
				}
				uid := h.leasedUID(res)
				assertDead(t, pids)
				assertNoProcesses(t, uid)
				if bytes.Contains(res.RunnerLog, []byte("kept its output open")) || bytes.Contains(res.RawTrace, []byte("kept its output open")) {
					t.Error("the stage waited for a process holding its output instead of stopping it")
				}
				h.assertClean(810)
			})
		}
	}
}
