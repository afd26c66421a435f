package audit

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/replies"
)

func appendN(t *testing.T, l *Log, from, n int) {
	t.Helper()
	for i := range n {
		rec := Record{Time: time.Unix(int64(from+i), 0).UTC(), JobID: int64(from + i), Input: fmt.Sprintf("input %d", from+i), Decision: "allow"}
		if err := l.Append(rec, replies.Secrets{}); err != nil {
			t.Fatal(err)
		}
	}
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
}

func writeLines(t *testing.T, path string, ls []string) {
	t.Helper()
	out := strings.Join(ls, "")
	if !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyIntactChain(t *testing.T) {
	l := &Log{Path: filepath.Join(t.TempDir(), "audit.jsonl"), Host: "runner-a"}
	appendN(t, l, 1, 5)
	s, err := Verify([]string{l.Path})
	if err != nil {
		t.Fatal(err)
	}
	if s.Records != 5 || s.FirstSeq != 1 || s.LastSeq != 5 || !s.Anchored || !s.Tail || len(s.Hosts) != 1 || s.Hosts[0] != "runner-a" {
		t.Errorf("summary %+v", s)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func([]string) []string
		line   int
		want   string
	}{
		{"edited line", func(ls []string) []string {
			ls[2] = strings.Replace(ls[2], `"decision":"allow"`, `"decision":"deny"`, 1)
			return ls
		}, 4, "the line before (record 3) was edited"},
		{"deleted line", func(ls []string) []string { return append(ls[:2], ls[3:]...) }, 3, "records 3 to 3 were removed"},
		{"swapped lines", func(ls []string) []string {
			ls[2], ls[3] = ls[3], ls[2]
			return ls
		}, 3, "record 4 is out of order: it comes before record 3, which is on line 4"},
		{"edited last line", func(ls []string) []string {
			ls[5] = strings.Replace(ls[5], "input 6", "input 7", 1)
			return ls
		}, 6, "record 6 was edited: it does not match the chain file"},
		{"cut from the end", func(ls []string) []string { return ls[:4] }, 4, "records 5 to 6 were removed from the end"},
		{"not JSON", func(ls []string) []string {
			ls[1] = "garbage\n"
			return ls
		}, 2, "not a JSON record"},
		{"a record appended after the chain file was read is not a cut", func(ls []string) []string {
			// Stands for an Append between verify's reading of the chain file and of the
			// log: the log holds one record more than the chain file.
			return ls
		}, 0, "append"},
		{"lines removed from the start", func(ls []string) []string { return ls[2:] }, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Log{Path: filepath.Join(t.TempDir(), "audit.jsonl"), Host: "h"}
			appendN(t, l, 1, 6)
			writeLines(t, l.Path, tt.tamper(lines(t, l.Path)))
			if tt.want == "append" {
				head, _ := os.ReadFile(ChainPath(l.Path))
				appendN(t, l, 7, 1)
				os.WriteFile(ChainPath(l.Path), head, 0o600)
				if s, err := Verify([]string{l.Path}); err != nil || s.Records != 7 || !s.Tail {
					t.Errorf("summary %+v, err %v", s, err)
				}
				return
			}
			s, err := Verify([]string{l.Path})
			if tt.want == "" {
				// Without the older files, a log that starts part-way is not a break, but
				// verify must say it was not anchored at record 1.
				if err != nil || s.Anchored || s.FirstSeq != 3 {
					t.Errorf("summary %+v, err %v", s, err)
				}
				return
			}
			var b *Break
			if !errors.As(err, &b) {
				t.Fatalf("Verify = %+v, %v; want a Break", s, err)
			}
			if b.Line != tt.line || !strings.Contains(b.Problem, tt.want) {
				t.Errorf("break %v; want line %d: %q", b, tt.line, tt.want)
			}
		})
	}
}

func TestChainRunsAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	l := &Log{Path: filepath.Join(dir, "audit.jsonl"), Host: "h"}
	appendN(t, l, 1, 3)
	// logrotate: rename, then (a day later) compress.
	rot2 := filepath.Join(dir, "audit.jsonl.2.gz")
	gzipTo(t, l.Path, rot2)
	appendN(t, l, 4, 3)
	rot1 := filepath.Join(dir, "audit.jsonl.1")
	if err := os.Rename(l.Path, rot1); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 7, 2)
	if first := lines(t, l.Path)[0]; !strings.Contains(first, `"seq":7,`) || !strings.Contains(first, `"prev":"`+lineHash([]byte(lines(t, rot1)[2]))+`"`) {
		t.Fatalf("the new file does not continue the rotated one: %s", first)
	}
	s, err := Verify([]string{rot2, rot1, l.Path})
	if err != nil || s.Records != 8 || !s.Anchored || !s.Tail {
		t.Fatalf("whole sequence: %+v %v", s, err)
	}
	var b *Break
	if _, err := Verify([]string{rot2, l.Path}); !errors.As(err, &b) || !strings.Contains(b.Problem, "records 4 to 6 are missing between the previous file and this one") {
		t.Errorf("a file left out: %v", err)
	}
	if _, err := Verify([]string{rot1, rot2, l.Path}); !errors.As(err, &b) || !strings.Contains(b.Problem, "reordered") {
		t.Errorf("files out of order: %v", err)
	}
	// An edited rotated file breaks the chain at the next file's first line.
	ls := lines(t, rot1)
	ls[2] = strings.Replace(ls[2], "input 6", "input 9", 1)
	writeLines(t, rot1, ls)
	if _, err := Verify([]string{rot2, rot1, l.Path}); !errors.As(err, &b) || b.File != l.Path || b.Line != 1 || !strings.Contains(b.Problem, "does not continue the previous file") {
		t.Errorf("edited last line of a rotated file: %v", err)
	}
}

func gzipTo(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	z.Write(data)
	z.Close()
	if err := os.WriteFile(to, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(from); err != nil {
		t.Fatal(err)
	}
}

func TestChainStartsAfterUnchainedRecords(t *testing.T) {
	l := &Log{Path: filepath.Join(t.TempDir(), "audit.jsonl"), Host: "h"}
	old := `{"time":"2026-01-01T00:00:00Z","job_id":1,"decision":"allow"}` + "\n"
	if err := os.WriteFile(l.Path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2, 2)
	s, err := Verify([]string{l.Path})
	if err != nil || s.Unchained != 1 || s.FirstSeq != 1 || s.Records != 3 {
		t.Fatalf("%+v %v", s, err)
	}
	ls := lines(t, l.Path)
	ls[0] = strings.Replace(ls[0], `"allow"`, `"deny"`, 1)
	writeLines(t, l.Path, ls)
	var b *Break
	if _, err := Verify([]string{l.Path}); !errors.As(err, &b) || b.Line != 2 {
		t.Errorf("edited pre-chain line the chain covers: %v", err)
	}
}

func TestConcurrentAppendsKeepTheChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &Log{Path: path, Host: "h"} // a Log per goroutine, as per process
			for i := range 5 {
				if err := l.Append(Record{JobID: int64(g*10 + i), Decision: "deny"}, replies.Secrets{}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	s, err := Verify([]string{path})
	if err != nil || s.Records != 100 || s.LastSeq != 100 {
		t.Errorf("%+v %v", s, err)
	}
}

func TestSyslogCopy(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	l := &Log{Path: filepath.Join(dir, "audit.jsonl"), Host: "h", Syslog: sock}
	secret := "s3cr3t-token-value"
	rec := Record{JobID: 9, Input: "deploy " + secret, Decision: "deny", Reason: "no rule"}
	if err := l.Append(rec, replies.Secrets{Values: []string{secret}}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(buf[:n])
	line := strings.TrimSuffix(lines(t, l.Path)[0], "\n")
	// <85>: facility authpriv (10), severity notice (5) for a denial.
	if !strings.HasPrefix(msg, "<85>") || !strings.Contains(msg, " "+SyslogTag+"[") || !strings.HasSuffix(strings.TrimSuffix(msg, "\n"), ": "+line) {
		t.Errorf("syslog got %q\nwant the file's line %q", msg, line)
	}
	if strings.Contains(msg, secret) {
		t.Error("the syslog copy carries the secret")
	}
	// No syslog listening: the record is still in the file, and the error says so.
	l.Syslog = filepath.Join(dir, "nobody.sock")
	err = l.Append(Record{JobID: 10, Decision: "allow"}, replies.Secrets{})
	if err == nil || !strings.Contains(err.Error(), "syslog copy failed") {
		t.Errorf("Append without syslog: %v", err)
	}
	if got := len(lines(t, l.Path)); got != 2 {
		t.Errorf("%d lines in the file, want 2", got)
	}
}
