// Package bench measures the executor as the runner sees it: a separate process whose
// output the runner reads from pipes. Figures are printed, never asserted — these machines
// are shared and noisy — and every comparison is a ratio measured in the same run, with the
// sides alternated so that background load hits them alike.
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
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/jobuser"
)

// shapeRounds is how many times each side runs each output shape (at least 5 asked).
const shapeRounds = 5

// captureRounds is how many times each side of BenchmarkCapture runs.
const captureRounds = 5

// benchToken is the fake Slack's token: the executor gets it as $SLACK_BOT_TOKEN.
const benchToken = "xoxb-bench-token"

var (
	buildRoot string   // where the executor binaries are built; removed at the end
	buildOnce sync.Map // build tags → *builtBinary
	slackOnce sync.Once
	slackFake *slacktest.Server
	slackErr  error
)

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

// binary builds the executor once per set of build tags ("" or "splice").
func binary(b *testing.B, tags string) string {
	b.Helper()
	v, _ := buildOnce.LoadOrStore(tags, &builtBinary{})
	bb := v.(*builtBinary)
	bb.once.Do(func() {
		bb.path = filepath.Join(buildRoot, "chatops-executor-"+tags)
		args := []string{"build", "-o", bb.path}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		out, err := exec.Command("go", append(args, "../executor")...).CombinedOutput()
		if err != nil {
			bb.err = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if bb.err != nil {
		b.Fatal(bb.err)
	}
	return bb.path
}

// fakeSlack is the loopback Slack every replies-on job talks to.
func fakeSlack(b *testing.B) *slacktest.Server {
	b.Helper()
	slackOnce.Do(func() { slackFake, slackErr = slacktest.Start(benchToken) })
	if slackErr != nil {
		b.Fatal(slackErr)
	}
	return slackFake
}

// job is a prepared job: config, job response and state, ready for `run` calls.
type job struct {
	bin, dir, config string
	env              []string
}

// jobKind says how the executor is set up for a side.
type jobKind struct {
	replies bool   // a Slack token (the loopback fake), start message and progress edits
	tags    string // build tags of the executor binary
}

func setup(b *testing.B, k jobKind) *job {
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
	bin := binary(b, k.tags)
	cfg := filepath.Join(dir, "config.toml")
	toml := fmt.Sprintf("[executor]\nbuilds_dir = %q\ncache_dir = %q\nstate_dir = %q\n%s[policy]\ndefault = \"allow\"\n",
		filepath.Join(dir, "builds"), filepath.Join(dir, "cache"), filepath.Join(dir, "state"), uids)
	env := []string{"PATH=" + os.Getenv("PATH")}
	if k.replies {
		// Progress every second, so that a run of a second or two edits the start message
		// with the last line of output as a real job's would.
		toml += fmt.Sprintf("[slack]\napi_url = %q\nack = true\nprogress_interval = \"1s\"\nreply = \"always\"\n", fakeSlack(b).APIURL())
		env = append(env, "SLACK_BOT_TOKEN="+benchToken)
	}
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
	j := &job{bin: bin, dir: dir, config: cfg, env: append(env,
		"JOB_RESPONSE_FILE="+jrf,
		"BUILD_FAILURE_EXIT_CODE=1",
		"SYSTEM_FAILURE_EXIT_CODE=2",
		"BUILD_EXIT_CODE_FILE="+filepath.Join(dir, "exit-code"),
	)}
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
	maxRSS int64         // KiB: the process's own peak (VmHWM), sampled while it runs
	lost   int64         // bytes the executor said its reply capture missed
	own    time.Duration // user+system of the process alone, as last sampled before it exited
}

// measure runs cmd with its stdout and stderr read from pipes, as the runner reads them.
func measure(b *testing.B, cmd *exec.Cmd, size int64) sample {
	b.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// wait4's ru_maxrss cannot be used: a child started with vfork carries the parent's
	// peak across exec. The process's own VmHWM is sampled instead; it only grows.
	hwm := make(chan procSample, 1)
	stop := make(chan struct{})
	go func() { hwm <- sampleProc(cmd.Process.Pid, stop) }()
	var errBytes int64
	errTail := &tail{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		errBytes, _ = io.CopyBuffer(errTail, stderr, make([]byte, 64<<10))
	}()
	n, err := io.CopyBuffer(io.Discard, stdout, make([]byte, 64<<10))
	if err != nil {
		b.Fatal(err)
	}
	wg.Wait()
	close(stop)
	peak := <-hwm
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%v: %v", cmd.Args, err)
	}
	wall := time.Since(start)
	if n+errBytes < size {
		b.Fatalf("%v: read %d bytes, want at least %d", cmd.Args, n+errBytes, size)
	}
	var lost int64
	if m := lostRe.FindSubmatch(errTail.buf); m != nil {
		lost, _ = strconv.ParseInt(string(m[1]), 10, 64)
		errBytes -= int64(len(m[0])) // the warning is not the job's output
	}
	return sample{
		wall:   wall,
		cpu:    cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
		maxRSS: peak.hwm,
		own:    peak.cpu,
		lost:   lost,
	}
}

// lostRe finds the executor's warning that its reply capture fell behind.
var lostRe = regexp.MustCompile(`reply capture fell behind the job: ([0-9]+) bytes`)

// tail keeps the last 4 KiB written to it: where the executor's own messages are.
type tail struct{ buf []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p[max(0, len(p)-4096):]...)
	if len(t.buf) > 4096 {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-4096:]...)
	}
	return len(p), nil
}

