package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/delivery/slacktest"
	"github.com/chatops-executor/chatops-executor/emulator"
	"github.com/chatops-executor/chatops-executor/tryjob"
)

// Rich replies: what a job leaves in $CHATOPS_REPLY_DIR, written from inside real jobs
// through the runner emulator, against the fake Slack (which validates Block Kit).

// tinyPNG is a real 8x4 PNG with a secret-free palette.
func tinyPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 4))
	for x := range 8 {
		for y := range 4 {
			if y >= 4-x/2 {
				img.Set(x, y, color.RGBA{0, 128, 255, 255})
			}
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withSlackKeys adds keys to the host's [slack] table (newHost writes it last).
func (h *host) withSlackKeys(t *testing.T, keys string) {
	t.Helper()
	f, err := os.OpenFile(h.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(keys); err != nil {
		t.Fatal(err)
	}
}

// thread returns the replies under the job's start message.
func thread(t *testing.T, h *host) []slacktest.Message {
	t.Helper()
	start := channel(t, h.slack, 1)[0]
	return h.slack.Thread("C0123ABCD", start.TS)
}

func filesOf(msgs []slacktest.Message) map[string][]byte {
	out := map[string][]byte{}
	for _, m := range msgs {
		for _, f := range m.Files {
			out[f.Filename] = f.Content
		}
	}
	return out
}

func (h *host) assertReplyDirGone(id int64) {
	h.t.Helper()
	p := filepath.Join(h.dir, "builds", strconv.FormatInt(id, 10)+".reply")
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		h.t.Errorf("the reply directory %s is still there: %v", p, err)
	}
}

const tableBlocksJob = `[
 {"type":"header","text":{"type":"plain_text","text":"Deploy report"}},
 {"type":"section","text":{"type":"mrkdwn","text":"token: $DEPLOY_TOKEN <!channel>"}},
 {"type":"section","fields":[
   {"type":"mrkdwn","text":"*host*"},{"type":"mrkdwn","text":"*version*"},
   {"type":"plain_text","text":"web1"},{"type":"plain_text","text":"v1.4.2"},
   {"type":"plain_text","text":"web2"},{"type":"plain_text","text":"$CI_JOB_TOKEN"}]},
 {"type":"divider"},
 {"type":"image","image_url":"https://charts.example/x.png?private_token=$DEPLOY_TOKEN","alt_text":"chart $DEPLOY_TOKEN"}
]`

func TestRichReplyMessageBlocksAndFiles(t *testing.T) {
	h := newHost(t, allowAll)
	h.withSlackKeys(t, "reply_files = \"all\"\n")
	chart := tinyPNG(t)
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 1500, nil),
		Script: []string{
			`test -d "$CHATOPS_REPLY_DIR" && test -z "$(ls -A "$CHATOPS_REPLY_DIR")" && echo reply dir fresh and empty`,
			`stat -c 'reply dir mode %a owner %u' "$CHATOPS_REPLY_DIR"; echo "job uid $(id -u)"`,
			"echo this output is replaced",
			`printf '*Deployed* v1.4.2 <!here> <!subteam^S0123|@ops> <@U0123ABCD>\ntoken %s\n' "$DEPLOY_TOKEN" > "$CHATOPS_REPLY_DIR/message.md"`,
			"cat > \"$CHATOPS_REPLY_DIR/blocks.json\" <<EOF\n" + tableBlocksJob + "\nEOF",
			`echo ` + base64.StdEncoding.EncodeToString(chart) + ` | base64 -d > "$CHATOPS_REPLY_DIR/chart.png"`,
			`printf 'host,token\nweb1,%s\nweb2,%s\n' "$CI_JOB_TOKEN" "glpat-abcdefghij0123456789" > "$CHATOPS_REPLY_DIR/hosts.csv"`,
			// A binary file with a secret as it is: binary cannot be redacted, so it stays.
			`printf '\x00\x01%s\x00' "$DEPLOY_TOKEN" > "$CHATOPS_REPLY_DIR/dump.bin"`,
			// A secret in a file's name.
			`echo x > "$CHATOPS_REPLY_DIR/name-$DEPLOY_TOKEN.txt"`,
		},
	})
	if res.State != "success" {
		t.Fatalf("state %s\n%s", res.State, res.RawTrace)
	}
	trace := string(res.RawTrace)
	if !strings.Contains(trace, "reply dir fresh and empty") || !strings.Contains(trace, "reply dir mode 700") {
		t.Errorf("the job's reply dir was not fresh and private:\n%s", trace)
	}
	if os.Geteuid() == 0 {
		var mode, owner, uid int
		for _, l := range strings.Split(trace, "\n") {
			if _, err := fmt.Sscanf(l, "reply dir mode %d owner %d", &mode, &owner); err == nil {
				continue
			}
			fmt.Sscanf(l, "job uid %d", &uid)
		}
		if owner == 0 || owner != uid {
			t.Errorf("reply dir owned by %d, job runs as %d:\n%s", owner, uid, trace)
		}
	}
	// The job log says what cleanup will do (cleanup's own output reaches only the runner's log).
	for _, want := range []string{
		"reply directory: message.md (", "reply directory: blocks.json is valid Block Kit",
		"reply directory: chart.png (", "binary, not redacted) will be shared in the thread",
		"reply directory: dump.bin was not shared: it is binary and holds a masked value",
	} {
		if !strings.Contains(trace, want) {
			t.Errorf("job log lacks %q:\n%s", want, trace)
		}
	}
	th := thread(t, h)
	if len(th) != 4 {
		t.Fatalf("thread has %d replies, want the answer and 3 files:\n%s", len(th), h.slack)
	}
	answer := th[0]
	if !strings.HasPrefix(answer.Text, "*Deployed* v1.4.2 &lt;!here> &lt;!subteam^S0123|@ops> <@U0123ABCD>\ntoken [MASKED]") ||
		strings.Contains(answer.Text, "this output is replaced") {
		t.Errorf("answer text = %q", answer.Text)
	}
	var blocks []map[string]any
	if err := json.Unmarshal([]byte(answer.Blocks), &blocks); err != nil {
		t.Fatalf("answer blocks %q: %v", answer.Blocks, err)
	}
	// The job's 5, and the notes (dump.bin) in a context block of the executor's.
	if len(blocks) != 6 || blocks[0]["type"] != "header" || blocks[2]["type"] != "section" || blocks[5]["type"] != "context" {
		t.Errorf("blocks = %s", answer.Blocks)
	}
	var plain bytes.Buffer // as Slack reads it: slack-go escapes < > & as \u003c…
	e := json.NewEncoder(&plain)
	e.SetEscapeHTML(false)
	e.Encode(blocks)
	for _, want := range []string{`"text":"web2"`, `&lt;!channel>`, `token: [MASKED]`, `"alt_text":"chart [MASKED]"`, "dump.bin was not shared"} {
		if !strings.Contains(plain.String(), want) {
			t.Errorf("blocks lack %q: %s", want, plain.String())
		}
	}
	files := filesOf(th)
	if !bytes.Equal(files["chart.png"], chart) {
		t.Errorf("chart.png arrived as %d bytes, want the job's %d", len(files["chart.png"]), len(chart))
	}
	if got := string(files["hosts.csv"]); got != "host,token\nweb1,[MASKED]\nweb2,glpat-[MASKED]\n" {
		t.Errorf("hosts.csv = %q", got)
	}
	if _, ok := files["name-[MASKED].txt"]; !ok {
		t.Errorf("the file with a secret in its name: %v", keys(files))
	}
	if _, ok := files["dump.bin"]; ok {
		t.Error("a binary file holding a secret was uploaded")
	}
	for _, m := range th {
		if len(m.Files) > 0 && m.ThreadTS == "" {
			t.Errorf("file %s not in the thread", m.Files[0].Filename)
		}
	}
	assertNoSecret(t, h.slack)
	h.assertClean(1500)
	h.assertReplyDirGone(1500)
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRichReplyTextOnlyByDefaultAndInvalidBlocks(t *testing.T) {
	h := newHost(t, allowAll)
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 1501, nil),
		Script: []string{
			chatReply("the captured answer"),
			`echo '[{"type":"actions","elements":[{"type":"button","text":{"type":"plain_text","text":"Deploy"},"action_id":"go"}]}]' > "$CHATOPS_REPLY_DIR/blocks.json"`,
			`printf '\x89PNG\r\n\x1a\n\x00\x00' > "$CHATOPS_REPLY_DIR/chart.png"`,
			`printf 'a,b\n1,%s\n' "$DEPLOY_TOKEN" > "$CHATOPS_REPLY_DIR/data.csv"`,
		},
	})
	if res.State != "success" {
		t.Fatalf("state %s\n%s", res.State, res.RawTrace)
	}
	const why = `blocks.json was not used: block 1: block type "actions" is not allowed`
	if !strings.Contains(string(res.RawTrace), why) || !strings.Contains(string(res.RunnerLog), why) {
		t.Errorf("job log or runner log lacks %q:\n%s\n%s", why, res.RawTrace, res.RunnerLog)
	}
	th := thread(t, h)
	if len(th) != 2 {
		t.Fatalf("thread: %d replies:\n%s", len(th), h.slack)
	}
	if th[0].Blocks != "" || !strings.HasPrefix(th[0].Text, "```\nthe captured answer\n```\n_") ||
		!strings.Contains(th[0].Text, why) ||
		!strings.Contains(th[0].Text, `chart.png was not shared: it is not UTF-8 text, and binary files are shared only with slack.reply_files = "all"`) {
		t.Errorf("the reply falls back to the text and says why: %q", th[0].Text)
	}
	files := filesOf(th)
	if len(files) != 1 || string(files["data.csv"]) != "a,b\n1,[MASKED]\n" {
		t.Errorf("files: %q", files)
	}
	assertNoSecret(t, h.slack)
	h.assertReplyDirGone(1501)
}

