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
)

const outputSize = 512 << 20

// rounds is how many times each side runs; the issue asks for at least 5.
const rounds = 7

// job is a prepared job: config, job response and state, ready for `run` calls.
type job struct {
	bin, dir, config string
	env              []string
}

func setup(b *testing.B) *job {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "chatops-executor")
	build := exec.Command("go", "build", "-o", bin, "../executor")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "config.toml")
	toml := fmt.Sprintf("[executor]\nbuilds_dir = %q\ncache_dir = %q\nstate_dir = %q\n",
		filepath.Join(dir, "builds"), filepath.Join(dir, "cache"), filepath.Join(dir, "state"))
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
func measure(b *testing.B, cmd *exec.Cmd) sample {
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
	if n != outputSize {
		b.Fatalf("read %d bytes, want %d", n, outputSize)
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

// printScript writes a bash script printing outputSize bytes of 100-character lines.
func printScript(b *testing.B, dir string) string {
	p := filepath.Join(dir, "print.sh")
	body := fmt.Sprintf("#!/usr/bin/env bash\nset -e\nyes %s | head -c %d\n", strings.Repeat("x", 99), outputSize)
	if err := os.WriteFile(p, []byte(body), 0o700); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkRunPassThrough compares `chatops-executor run` on a script printing 512 MiB with
// bash running the same script directly, alternating the two.
func BenchmarkRunPassThrough(b *testing.B) {
	j := setup(b)
	script := printScript(b, j.dir)
	var ratios []float64
	var direct, executor []sample
	for i := 0; i < rounds; i++ {
		// Alternate which side goes first, so neither always runs on a warmer cache.
		var d, e sample
		if i%2 == 0 {
			d = measure(b, exec.Command("bash", script))
			e = measure(b, j.command("run", script, "build_script"))
		} else {
			e = measure(b, j.command("run", script, "build_script"))
			d = measure(b, exec.Command("bash", script))
		}
		direct, executor = append(direct, d), append(executor, e)
		ratios = append(ratios, e.wall.Seconds()/d.wall.Seconds())
	}
	report(b, "run (build_script, no capture)", direct, executor, ratios)
}

func report(b *testing.B, what string, direct, executor []sample, ratios []float64) {
	sorted := append([]float64(nil), ratios...)
	sort.Float64s(sorted)
	var dw, ew, dc, ec []time.Duration
	var rss int64
	for i := range direct {
		dw, ew = append(dw, direct[i].wall), append(ew, executor[i].wall)
		dc, ec = append(dc, direct[i].cpu), append(ec, executor[i].cpu)
		rss = max(rss, executor[i].maxRSS)
	}
	gib := float64(outputSize) / (1 << 30)
	overheadCPU := (median(ec) - median(dc)).Seconds() / gib
	b.Logf("%s, %d MiB, %d alternating rounds:", what, outputSize>>20, len(ratios))
	b.Logf("  wall: bash direct median %v, executor median %v", median(dw).Round(time.Millisecond), median(ew).Round(time.Millisecond))
	b.Logf("  time ratio executor/direct: median %.3f (min %.3f, max %.3f)", medianF(ratios), sorted[0], sorted[len(sorted)-1])
	b.Logf("  executor's own CPU: %.3f s/GiB (median CPU %v - %v of the script alone)", overheadCPU, median(ec).Round(time.Millisecond), median(dc).Round(time.Millisecond))
	b.Logf("  peak RSS of executor and script: %.1f MiB", float64(rss)/1024)
	b.ReportMetric(medianF(ratios), "ratio")
	b.ReportMetric(overheadCPU, "cpu-s/GiB")
	b.ReportMetric(float64(rss)/1024, "peak-MiB")
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
