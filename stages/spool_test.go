package stages

import (
	"bytes"
	"io"
	"math/rand"
	"path/filepath"
	"testing"
)

func TestSpoolKeepsHeadAndTail(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, tt := range []struct {
		name        string
		head, tail  int64
		total       int
		processes   int // the stream is written by this many successive openings
		wantOmitted int64
	}{
		{"fits in head", 100, 50, 80, 1, 0},
		{"fills head and part of ring", 100, 50, 130, 2, 0},
		{"exactly full", 100, 50, 150, 1, 0},
		{"wraps once", 100, 50, 175, 3, 25},
		{"wraps many times", 100, 50, 10_000, 4, 9_850},
		{"no tail", 100, 0, 300, 1, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := make([]byte, tt.total)
			rng.Read(data)
			path := filepath.Join(t.TempDir(), "out")
			rest := data
			for p := 0; p < tt.processes; p++ {
				s, err := openSpool(path, tt.head, tt.tail)
				if err != nil {
					t.Fatal(err)
				}
				chunk := len(rest) / (tt.processes - p)
				part := rest[:chunk]
				rest = rest[chunk:]
				// Random write sizes, some larger than the ring.
				for len(part) > 0 {
					n := min(len(part), 1+rng.Intn(int(tt.tail)*2+3))
					if _, err := s.Write(part[:n]); err != nil {
						t.Fatal(err)
					}
					part = part[n:]
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			r, err := ReadSpool(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			headLen := min(int64(tt.total), tt.head)
			want := append([]byte(nil), data[:headLen]...)
			want = append(want, data[headLen+tt.wantOmitted:]...)
			if r.Total != int64(tt.total) || r.Omitted != tt.wantOmitted {
				t.Errorf("total %d omitted %d, want %d %d", r.Total, r.Omitted, tt.total, tt.wantOmitted)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("read back %d bytes, want %d; content differs", len(got), len(want))
			}
			if tt.wantOmitted > 0 && r.Cut != headLen {
				t.Errorf("cut at %d, want %d", r.Cut, headLen)
			}
		})
	}
}

func TestReadSpoolNeverWritten(t *testing.T) {
	r, err := ReadSpool(filepath.Join(t.TempDir(), "none"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); len(b) != 0 || r.Total != 0 {
		t.Errorf("got %q", b)
	}
}