func TestRichReplyHostileDirectory(t *testing.T) {
	h := newHost(t, allowAll)
	// Something of the executor's outside the job: a link to it must not make it go.
	canary := filepath.Join(h.dir, "canary")
	if err := os.Mkdir(canary, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(canary, "keep"), []byte("executor's"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 1502, nil),
		Script: []string{
			`D="$CHATOPS_REPLY_DIR"`,
			`ln -s /etc/shadow "$D/shadow"`,
			// The kernel's protected_hardlinks refuses this; were it off, the link count would.
			`ln /etc/shadow "$D/shadow-hard" 2>/dev/null && echo HARD-LINKED || echo cannot hard-link /etc/shadow`,
			`ln -s /etc/hostname "$D/message.md"`,
			`mkfifo "$D/fifo" "$D/blocks.json"`,
			`truncate -s 1G "$D/huge.log"`,
			`echo mine > "$HOME/outside.txt"; ln "$HOME/outside.txt" "$D/hardlink"`,
			`ln -s ` + canary + ` "$D/canary-link"; mkdir "$D/sub"; ln -s ` + canary + `/keep "$D/sub/keep"`,
			`echo evil > "$D/..$(printf '\033')[2J..$(printf '\r\n\a')name.txt"`,
			`echo escaped > "$D/../escape.txt" || true`,
			// The job cannot replace its reply dir: builds_dir is the executor's.
			`mv "$D" "$D.moved" 2>/dev/null && echo MOVED || echo cannot move the reply dir`,
			`for i in $(seq 1000); do echo $i > "$D/z$i.txt"; done`,
		},
	})
	if res.State != "success" {
		t.Fatalf("state %s\n%s", res.State, res.RawTrace)
	}
	if os.Geteuid() == 0 && !strings.Contains(string(res.RawTrace), "cannot move the reply dir") {
		t.Errorf("the job moved its reply dir:\n%s", res.RawTrace)
	}
	if strings.Contains(string(res.RawTrace), "\nHARD-LINKED\n") && !strings.Contains(th0(t, h), "shadow-hard was not shared: it has 2 hard links") {
		t.Errorf("a hard link to /etc/shadow was not refused:\n%s", h.slack)
	}
	if d := time.Since(start); d > 2*time.Minute {
		t.Errorf("the job took %s: something blocked on the FIFO or read the GiB", d)
	}
	th := thread(t, h)
	if len(th) == 0 {
		t.Fatalf("no reply:\n%s", h.slack)
	}
	notes := th[0].Text
	for _, want := range []string{
		"message.md was not used: it is a symbolic link, not a regular file",
		"blocks.json was not used: it is a FIFO, not a regular file",
		"shadow was not shared: it is a symbolic link",
		"fifo was not shared: it is a FIFO",
		"huge.log was not shared: 1024 MiB is more than the 10 MiB one file may have (slack.reply_max_file_size)",
		"hardlink was not shared: it has 2 hard links",
		"canary-link was not shared: it is a symbolic link",
		"sub was not shared: it is a directory",
		"more files were not shared: at most 10 files are (slack.reply_max_files)",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("reply lacks %q:\n%s", want, notes)
		}
	}
	files := filesOf(th)
	if len(files) != 10 {
		t.Errorf("%d files shared, want 10: %v", len(files), keys(files))
	}
	shadow, _ := os.ReadFile("/etc/shadow")
	hostname, _ := os.ReadFile("/etc/hostname")
	for name, content := range files {
		if strings.ContainsAny(name, "\x1b\r\n\a/") {
			t.Errorf("file name %q reached Slack with control characters or a slash", name)
		}
		if len(shadow) > 0 && bytes.Contains(content, bytes.TrimSpace(shadow)) || bytes.Equal(content, []byte("executor's")) {
			t.Errorf("%s carries what the job may not read", name)
		}
	}
	if _, ok := files[".._[2J..___name.txt"]; !ok {
		t.Errorf("the name with control characters: %v", keys(files))
	}
	if len(hostname) > 0 && strings.Contains(th[0].Text, strings.TrimSpace(string(hostname))+"\n") {
		t.Errorf("message.md's link was followed: %q", th[0].Text)
	}
	if _, err := os.Stat(filepath.Join(canary, "keep")); err != nil {
		t.Errorf("cleanup removed through a link: %v", err)
	}
	h.assertReplyDirGone(1502)
}