// procSample is what sampleProc saw of a process.
type procSample struct {
	hwm int64         // VmHWM, KiB
	cpu time.Duration // utime+stime of the process itself (not its children)
}

// sampleProc reads the process's VmHWM and own CPU time every few milliseconds until stop
// is closed (the process has closed its output and is exiting), and returns the last.
func sampleProc(pid int, stop <-chan struct{}) procSample {
	status, stat := fmt.Sprintf("/proc/%d/status", pid), fmt.Sprintf("/proc/%d/stat", pid)
	var last procSample
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if data, err := os.ReadFile(status); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					var kib int64
					fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kib)
					last.hwm = max(last.hwm, kib)
				}
			}
		}
		if data, err := os.ReadFile(stat); err == nil {
			// Fields after the command (which is in parentheses and may hold spaces):
			// state is field 3, utime 14, stime 15, in clock ticks (100 per second).
			if i := strings.LastIndexByte(string(data), ')'); i >= 0 {
				f := strings.Fields(string(data)[i+1:])
				if len(f) > 13 {
					ut, _ := strconv.ParseInt(f[11], 10, 64)
					st, _ := strconv.ParseInt(f[12], 10, 64)
					last.cpu = max(last.cpu, time.Duration(ut+st)*10*time.Millisecond)
				}
			}
		}
		select {
		case <-stop:
			return last
		case <-t.C:
		}
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

func spread(fs []float64) (lo, hi float64) {
	s := append([]float64(nil), fs...)
	sort.Float64s(s)
	return s[0], s[len(s)-1]
}

// writeScript writes a bash script with body.
func writeScript(b *testing.B, dir, name, body string) string {
	b.Helper()
	p := filepath.Join(dir, name+".sh")
	if err := os.WriteFile(p, []byte("#!/usr/bin/env bash\nset -e\n"+body+"\n"), 0o700); err != nil {
		b.Fatal(err)
	}
	return p
}

// shape is a kind of job output.
type shape struct {
	name string
	body string // bash
	size int64  // bytes it prints, stdout and stderr together
}

// seqBytes is the size of `seq 1 n`'s output.
func seqBytes(n int64) int64 {
	var total int64
	for digits, lo := int64(1), int64(1); lo <= n; digits, lo = digits+1, lo*10 {
		hi := min(n, lo*10-1)
		total += (hi - lo + 1) * (digits + 1)
	}
	return total
}

