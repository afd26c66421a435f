package stages

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/chatops-executor/chatops-executor/atomicfile"
)

// A spool keeps a stream of job output on disk with a bound: the first headSize bytes,
// and the last tailSize bytes in a ring that wraps. A reply wants both ends of a long
// output — the start for context, the end for the failure — and an executor that stored
// every byte of a job printing gigabytes would fill the runner's disk. What falls between
// the two is counted, and the reader says how much was left out.

// Spool sizes: up to 64 MiB of disk per captured stream, however much the job prints.
const (
	spoolHead = 32 << 20
	spoolTail = 32 << 20
)

// spoolMeta is the spool's bookkeeping, saved beside it so a later process can read it.
type spoolMeta struct {
	Total    int64      `json:"total"`
	HeadSize int64      `json:"head_size"`
	TailSize int64      `json:"tail_size"`
	Gaps     []spoolGap `json:"gaps,omitempty"`
}

// spoolGap is a place in the written stream where output never reached the spool: the
// capture fell behind the job (see Stages.runScript).
type spoolGap struct {
	At   int64 `json:"at"`   // bytes written before it
	Lost int64 `json:"lost"` // bytes missing
}

// maxSpoolGaps bounds the bookkeeping. A stream that falls behind more often than this
// stops being spooled: everything after the last gap counts as lost with it.
const maxSpoolGaps = 32

// spoolBatch is the size of a spool's write buffer: the capture hands it output as the job
// wrote it, often a few KiB at a time, and a write(2) per 256 KiB costs far less than one
// per chunk. A write of spoolDirect or more is large enough for a write(2) of its own: it
// goes straight to the files (after the batch, to keep the order), without being copied
// into the batch first — the copy engine's chunks are that large, so most output is
// copied once less.
const (
	spoolBatch  = 256 << 10
	spoolDirect = 64 << 10
)

// spool appends to a head file and a ring file. It is not safe for concurrent use.
type spool struct {
	path       string
	head, ring *os.File
	meta       spoolMeta
	batch      []byte // written to the spool, not yet to its files (meta.Total leaves it out)
}

// Gap implements replies.GapRecorder: n bytes are missing at this point of the stream.
// A write error here is the next Write's or Close's to report.
func (s *spool) Gap(n int64) {
	_ = s.flush()
	if k := len(s.meta.Gaps); k > 0 && (s.meta.Gaps[k-1].At == s.meta.Total || k == maxSpoolGaps) {
		s.meta.Gaps[k-1].Lost += n
		return
	}
	s.meta.Gaps = append(s.meta.Gaps, spoolGap{At: s.meta.Total, Lost: n})
}