func TestRichReplySlackDownThenFlushDeliversFilesOnce(t *testing.T) {
	h := newHost(t, allowAll)
	h.slack.Down()
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 1503, nil),
		Script: []string{
			`echo '*all good*' > "$CHATOPS_REPLY_DIR/message.md"`,
			`seq 1 5000 > "$CHATOPS_REPLY_DIR/numbers.txt"`,
			`printf 'a,b\n1,2\n' > "$CHATOPS_REPLY_DIR/small.csv"`,
		},
	})
	if res.State != "success" {
		t.Fatalf("a dead Slack failed the job: %s", res.State)
	}
	h.assertReplyDirGone(1503) // the outbox has its own copies
	h.slack.Up()
	flush := func() {
		cmd := exec.Command(binary, "--config", h.config, "flush")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SLACK_BOT_TOKEN=" + slackToken}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("flush: %v\n%s", err, out)
		}
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); flush() }()
	}
	wg.Wait()
	flush()
	th := thread(t, h)
	if len(th) != 3 || th[0].Text != "*all good*" {
		t.Fatalf("after flush:\n%s", h.slack)
	}
	files := filesOf(th)
	want, _ := exec.Command("seq", "1", "5000").Output()
	if !bytes.Equal(files["numbers.txt"], want) || string(files["small.csv"]) != "a,b\n1,2\n" {
		t.Errorf("files: %d bytes of numbers.txt, small.csv %q", len(files["numbers.txt"]), files["small.csv"])
	}
	shares := 0
	for _, e := range h.slack.Events() {
		shares += len(e.Files)
	}
	if shares != 2 {
		t.Errorf("%d files shared, want each of the 2 once", shares)
	}
}

