package realrunner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/emulator"
)

// spyCall is one executor call as testdata/spy.sh recorded it.
type spyCall struct {
	stage    string   // config, prepare, cleanup, or the run stage
	env      []string // as received, in order
	script   string   // run calls
	response []byte   // JOB_RESPONSE_FILE
	exit     string
}

func readSpy(t *testing.T, dir string) []spyCall {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var calls []spyCall
	for _, e := range entries {
		read := func(name string) string {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name(), name))
			return string(b)
		}
		args := strings.Split(strings.TrimSpace(read("args")), "\n")
		c := spyCall{stage: args[len(args)-1], env: strings.Split(strings.TrimSpace(read("env")), "\n"),
			script: read("script"), response: []byte(read("job-response.json")), exit: strings.TrimSpace(read("exit"))}
		if len(args) >= 3 && args[len(args)-3] == "run" {
			c.stage = "run:" + c.stage
		}
		calls = append(calls, c)
	}
	return calls
}

// names returns the sorted variable names of env.
func names(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// takeJob asks the fake GitLab for a job, as a runner does, and returns its JSON.
func takeJob(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Post(url+"/api/v4/jobs/request", "application/json",
		strings.NewReader(`{"token":"glrt-runner1-0123456789abcdef","info":{"name":"emulator"}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("job request: %s", resp.Status)
	}
	return body
}

// The same chat job through the real runner and through the emulator: the executor must
// see the same calls in the same order, the same environment names, the same stage
// scripts (but for paths and the runner's random ids), the same job response, and exit
// the same way.
func TestEmulatorMatchesRealRunner(t *testing.T) {
	spec := jobSpec{id: 620,
		script:      []string{"echo hello from $CHAT_INPUT", chatReply("the reply"), "exit 3"},
		afterScript: []string{`echo "after: $CI_JOB_STATUS"`},
		masked:      map[string]string{"EXTRA_SECRET": "extra-secret-value"},
		// encoding/json re-escapes <, > and & in the runner's JOB_RESPONSE_FILE.
		vars: map[string]string{"CHAT_INPUT": "staging <v1.4.2> & more"},
	}

	realSpy := t.TempDir()
	real := newRig(t, rigOptions{spyDir: realSpy})
	_, final := real.run(chatJob(t, spec))
	assertFinal(t, final, "failed", "script_failure", 3)

	emuSpy := t.TempDir()
	emu := newRig(t, rigOptions{spyDir: emuSpy})
	emu.gitlab.Enqueue(t, chatJob(t, spec))
	spy, _ := filepath.Abs("testdata/spy.sh")
	args := func(stage string) []string {
		return []string{emuSpy, executorBin, "--config", emu.execConfig, stage}
	}
	env := emu.runnerEnv(1)
	// What emulator.go's writeResponse should do itself (see RunnerJobResponse).
	response, err := emulator.RunnerJobResponse(takeJob(t, emu.gitlab.URL))
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&emulator.Runner{
		Executable: spy, ConfigArgs: args("config"), PrepareArgs: args("prepare"), RunArgs: args("run"), CleanupArgs: args("cleanup"),
		Env: env, WorkDir: filepath.Join(emu.dir, "tmp-1"), Name: "chatops-1", ShortToken: "runner1-0",
		GracefulKillTimeout: 10 * time.Second, ForcefulKillTimeout: 5 * time.Second,
	}).Run(context.Background(), emulator.Job{Response: response})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != "failed" || res.FailureReason != emulator.ScriptFailure || res.ExitCode != 3 {
		t.Errorf("emulator: state %s reason %s exit %d", res.State, res.FailureReason, res.ExitCode)
	}

	realCalls, emuCalls := readSpy(t, realSpy), readSpy(t, emuSpy)
	stages := func(calls []spyCall) (out []string) {
		for _, c := range calls {
			out = append(out, c.stage+" exit "+c.exit)
		}
		return out
	}
	if r, e := stages(realCalls), stages(emuCalls); !slices.Equal(r, e) {
		t.Fatalf("calls differ:\nreal     %q\nemulator %q", r, e)
	}
	normalize := func(rig *rig, s string) string {
		s = strings.ReplaceAll(s, rig.dir, "<DIR>")
		return volatile.ReplaceAllString(s, "<ID>")
	}
	if !bytes.Contains(realCalls[0].response, []byte(`staging \u003cv1.4.2\u003e \u0026 more`)) {
		t.Errorf("the runner no longer re-escapes HTML characters in JOB_RESPONSE_FILE:\n%s", realCalls[0].response)
	}
	for i := range realCalls {
		rc, ec := realCalls[i], emuCalls[i]
		if r, e := names(rc.env), names(ec.env); !slices.Equal(r, e) {
			t.Errorf("%s: environment names differ:\nonly real:     %q\nonly emulator: %q", rc.stage, minus(r, e), minus(e, r))
		}
		if r, e := normalize(real, rc.script), normalize(emu, ec.script); r != e {
			t.Errorf("%s: scripts differ:\n%s", rc.stage, lineDiff(r, e))
		}
		if r, e := rc.response, ec.response; !bytes.Equal(r, e) {
			t.Errorf("%s: JOB_RESPONSE_FILE differs:\nreal     %s\nemulator %s", rc.stage, r, e)
		}
	}
}

// volatile matches what differs between any two runs: temporary directory suffixes, the
// runner's system id, timestamps.
var volatile = regexp.MustCompile(`custom-executor\d+|script\d+|s_[0-9a-f]{12}|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// lineDiff shows, for each differing line, where the two first differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x == y {
			continue
		}
		at := 0
		for at < min(len(x), len(y)) && x[at] == y[at] {
			at++
		}
		from := max(0, at-60)
		fmt.Fprintf(&out, "line %d, byte %d:\nreal:     …%q\nemulator: …%q\n", i+1, at, x[from:min(len(x), at+60)], y[from:min(len(y), at+60)])
	}
	return out.String()
}