// shapes are the outputs jobs print: log lines, short lines (test runners, `ls`, package
// managers), one long line without a newline, and a job that logs to stderr.
var shapes = []shape{
	{"70-char lines", "yes " + strings.Repeat("x", 69) + " | head -c 512M", 512 << 20},
	{"short lines (seq)", "seq 1 40000000", seqBytes(40000000)},
	{"no newline", "head -c 256M /dev/zero | tr '\\0' x", 256 << 20},
	{"stderr, 70-char lines", "yes " + strings.Repeat("y", 69) + " | head -c 256M >&2", 256 << 20},
}

// side is one way of running a script, measured against the others.
type side struct {
	name string
	cmd  func(script string) *exec.Cmd
}

// result collects one side's samples for one shape.
type result struct {
	samples []sample
	ratios  []float64 // wall time over the first side's, per round
	extra   []float64 // CPU beyond the first side's, per round, s/GiB
	own     []float64 // the process's own CPU, per round, s/GiB
}

// compare runs every side on every shape rounds times, rotating which side goes first, and
// reports for each side its median wall time as a ratio to the first side's (with the spread
// of the per-round ratios), its CPU beyond the first side's per GiB (median of the per-round
// differences, with their spread), and the peak RSS of its process tree.
func compare(b *testing.B, what string, rounds int, scripts []string, ss []shape, sides []side) {
	res := make([][]result, len(ss))
	for i := range res {
		res[i] = make([]result, len(sides))
	}
	for r := 0; r < rounds; r++ {
		for si, sh := range ss {
			round := make([]sample, len(sides))
			for k := range sides {
				i := (k + r + si) % len(sides)
				round[i] = measure(b, sides[i].cmd(scripts[si]), sh.size)
			}
			gib := float64(sh.size) / (1 << 30)
			for i := range sides {
				rr := &res[si][i]
				rr.samples = append(rr.samples, round[i])
				rr.ratios = append(rr.ratios, round[i].wall.Seconds()/round[0].wall.Seconds())
				rr.extra = append(rr.extra, (round[i].cpu-round[0].cpu).Seconds()/gib)
				rr.own = append(rr.own, round[i].own.Seconds()/gib)
			}
		}
	}
	// Printed rather than logged: the testing package cuts a benchmark's log to 10 lines.
	fmt.Printf("%s: %d rounds, order rotated; ratio and extra CPU are against %q in the same round\n", what, rounds, sides[0].name)
	for si, sh := range ss {
		fmt.Printf("%s (%d MiB):\n", sh.name, sh.size>>20)
		for i, sd := range sides {
			rr := res[si][i]
			var walls []time.Duration
			var rss, lost int64
			lossy := 0
			for _, s := range rr.samples {
				walls = append(walls, s.wall)
				rss = max(rss, s.maxRSS)
				if s.lost > 0 {
					lossy++
					lost = max(lost, s.lost)
				}
			}
			rlo, rhi := spread(rr.ratios)
			elo, ehi := spread(rr.extra)
			note := ""
			if lossy > 0 {
				note = fmt.Sprintf("  capture fell behind in %d runs (at most %.1f MiB missed)", lossy, float64(lost)/(1<<20))
			}
			olo, ohi := spread(rr.own)
			fmt.Printf("  %-33s median %7v  ratio %.3f (%.3f–%.3f)  extra CPU %6.3f s/GiB (%.3f–%.3f)  own CPU %5.3f s/GiB (%.3f–%.3f)  peak RSS %5.1f MiB%s\n",
				sd.name, median(walls).Round(time.Millisecond), medianF(rr.ratios), rlo, rhi,
				medianF(rr.extra), elo, ehi, medianF(rr.own), olo, ohi, float64(rss)/1024, note)
			if i > 0 {
				metric := strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "", "/", "-").Replace(sh.name + " " + sd.name)
				b.ReportMetric(medianF(rr.ratios), "ratio-"+metric)
			}
		}
	}
	fmt.Println("extra CPU: the side's process tree minus the first side's (wait4 rusage of children), per GiB of output")
	fmt.Println("own CPU and peak RSS: the measured process alone (bash, or the executor without its children), /proc sampled every 5 ms (10 ms ticks)")
}