// openSpool opens (or continues) the spool at path: path.head, path.ring, path.json. A
// spool continues across processes: each run stage appends to the job's spools.
func openSpool(path string, headSize, tailSize int64) (*spool, error) {
	s := &spool{path: path, meta: spoolMeta{HeadSize: headSize, TailSize: tailSize}}
	if data, err := os.ReadFile(path + ".json"); err == nil {
		if err := json.Unmarshal(data, &s.meta); err != nil {
			return nil, fmt.Errorf("spool %s: corrupt bookkeeping: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	var err error
	if s.head, err = os.OpenFile(path+".head", os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if s.ring, err = os.OpenFile(path+".ring", os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		s.head.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	return s, nil
}

// Write implements io.Writer. Small writes are batched (see spoolBatch); an error may
// come from an earlier write's bytes.
func (s *spool) Write(p []byte) (int, error) {
	if k := len(s.meta.Gaps); k == maxSpoolGaps {
		// Given up (see maxSpoolGaps): the last gap grows instead.
		s.meta.Gaps[k-1].Lost += int64(len(p))
		return len(p), nil
	}
	if len(s.batch)+len(p) > spoolBatch || len(p) >= spoolDirect {
		if err := s.flush(); err != nil {
			return 0, err
		}
	}
	if len(p) >= spoolDirect {
		return s.write(p)
	}
	if s.batch == nil {
		s.batch = make([]byte, 0, spoolBatch)
	}
	s.batch = append(s.batch, p...)
	return len(p), nil
}

// flush writes the batch to the files.
func (s *spool) flush() error {
	if len(s.batch) == 0 {
		return nil
	}
	_, err := s.write(s.batch)
	s.batch = s.batch[:0]
	return err
}

// write puts p in the files: the head while it has room, then the ring.
func (s *spool) write(p []byte) (int, error) {
	n := len(p)
	if s.meta.Total < s.meta.HeadSize {
		k := min(int64(len(p)), s.meta.HeadSize-s.meta.Total)
		if _, err := s.head.WriteAt(p[:k], s.meta.Total); err != nil {
			return 0, fmt.Errorf("spool: %w", err)
		}
		s.meta.Total += k
		p = p[k:]
	}
	if s.meta.TailSize == 0 {
		s.meta.Total += int64(len(p))
		return n, nil
	}
	// Only the last TailSize bytes of p can survive in the ring.
	if int64(len(p)) > s.meta.TailSize {
		skip := int64(len(p)) - s.meta.TailSize
		s.meta.Total += skip
		p = p[skip:]
	}
	for len(p) > 0 {
		off := (s.meta.Total - s.meta.HeadSize) % s.meta.TailSize
		k := min(int64(len(p)), s.meta.TailSize-off)
		if _, err := s.ring.WriteAt(p[:k], off); err != nil {
			return 0, fmt.Errorf("spool: %w", err)
		}
		s.meta.Total += k
		p = p[k:]
	}
	return n, nil
}

// Close writes what is batched, saves the bookkeeping and closes the files.
func (s *spool) Close() error {
	err := s.flush()
	data, _ := json.Marshal(s.meta)
	if werr := atomicfile.WriteFile(s.path+".json", data, 0o600); err == nil {
		err = werr
	}
	if cerr := s.head.Close(); err == nil {
		err = cerr
	}
	if cerr := s.ring.Close(); err == nil {
		err = cerr
	}
	return err
}

// SpoolReader reads a spool back in order: the head, then the surviving tail.
type SpoolReader struct {
	io.Reader
	// Total is how many bytes were written; Omitted how many of them were dropped from the
	// middle to keep the bound.
	Total, Omitted int64
	// Cut is the offset in the read stream where the omitted bytes were (0 when none).
	Cut int64
	// Cuts lists every place in the read stream where bytes are missing, in order: the
	// omitted middle and the gaps where the capture fell behind.
	Cuts  []SpoolCut
	files []*os.File
}

// SpoolCut is a place in the read stream where bytes are missing.
type SpoolCut struct {
	At      int64 // offset in the read stream
	Omitted int64 // bytes dropped to keep the spool's bound
	Lost    int64 // bytes that never reached the spool
}

// cuts maps the spool's omitted middle and its gaps onto the read stream. A gap inside the
// omitted middle adds to the middle's cut; gaps at one place become one cut.
func (m spoolMeta) cuts(headLen, omitted int64) []SpoolCut {
	var cuts []SpoolCut
	add := func(c SpoolCut) {
		if k := len(cuts); k > 0 && cuts[k-1].At == c.At {
			cuts[k-1].Omitted += c.Omitted
			cuts[k-1].Lost += c.Lost
			return
		}
		cuts = append(cuts, c)
	}
	middle := omitted > 0      // still to add
	for _, g := range m.Gaps { // in written order
		at := g.At
		if omitted > 0 && at >= headLen {
			if middle {
				add(SpoolCut{At: headLen, Omitted: omitted})
				middle = false
			}
			at = max(headLen, at-omitted)
		}
		add(SpoolCut{At: at, Lost: g.Lost})
	}
	if middle {
		add(SpoolCut{At: headLen, Omitted: omitted})
	}
	return cuts
}

// Close closes the spool's files.
func (r *SpoolReader) Close() error {
	var err error
	for _, f := range r.files {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// ReadSpool opens the spool at path for reading. A spool that was never written reads as
// empty.
func ReadSpool(path string) (*SpoolReader, error) {
	var meta spoolMeta
	data, err := os.ReadFile(path + ".json")
	if errors.Is(err, fs.ErrNotExist) {
		return &SpoolReader{Reader: eofReader{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, fmt.Errorf("read spool %s: corrupt bookkeeping: %w", path, err)
	}
	head, err := os.Open(path + ".head")
	if err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	ring, err := os.Open(path + ".ring")
	if err != nil {
		head.Close()
		return nil, fmt.Errorf("read spool: %w", err)
	}
	r := &SpoolReader{Total: meta.Total, files: []*os.File{head, ring}}
	headLen := min(meta.Total, meta.HeadSize)
	parts := []io.Reader{io.NewSectionReader(head, 0, headLen)}
	inRing := meta.Total - headLen
	switch {
	case inRing == 0:
	case inRing <= meta.TailSize:
		parts = append(parts, io.NewSectionReader(ring, 0, inRing))
	default:
		r.Omitted = inRing - meta.TailSize
		r.Cut = headLen
		if meta.TailSize > 0 {
			pos := inRing % meta.TailSize
			parts = append(parts, io.NewSectionReader(ring, pos, meta.TailSize-pos), io.NewSectionReader(ring, 0, pos))
		}
	}
	r.Cuts = meta.cuts(headLen, r.Omitted)
	r.Reader = io.MultiReader(parts...)
	return r, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
