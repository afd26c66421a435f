package stages

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/failure"
)

type nopCloser struct{ bytes.Buffer }

func (*nopCloser) Close() error { return nil }

func TestBudgetSinkStopsAtTheBound(t *testing.T) {
	used := int64(0)
	var w nopCloser
	b := &budgetSink{w: &w, root: t.TempDir(), max: 5 * budgetSlice, usage: func(string) (int64, error) { return used, nil }}
	chunk := bytes.Repeat([]byte("x"), budgetSlice/2)
	for i := 0; i < 4; i++ { // two slices, each granted while 2 slices of room are left
		if _, err := b.Write(chunk); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		used += int64(len(chunk)) * 2
	}
	_, err := b.Write(chunk)
	if !errors.Is(err, errBudget) {
		t.Fatalf("write past the bound: %v, want errBudget", err)
	}
	if w.Len() != 2*budgetSlice {
		t.Errorf("%d bytes passed, want %d", w.Len(), 2*budgetSlice)
	}
}

func TestLossySinkNeverFailsTheCopy(t *testing.T) {
	var w nopCloser
	b := &budgetSink{w: &w, root: t.TempDir(), max: 3 * budgetSlice, usage: func(string) (int64, error) { return int64(w.Len()), nil }}
	l := &lossySink{w: b}
	data := bytes.Repeat([]byte("y"), budgetSlice+100)
	for i := 0; i < 2; i++ {
		if n, err := l.Write(data); err != nil || n != len(data) {
			t.Fatalf("write %d = %d, %v: a capture error reached the copy loop", i, n, err)
		}
	}
	err := l.Close()
	if !errors.Is(err, errCapture) || !errors.Is(err, errBudget) {
		t.Fatalf("close = %v", err)
	}
	want := "failed after 2097152 bytes, 200 bytes of output were not captured"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("close = %q, want it to say %q", err, want)
	}
}

// The copy's "fell behind" gaps reach the capture through the lossy sink while the capture
// works (so the reply can say what it missed); once the capture has failed they are more
// of what it did not get, counted in the loss Close reports.
func TestLossySinkPassesGapsUntilTheCaptureFails(t *testing.T) {
	var gaps []int64
	var w nopCloser
	b := &budgetSink{w: &w, root: t.TempDir(), max: 3 * budgetSlice, usage: func(string) (int64, error) { return int64(w.Len()), nil }}
	l := &lossySink{w: b, lost: func(n int64) { gaps = append(gaps, n) }}
	l.Lost(7)
	data := bytes.Repeat([]byte("y"), budgetSlice+100)
	_, _ = l.Write(data)
	_, _ = l.Write(data) // past the bound: the capture fails here
	l.Lost(50)
	if len(gaps) != 1 || gaps[0] != 7 {
		t.Errorf("gaps passed to the capture = %v, want [7]", gaps)
	}
	err := l.Close()
	if want := "250 bytes of output were not captured"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("close = %v, want it to say %q", err, want)
	}
}

// A capture that cannot keep the output costs the reply, never the job: exit 0 stays a
// success, exit 42 stays 42 in BUILD_EXIT_CODE_FILE, and the log and the reply say what
// was left out.
func TestCaptureLossKeepsTheJobsResult(t *testing.T) {
	for _, tt := range []struct {
		name string
		code int
	}{{"success", 0}, {"exit 42", 42}} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.stages.Cfg.Executor.MaxStateSize = config.Size(3 * budgetSlice)
			if err := f.stages.Prepare(context.Background()); err != nil {
				t.Fatal(err)
			}
			script := "head -c 4000000 /dev/zero | tr '\\0' 'a' | fold -w 100; exit " + map[int]string{0: "0", 42: "42"}[tt.code]
			err := f.stages.Run(context.Background(), f.script(script), "build_script")
			kind, code, _ := failure.Classify(err)
			switch {
			case tt.code == 0 && err != nil:
				t.Fatalf("run = %v: the capture's loss failed the job", err)
			case tt.code != 0 && (kind != failure.Build || code != tt.code):
				t.Fatalf("run = %v (%v, %d), want a script failure with code %d", err, kind, code, tt.code)
			}
			if tt.code != 0 {
				if data, _ := os.ReadFile(f.codeFile); string(data) != "42" {
					t.Errorf("BUILD_EXIT_CODE_FILE = %q, want 42", data)
				}
			}
			if !strings.Contains(f.stderr.String(), "the chat reply will be incomplete") || !strings.Contains(f.stderr.String(), "max_state_size reached") {
				t.Errorf("the job log does not say what was dropped:\n%s", f.stderr)
			}
			if note := readLossNote(f.state()); !strings.Contains(note, "bytes of output were not captured") {
				t.Errorf("loss note = %q", note)
			}
			f.stderr.Reset()
			if err := f.stages.Cleanup(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(f.stderr.String(), "the chat reply is incomplete") {
				t.Errorf("the runner log does not say the reply is incomplete:\n%s", f.stderr)
			}
			var replyText string
			for _, m := range f.slack.Messages() {
				replyText += m.Text
				for _, file := range m.Files {
					replyText += string(file.Content)
				}
			}
			if !strings.Contains(replyText, "the reply is incomplete") {
				t.Errorf("the reply does not say it is incomplete:\n%s", f.slack)
			}
		})
	}
}

// Far from the bound a capture asks seldom (each ask walks state_dir); near it, the slices
// shrink back to budgetSlice, so that the bound is kept as closely as before.
func TestBudgetSlicesShrinkNearTheBound(t *testing.T) {
	if got := slice(0, 4<<30); got != budgetSliceMax {
		t.Errorf("slice far from the bound = %d, want %d", got, budgetSliceMax)
	}
	if got := slice(4<<30-100<<20, 4<<30); got != 100<<20/sliceShare {
		t.Errorf("slice 100 MiB from the bound = %d, want %d", got, 100<<20/sliceShare)
	}
	if got := slice(4<<30-10<<20, 4<<30); got != budgetSlice {
		t.Errorf("slice 10 MiB from the bound = %d, want %d", got, budgetSlice)
	}
	asks := 0
	var w nopCloser
	b := &budgetSink{w: &w, root: t.TempDir(), max: 4 << 30, usage: func(string) (int64, error) { asks++; return int64(w.Len()), nil }}
	chunk := bytes.Repeat([]byte("z"), 256<<10)
	for range 256 { // 64 MiB
		if _, err := b.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if asks > 4 {
		t.Errorf("%d asks for 64 MiB with 4 GiB of room, want at most 4", asks)
	}
}
