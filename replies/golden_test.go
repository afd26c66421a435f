package replies

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenSecrets are the secrets every golden input is redacted with.
var goldenSecrets = Secrets{
	Values:        []string{"s3cr3t-value", "hunter2", " CI-JOB-TOKEN-1234 "},
	TokenPrefixes: []string{"glrt-", "glcbt-"},
}

// pipeline runs one stage's raw output through the whole reply core the way
// the executor does: Capture (with a Redactor in front of each sink), then
// Decide, then Clean of the chosen bytes. write feeds the input, so tests
// can vary the chunking.
func pipeline(t testing.TB, in []byte, write func(io.Writer, []byte)) string {
	t.Helper()
	var sec, all bytes.Buffer
	rs, ra := NewRedactor(&sec, goldenSecrets), NewRedactor(&all, goldenSecrets)
	c := NewCapture(rs, ra, Counts{})
	write(c, in)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
	counts := c.Counts()
	src := Decide(counts)
	opts := CleanOptions{Secrets: goldenSecrets, DropFirstLine: src == FromChatReply}
	raw := sec.String()
	if src == FromFallback {
		raw = all.String()
		opts.DropCommands = true
	}
	var reply bytes.Buffer
	if err := Clean(&reply, strings.NewReader(raw), opts); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("source: %s\ncounts: %s\nsection: %q\n--- reply\n%s\n", src, counts, sec.String(), reply.String())
}

func writeAll(w io.Writer, p []byte) { _, _ = w.Write(p) }

func writeBytewise(w io.Writer, p []byte) {
	for i := range p {
		_, _ = w.Write(p[i : i+1])
	}
}

// writeRandom feeds p in random chunks of 0..max bytes.
func writeRandom(seed uint64, maxChunk int) func(io.Writer, []byte) {
	return func(w io.Writer, p []byte) {
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		for len(p) > 0 {
			n := min(rng.IntN(maxChunk+1), len(p))
			_, _ = w.Write(p[:n])
			p = p[n:]
		}
	}
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.input")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata/*.input")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".input")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got := pipeline(t, data, writeAll)
			golden := strings.TrimSuffix(in, ".input") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s:\n got %q\nwant %q", name, got, want)
			}
			// The same bytes in any chunking give the same reply.
			if b := pipeline(t, data, writeBytewise); b != got {
				t.Errorf("byte-at-a-time differs:\n got %q\nwant %q", b, got)
			}
			for seed := uint64(1); seed <= 20; seed++ {
				if r := pipeline(t, data, writeRandom(seed, 1+int(seed)*3)); r != got {
					t.Fatalf("chunking seed %d differs:\n got %q\nwant %q", seed, r, got)
				}
			}
		})
	}
}
