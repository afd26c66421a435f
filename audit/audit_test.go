package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/replies"
)

// The audit log masks with the replies' redactor (issue 9: the audit log used to mask
// differently, leaving "[MASKED]2222CCCC" of overlapping secrets and another prefix list).
func TestRedact(t *testing.T) {
	secrets := replies.Secrets{
		Values:        []string{"s3cr3t-value", "s3cr3t", "", "glcbt-job-token", "1111AAAA", "AAAA2222CCCC"},
		TokenPrefixes: []string{"custom-"},
	}
	tests := []struct{ in, want string }{
		{"deploy s3cr3t-value now", "deploy [MASKED] now"}, // the longer secret wins
		{"s3cr3t", "[MASKED]"},
		{"token glpat-AbC_123-xyz. x", "token glpat-[MASKED] x"}, // the runner's alphabet has "."
		{"custom-abc def", "custom-[MASKED] def"},
		{"glcbt-job-token", "[MASKED]"},
		{"nothing here", "nothing here"},
		{"line1\ns3cr3t\n", "line1\n[MASKED]\n"},
		{"overlap 1111AAAA2222CCCC end", "overlap [MASKED] end"},
		{"deploy token gldt-abcDEF123 runner glrt-xyz", "deploy token gldt-[MASKED] runner glrt-[MASKED]"},
		{"GET /x?private_token=abc&page=2", "GET /x?private_token=[MASKED]&page=2"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in, secrets); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := replies.Redact(tt.in, secrets); got != Redact(tt.in, secrets) {
			t.Errorf("audit and replies mask %q differently", tt.in)
		}
	}
}

func TestRedactedTruncatesAfterRedaction(t *testing.T) {
	secret := "abcdefghij-secret"
	in := strings.Repeat("é", MaxField/2-2) + secret
	rec := Record{Input: in}.Redacted(replies.Secrets{Values: []string{secret}})
	if strings.Contains(rec.Input, "abcdef") {
		t.Errorf("part of the secret survived: %q", rec.Input[len(rec.Input)-40:])
	}
	long := Record{Input: strings.Repeat("x", 3*MaxField)}.Redacted(replies.Secrets{})
	if len(long.Input) > MaxField+40 || !strings.Contains(long.Input, "bytes cut]") {
		t.Errorf("long input not cut: %d bytes", len(long.Input))
	}
}

func TestAppendCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	l := &Log{Path: filepath.Join(dir, "audit.jsonl"), Host: "runner-1"}
	rec := Record{Time: time.Unix(0, 0).UTC(), JobID: 1, Input: "a\nb", Decision: "allow"}
	if err := l.Append(rec, replies.Secrets{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(l.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %04o, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(dir)
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %04o, want 0700", di.Mode().Perm())
	}
	data, _ := os.ReadFile(l.Path)
	want := `{"time":"1970-01-01T00:00:00Z","job_id":1,"job_name":"","project":"","pipeline_source":"","user":{"id":0,"username":""},"verified":false,"chat_user":"","channel":"","input":"a\nb","rule":"","decision":"allow","reason":"","host":"runner-1","seq":1,"prev":""}` + "\n"
	if string(data) != want {
		t.Errorf("got  %s\nwant %s", data, want)
	}
}

// The helper process appends records when the test binary is re-run with these set, so
// that the concurrency test exercises separate processes, as the runner's jobs are.
const (
	helperPath = "AUDIT_TEST_HELPER_PATH"
	helperID   = "AUDIT_TEST_HELPER_ID"
)

const secret = "hunter2-masked-value"

func TestMain(m *testing.M) {
	if p := os.Getenv(helperPath); p != "" {
		id, _ := strconv.Atoi(os.Getenv(helperID))
		// Start together with the others: say ready, wait for the go file.
		os.WriteFile(fmt.Sprintf("%s.ready%d", p, id), nil, 0o600)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if _, err := os.Stat(p + ".go"); err == nil {
				break
			}
		}
		for i := 0; i < 10; i++ {
			if err := appendOne(p, 1000+id*10+i); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// appendOne writes a record that is large enough (~12 KiB) for an unlocked, split write to
// show up as a corrupt line, and that carries the secret in every field it can.
func appendOne(path string, jobID int) error {
	l := &Log{Path: path}
	rec := Record{
		Time: time.Now().UTC(), JobID: int64(jobID), JobName: "deploy " + secret,
		Input:  strings.Repeat(strconv.Itoa(jobID%10), MaxField-100) + " " + secret,
		Reason: strings.Repeat("r", MaxField-100) + secret, Channel: secret, Decision: "deny",
	}
	return l.Append(rec, replies.Secrets{Values: []string{secret}})
}

func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	// 5 processes of 10 records each, and 50 goroutines in this one.
	for p := 0; p < 5; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperPath+"="+path, helperID+"="+strconv.Itoa(p))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("helper %d: %v: %s", p, err, out)
			}
		}()
	}
	start := make(chan struct{})
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := appendOne(path, i); err != nil {
				errs <- err
			}
		}()
	}
	for p := 0; p < 5; p++ {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if _, err := os.Stat(fmt.Sprintf("%s.ready%d", path, p)); err == nil || time.Now().After(deadline) {
				break
			}
		}
	}
	os.WriteFile(path+".go", nil, 0o600)
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	seen := map[int64]bool{}
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, secret) || strings.Contains(line, "hunter2") {
			t.Fatalf("secret in audit line: %.200q", line)
		}
		var rec Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("corrupt line %.200q: %v", line, err)
		}
		digit := strconv.Itoa(int(rec.JobID % 10))
		if !strings.HasPrefix(rec.Input, strings.Repeat(digit, MaxField-100)+" [MASKED]") {
			t.Fatalf("job %d: input interleaved with another record: %.200q", rec.JobID, rec.Input)
		}
		if seen[rec.JobID] {
			t.Errorf("job %d recorded twice", rec.JobID)
		}
		seen[rec.JobID] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 100 {
		t.Errorf("%d records, want 100", len(seen))
	}
}