// The example's chart (examples/.gitlab-ci.yml, deploys-chart) is a PNG Slack can show:
// run through the emulator as GitLab would pick it, it decodes as the chart it draws.
func TestRichReplyExampleChartIsAPNG(t *testing.T) {
	h := newHost(t, allowAll)
	h.withSlackKeys(t, "reply_files = \"all\"\n")
	data, err := os.ReadFile("../examples/.gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := tryjob.Parse("examples/.gitlab-ci.yml", data)
	if err != nil {
		t.Fatal(err)
	}
	chat := tryjob.Chat{Channel: "C0123ABCD", UserID: "U0123ABCD", User: "alice", Project: "ops/infra",
		ServerURL: "https://gitlab.example.com", Ref: "main", JobID: 1504, Token: "glcbt-e2e-1504", Created: time.Now()}
	job, err := ci.Job("deploys-chart", tryjob.Options{Vars: chat.PipelineVars(), Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tryjob.Response(job, chat)
	if err != nil {
		t.Fatal(err)
	}
	res := h.run(context.Background(), emulator.Job{Response: resp, Script: job.Script, BeforeScript: job.BeforeScript})
	if res.State != "success" {
		t.Fatalf("state %s\n%s", res.State, res.RawTrace)
	}
	th := thread(t, h)
	chart := filesOf(th)["deploys.png"]
	img, err := png.Decode(bytes.NewReader(chart))
	if err != nil {
		t.Fatalf("deploys.png (%d bytes) is not a PNG: %v\n%s", len(chart), err, h.slack)
	}
	if b := img.Bounds(); b.Dx() != 160 || b.Dy() != 80 {
		t.Errorf("chart is %v", b)
	}
	// The tallest bar (db-1, 7 deploys) reaches higher than the lowest (web-3, 2).
	bar := func(i int) int {
		x := i*40 + 20
		for y := 0; y < 80; y++ {
			if r, g, b, _ := img.At(x, y).RGBA(); r>>8 == 0x1e && g>>8 == 0x88 && b>>8 == 0xe5 {
				return 80 - y
			}
		}
		return 0
	}
	if !(bar(3) > bar(1) && bar(1) > bar(0) && bar(0) > bar(2) && bar(2) > 0) {
		t.Errorf("bar heights %d %d %d %d do not follow 3 5 2 7", bar(0), bar(1), bar(2), bar(3))
	}
	if !strings.Contains(th[0].Blocks, `"text":"db-1"`) {
		t.Errorf("the table: %s", th[0].Blocks)
	}
}

// A rule with allow_mentions lets its jobs notify the channel; the mention stays as written.
func TestRichReplyMentionsAllowedByTheRule(t *testing.T) {
	h := newHost(t, "[policy]\ndefault = \"deny\"\n[[policy.rule]]\nname = \"announcements\"\naction = \"allow\"\njobs = [\"deploy\"]\nallow_mentions = true\n")
	res := h.run(context.Background(), emulator.Job{
		Response: response(t, 1505, nil),
		Script:   []string{`echo '<!here> the release is out' > "$CHATOPS_REPLY_DIR/message.md"`},
	})
	if res.State != "success" {
		t.Fatalf("state %s\n%s", res.State, res.RawTrace)
	}
	if th := thread(t, h); len(th) != 1 || th[0].Text != "<!here> the release is out" {
		t.Errorf("thread:\n%s", h.slack)
	}
}

func th0(t *testing.T, h *host) string {
	t.Helper()
	if th := thread(t, h); len(th) > 0 {
		return th[0].Text
	}
	return ""
}
