// Package bench measures the executor as the runner sees it: a separate process whose
// output the runner reads from a pipe. Figures are printed, never asserted — these machines
// are shared and noisy — and every comparison is a ratio measured in the same run, with the
// two sides alternated so that background load hits both alike.
//
//	make bench
package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/jobuser"
)

// rounds is how many times each side runs (at least 5 asked); more rounds steady the
// median on a noisy shared machine.
const rounds = 11

// job is a prepared job: config, job response and state, ready for `run` calls.
type job struct {
	bin, dir, config string
	env              []string
}

func setup(b *testing.B) *job {
	b.Helper()
	dir := b.TempDir()
	uids := ""
	if os.Geteuid() == 0 {
		// As a packaged runner runs it: each job as a uid of its own, which must reach its
		// build dir.
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, jobuser.RootMode); err != nil {
				b.Fatal(err)
			}
		}
		uids = fmt.Sprintf("job_uids = %q\n", jobuser.RandomRange(10))
	}
	bin := filepath.Join(dir, "chatops-executor")
	build := exec.Command("go", "build", "-o", bin, "../executor")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "config.toml")
	toml := fmt.Sprintf("[executor]\nbuilds_dir = %q\ncache_dir = %q\nstate_dir = %q\n%s[policy]\ndefault = \"allow\"\n",
		filepath.Join(dir, "builds"), filepath.Join(dir, "cache"), filepath.Join(dir, "state"), uids)
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		b.Fatal(err)
	}
	jr, err := os.ReadFile("../examples/job-response.json")
	if err != nil {
		b.Fatal(err)
	}
	jrf := filepath.Join(dir, "job.json")
	if err := os.WriteFile(jrf, jr, 0o600); err != nil {
		b.Fatal(err)
	}
	j := &job{bin: bin, dir: dir, config: cfg, env: []string{
		"PATH=" + os.Getenv("PATH"),
		"JOB_RESPONSE_FILE=" + jrf,
		"BUILD_FAILURE_EXIT_CODE=1",
		"SYSTEM_FAILURE_EXIT_CODE=2",
		"BUILD_EXIT_CODE_FILE=" + filepath.Join(dir, "exit-code"),
	}}
	if out, err := j.command("prepare").CombinedOutput(); err != nil {
		b.Fatalf("prepare: %v\n%s", err, out)
	}
	return j
}

func (j *job) command(args ...string) *exec.Cmd {
	cmd := exec.Command(j.bin, append([]string{"--config", j.config}, args...)...)
	cmd.Env = j.env
	return cmd
}

// sample is one measured process run.
type sample struct {
	wall   time.Duration
	cpu    time.Duration // user+system of the process and its waited-for children
	maxRSS int64         // KiB: the largest of the process and its children
}

