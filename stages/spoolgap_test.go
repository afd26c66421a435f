package stages

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Where the capture fell behind, the reply drops the partial lines around the gap (half a
// secret would escape its mask) and says how much is missing.
func TestSpoolGaps(t *testing.T) {
	for _, tt := range []struct {
		name       string
		head, tail int64
		writes     []any // string: output; int: bytes lost
		want       string
	}{
		{"mid-line", 1 << 10, 1 << 10, []any{"line one\npass", 7, "word=hunter2\nline two\n"},
			"line one\n\n[… 7 bytes of output missing: the reply capture fell behind the job …]\nline two\n"},
		{"two gaps", 1 << 10, 1 << 10, []any{"a\nb", 3, "c\nd\ne", 4, 5, "f\ng\n"},
			"a\n\n[… 3 bytes of output missing: the reply capture fell behind the job …]\nd\n\n[… 9 bytes of output missing: the reply capture fell behind the job …]\ng\n"},
		{"gap in the tail after a cut", 8, 16, []any{"head 1\nhe", "ad 2\nmiddle\nmiddle\nta", "il 1\ntail x", 2, "y\ntail 3\n"},
			// The tail starts inside "tail 1" and "tail x" is cut by the gap: both partial.
			"head 1\n\n[… 26 bytes of output left out …]\n\n[… 2 bytes of output missing: the reply capture fell behind the job …]\ntail 3\n"},
		{"gap in the omitted middle", 8, 8, []any{"head 1\nxx", 5, "middle\nmiddle\ntail 1\n"},
			"head 1\n\n[… 14 bytes of output left out, 5 more missing: the reply capture fell behind the job …]\ntail 1\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s")
			sp, err := openSpool(path, tt.head, tt.tail)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.writes {
				switch w := w.(type) {
				case string:
					if _, err := sp.Write([]byte(w)); err != nil {
						t.Fatal(err)
					}
				case int:
					sp.Gap(int64(w))
				}
			}
			if err := sp.Close(); err != nil {
				t.Fatal(err)
			}
			out, cuts := readBack(t, path)
			if out.String() != tt.want {
				t.Errorf("got  %q\nwant %q (cuts %+v)", out.String(), tt.want, cuts)
			}
		})
	}
}

// A stream that falls behind more than maxSpoolGaps times stops being spooled: what comes
// after counts as missing.
func TestSpoolGivesUpAfterTooManyGaps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	sp, err := openSpool(path, 1<<10, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	for range maxSpoolGaps {
		sp.Write([]byte("ok\n"))
		sp.Gap(1)
	}
	sp.Write([]byte("dropped\n"))
	sp.Close()
	out, cuts := readBack(t, path)
	if bytes.Contains(out.Bytes(), []byte("dropped")) || len(cuts) != maxSpoolGaps || cuts[len(cuts)-1].Lost != 1+8 {
		t.Errorf("cuts %+v, output %q", cuts, out.String())
	}
}

// Small writes reach the files in batches, in order with the gaps between them.
func TestSpoolBatchesSmallWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	sp, err := openSpool(path, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for i := 0; i < 1000; i++ {
		line := []byte("a short line of output\n")
		sp.Write(line)
		want.Write(line)
	}
	if fi, err := os.Stat(path + ".head"); err != nil || fi.Size() != 0 {
		t.Errorf("small writes went to the file one by one (%v, %v)", fi.Size(), err)
	}
	sp.Write([]byte("cut he"))
	sp.Gap(3)
	sp.Write([]byte("re\nafter\n"))
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	want.WriteString("\n[… 3 bytes of output missing: the reply capture fell behind the job …]\nafter\n")
	out, _ := readBack(t, path)
	if out.String() != want.String() {
		t.Errorf("read back %d bytes, want %d; tail %q", out.Len(), want.Len(), out.String()[max(0, out.Len()-120):])
	}
}

// A write as large as the copy engine's chunks goes to the files at once, without a copy
// into the batch; what was batched before it goes first, so the order holds.
func TestSpoolWritesLargeChunksDirectlyInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	sp, err := openSpool(path, 4<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	write := func(p []byte) {
		t.Helper()
		if _, err := sp.Write(p); err != nil {
			t.Fatal(err)
		}
		want.Write(p)
	}
	write([]byte("a short line first\n"))
	write(bytes.Repeat([]byte("large chunk line\n"), (spoolDirect+1000)/17))
	if fi, err := os.Stat(path + ".head"); err != nil || fi.Size() != int64(want.Len()) {
		t.Errorf("after a large write the file holds %v bytes (%v), want all %d", fi.Size(), err, want.Len())
	}
	write([]byte("short again\n"))
	write(bytes.Repeat([]byte("y"), spoolBatch+10))
	write([]byte("last\n"))
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := readBack(t, path)
	if !bytes.Equal(out.Bytes(), want.Bytes()) {
		t.Errorf("read back %d bytes, want %d", out.Len(), want.Len())
	}
}

// readBack reads the spool at path as the reply does (copySpool), with its cuts.
func readBack(t *testing.T, path string) (*bytes.Buffer, []SpoolCut) {
	t.Helper()
	r, err := ReadSpool(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out bytes.Buffer
	if err := copySpool(&out, r); err != nil {
		t.Fatal(err)
	}
	return &out, r.Cuts
}