// BenchmarkShapes compares `chatops-executor run` on the user script with bash running the
// same script straight into the runner's pipes, for each shape of output: with cat between
// bash and the runner (the floor of any process in between), with replies on (the reply is
// captured, the start message shows progress) with the plain-copy engine that ships, with
// it on two P, and with the tee engine (-tags splice), and with replies off (nothing is
// captured: the job writes straight to the runner).
func BenchmarkShapes(b *testing.B) {
	on := setup(b, jobKind{replies: true})
	tee := setup(b, jobKind{replies: true, tags: "splice"})
	off := setup(b, jobKind{})
	twoP := setup(b, jobKind{replies: true})
	twoP.env = append(twoP.env, "GOMAXPROCS=2") // an admin's GOMAXPROCS is kept
	var scripts []string
	for i, sh := range shapes {
		scripts = append(scripts, writeScript(b, on.dir, fmt.Sprintf("shape-%d", i), sh.body))
	}
	run := func(j *job) func(string) *exec.Cmd {
		return func(script string) *exec.Cmd { return j.command("run", script, "build_script") }
	}
	compare(b, "run build_script vs bash direct", shapeRounds, scripts, shapes, []side{
		{"bash direct", func(script string) *exec.Cmd { return exec.Command("bash", script) }},
		// The least any process between the job and the runner costs: cat copies and does
		// nothing else. What the executor costs beyond it is its own.
		{"bash | cat (any relay)", func(script string) *exec.Cmd {
			return exec.Command("bash", "-c", `bash "$1" | cat`, "bash", script)
		}},
		{"replies on (plain copy)", run(on)},
		// As the run stage copied before it kept to one P (stages.RunProcs).
		{"replies on (plain, GOMAXPROCS=2)", run(twoP)},
		{"replies on (tee, -tags splice)", run(tee)},
		{"replies off (no capture)", run(off)},
	})
}

// BenchmarkCapture measures what capturing the reply costs on 512 MiB of user-script
// output, with and without a chat_reply section around it, against a stage nothing
// captures.
func BenchmarkCapture(b *testing.B) {
	const size = 512 << 20
	j := setup(b, jobKind{replies: true})
	body := "yes " + strings.Repeat("x", 99) + " | head -c 512M"
	plain := writeScript(b, j.dir, "print", body)
	section := writeScript(b, j.dir, "print-section",
		"printf 'section_start:%s:chat_reply\\r\\033[0K\\n' \"$(date +%s)\"\n"+body+"\n"+
			"printf 'section_end:%s:chat_reply\\r\\033[0K\\n' \"$(date +%s)\"")
	stage := func(stage string, script string) func(string) *exec.Cmd {
		return func(string) *exec.Cmd { return j.command("run", script, stage) }
	}
	compare(b, "reply capture vs pass-through", captureRounds, []string{""},
		[]shape{{"100-char lines", "", size}}, []side{
			{"pass-through (prepare_script)", stage("prepare_script", plain)},
			{"capture, no chat_reply", stage("build_script", plain)},
			{"capture, all in chat_reply", stage("build_script", section)},
		})
}

// BenchmarkConfig times one `config` call, process start to exit.
func BenchmarkConfig(b *testing.B) {
	j := setup(b, jobKind{})
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

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chatops-executor-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildRoot = dir
	code := m.Run()
	os.RemoveAll(buildRoot)
	if slackFake != nil {
		slackFake.Close()
	}
	os.Exit(code)
}