// measure runs cmd with its stdout read from a pipe, as the runner reads it.
func measure(b *testing.B, cmd *exec.Cmd, size int64) sample {
	b.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	n, err := io.CopyBuffer(io.Discard, out, make([]byte, 64<<10))
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%v: %v", cmd.Args, err)
	}
	wall := time.Since(start)
	if n < size {
		b.Fatalf("read %d bytes, want at least %d", n, size)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{
		wall:   wall,
		cpu:    cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
		maxRSS: ru.Maxrss,
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func medianF(fs []float64) float64 {
	s := append([]float64(nil), fs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// printScript writes a bash script printing size bytes of 100-character lines, optionally
// inside one chat_reply section.
func printScript(b *testing.B, dir string, size int64, section bool) string {
	b.Helper()
	body := fmt.Sprintf("yes %s | head -c %d\n", strings.Repeat("x", 99), size)
	name := "print.sh"
	if section {
		body = "printf 'section_start:%s:chat_reply\\r\\033[0K\\n' \"$(date +%s)\"\n" + body +
			"printf 'section_end:%s:chat_reply\\r\\033[0K\\n' \"$(date +%s)\"\n"
		name = "print-section.sh"
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/usr/bin/env bash\nset -e\n"+body), 0o700); err != nil {
		b.Fatal(err)
	}
	return p
}

// side is one way of running a script, measured against the others.
type side struct {
	name string
	cmd  func() *exec.Cmd
}

// compare runs every side rounds times, rotating which goes first, and reports each
// side's median time as a ratio to the first side's (with the spread of the per-round
// ratios), its CPU beyond the first side's per GiB, and its peak RSS.
func compare(b *testing.B, what string, size int64, sides []side) {
	samples := make([][]sample, len(sides))
	ratios := make([][]float64, len(sides))
	for r := 0; r < rounds; r++ {
		round := make([]sample, len(sides))
		for k := range sides {
			i := (k + r) % len(sides)
			round[i] = measure(b, sides[i].cmd(), size)
		}
		for i := range sides {
			samples[i] = append(samples[i], round[i])
			ratios[i] = append(ratios[i], round[i].wall.Seconds()/round[0].wall.Seconds())
		}
	}
	gib := float64(size) / (1 << 30)
	var baseCPU []time.Duration
	for _, s := range samples[0] {
		baseCPU = append(baseCPU, s.cpu)
	}
	b.Logf("%s: %d MiB through a pipe, %d rounds, order rotated", what, size>>20, rounds)
	for i, sd := range sides {
		var walls, cpus []time.Duration
		var rss int64
		for _, s := range samples[i] {
			walls, cpus = append(walls, s.wall), append(cpus, s.cpu)
			rss = max(rss, s.maxRSS)
		}
		sorted := append([]float64(nil), ratios[i]...)
		sort.Float64s(sorted)
		extraCPU := (median(cpus) - median(baseCPU)).Seconds() / gib
		b.Logf("  %-32s median %6v  ratio %.3f (min %.3f, max %.3f)  extra CPU %6.3f s/GiB  peak RSS %5.1f MiB",
			sd.name, median(walls).Round(time.Millisecond), medianF(ratios[i]), sorted[0], sorted[len(sorted)-1], extraCPU, float64(rss)/1024)
		if i > 0 {
			b.ReportMetric(medianF(ratios[i]), "ratio-"+strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "").Replace(sd.name))
		}
	}
}

// BenchmarkRunPassThrough compares `chatops-executor run` with bash running the same
// 512 MiB script directly: on a stage nothing captures (the script writes straight to the
// runner's pipe) and on the user script (output teed into the reply capture).
func BenchmarkRunPassThrough(b *testing.B) {
	const size = 512 << 20
	j := setup(b)
	script := printScript(b, j.dir, size, false)
	compare(b, "run vs bash direct", size, []side{
		{"bash direct", func() *exec.Cmd { return exec.Command("bash", script) }},
		{"run prepare_script (no capture)", func() *exec.Cmd { return j.command("run", script, "prepare_script") }},
		{"run build_script (capture)", func() *exec.Cmd { return j.command("run", script, "build_script") }},
	})
}

// BenchmarkCapture measures what capturing the reply costs on 1 GiB of user-script output,
// with and without a chat_reply section, against the same output passed through untouched.
func BenchmarkCapture(b *testing.B) {
	const size = 1 << 30
	j := setup(b)
	plain := printScript(b, j.dir, size, false)
	section := printScript(b, j.dir, size, true)
	compare(b, "reply capture vs pass-through", size, []side{
		{"pass-through (prepare_script)", func() *exec.Cmd { return j.command("run", plain, "prepare_script") }},
		{"capture, no chat_reply", func() *exec.Cmd { return j.command("run", plain, "build_script") }},
		{"capture, 1 GiB in chat_reply", func() *exec.Cmd { return j.command("run", section, "build_script") }},
	})
}

// BenchmarkConfig times one `config` call, process start to exit.
func BenchmarkConfig(b *testing.B) {
	j := setup(b)
	var ds []time.Duration
	for i := 0; i < 50; i++ {
		cmd := j.command("config")
		start := time.Now()
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("config: %v", err)
		}
		ds = append(ds, time.Since(start))
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			b.Fatalf("config output: %v", err)
		}
	}
	sorted := append([]time.Duration(nil), ds...)
	sort.Slice(sorted, func(i, k int) bool { return sorted[i] < sorted[k] })
	b.Logf("config call, %d runs: median %v (min %v, p90 %v)", len(ds), median(ds).Round(10*time.Microsecond),
		sorted[0].Round(10*time.Microsecond), sorted[len(sorted)*9/10].Round(10*time.Microsecond))
	b.ReportMetric(float64(median(ds).Microseconds())/1000, "ms/config")
}
