package audit

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Break is the first place where a chain of audit files does not hold.
type Break struct {
	File string
	Line int // 1-based, in File
	// Problem says what was found, in the admin's terms.
	Problem string
}

func (b *Break) Error() string { return fmt.Sprintf("%s:%d: %s", b.File, b.Line, b.Problem) }

// Summary is what Verify checked.
type Summary struct {
	Records int
	// FirstSeq and LastSeq are the sequence numbers of the first and last chained record.
	FirstSeq, LastSeq uint64
	// Anchored says the chain started at record 1, not part-way (older files not given).
	Anchored bool
	// Unchained counts records at the start of the first file written before the chain
	// existed: nothing protects them.
	Unchained int
	Hosts     []string
	// Tail says whether the live log's end was checked against its chain file.
	Tail bool
}

// Verify checks the chain through files, given oldest first (audit.jsonl.3.gz, …,
// audit.jsonl.1, audit.jsonl): each file must continue from the last record of the file
// before it. Files ending in .gz are read through gzip, as logrotate's compress leaves
// them. When the last file has a chain file (it is the live log), its end is checked
// against it, which reveals lines cut from the end. A broken chain is a *Break; other
// errors are for reading the files.
func Verify(files []string) (Summary, error) {
	var s Summary
	if len(files) == 0 {
		return s, errors.New("audit verify: no files")
	}
	// The chain file is read first: records appended while we read are newer than it, and
	// must not look like lines cut from the end.
	tail, err := readTail(files[len(files)-1])
	if err != nil {
		return s, err
	}
	s.Tail = tail != nil
	tailSeen := false
	var prev []byte // the previous line
	var prevSeq uint64
	lastN := 0 // line of the last record in the last file
	started := false
	for fi, name := range files {
		r, closeFn, err := open(name)
		if err != nil {
			return s, err
		}
		br := bufio.NewReaderSize(r, 64<<10)
		for n := 1; ; n++ {
			line, err := br.ReadBytes('\n')
			if len(line) == 0 && err == io.EOF {
				break
			}
			if err != nil && err != io.EOF {
				closeFn()
				return s, fmt.Errorf("read %s: %w", name, err)
			}
			brk := func(format string, args ...any) error {
				closeFn()
				return &Break{File: name, Line: n, Problem: fmt.Sprintf(format, args...)}
			}
			if !strings.HasSuffix(string(line), "\n") {
				return s, brk("the last line is incomplete (a write was cut off, or the file was edited)")
			}
			var c chained
			if json.Unmarshal(line, &c) != nil {
				return s, brk("not a JSON record: the line was edited or the file damaged")
			}
			switch {
			case c.Seq == 0 && !started && fi == 0:
				s.Unchained++ // written before the chain existed
			case c.Seq == 0:
				return s, brk("a record without a sequence number inside the chain: inserted by hand?")
			case !started:
				started = true
				s.FirstSeq = c.Seq
				s.Anchored = c.Seq == 1
				if c.Seq == 1 && prev == nil && c.Prev != "" {
					return s, brk("record 1 claims a predecessor: the lines before it were removed")
				}
				if prev != nil && c.Prev != lineHash(prev) {
					return s, brk("the first chained record does not follow the unchained line before it: that line was edited")
				}
			case c.Seq == prevSeq+1 && c.Prev == lineHash(prev):
				// in order
			case c.Seq == prevSeq+1 && n == 1:
				return s, brk("record %d does not continue the previous file: a file of the sequence is missing, edited, or given out of order", c.Seq)
			case c.Seq == prevSeq+1:
				return s, brk("the line before (record %d) was edited: its hash is not the one this record holds", prevSeq)
			case c.Seq > prevSeq+1 && n == 1:
				return s, brk("records %d to %d are missing between the previous file and this one: a rotated file was not given, or lines were removed", prevSeq+1, c.Seq-1)
			case c.Seq > prevSeq+1:
				if at := findSeq(name, n, prevSeq+1); at > 0 {
					return s, brk("record %d is out of order: it comes before record %d, which is on line %d: lines were reordered", c.Seq, prevSeq+1, at)
				}
				return s, brk("records %d to %d were removed before this line", prevSeq+1, c.Seq-1)
			default:
				return s, brk("record %d comes after record %d: lines were reordered (or a file given out of order)", c.Seq, prevSeq)
			}
			if c.Seq > 0 {
				prevSeq = c.Seq
				s.LastSeq = c.Seq
				if c.Host != "" && !slices.Contains(s.Hosts, c.Host) {
					s.Hosts = append(s.Hosts, c.Host)
				}
			}
			if tail != nil && c.Seq == tail.Seq && c.Seq > 0 {
				tailSeen = true
				if lineHash(line) != tail.Hash {
					return s, brk("record %d was edited: it does not match the chain file, which holds the last record's hash", c.Seq)
				}
			}
			prev = line
			lastN = n
			s.Records++
			if err == io.EOF {
				break
			}
		}
		closeFn()
	}
	if tail == nil || tailSeen || tail.Seq == 0 {
		return s, nil
	}
	last := files[len(files)-1]
	switch {
	case tail.Seq > prevSeq:
		return s, &Break{File: last, Line: lastN, Problem: fmt.Sprintf("records %d to %d were removed from the end of the log", prevSeq+1, tail.Seq)}
	case s.FirstSeq > 0 && tail.Seq < s.FirstSeq:
		return s, nil // the chain file's record is in an older file, not given
	default:
		return s, &Break{File: ChainPath(last), Line: 1, Problem: fmt.Sprintf("the chain file names record %d, which the log does not hold: one of them was changed", tail.Seq)}
	}
}

// readTail reads the chain file beside the live log, under a shared lock so it is not read
// half-written; nil when there is none (a rotated file, or a log from before the chain).
func readTail(last string) (*chainHead, error) {
	f, err := os.Open(ChainPath(last))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit verify: %w", err)
	}
	defer f.Close()
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_SH)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("audit verify: lock %s: %w", f.Name(), err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("audit verify: %w", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, nil
	}
	var h chainHead
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, &Break{File: f.Name(), Line: 1, Problem: "the chain file is not valid: it was edited"}
	}
	return &h, nil
}

// findSeq returns the line after line from where file holds record seq, or 0.
func findSeq(name string, from int, seq uint64) int {
	r, closeFn, err := open(name)
	if err != nil {
		return 0
	}
	defer closeFn()
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		var c chained
		if n > from && json.Unmarshal(line, &c) == nil && c.Seq == seq {
			return n
		}
		if err != nil {
			return 0
		}
	}
}

// open opens name, through gzip when it ends in .gz.
func open(name string) (io.Reader, func(), error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("audit verify: %w", err)
	}
	if !strings.HasSuffix(name, ".gz") {
		return f, func() { f.Close() }, nil
	}
	z, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("audit verify: %s: %w", name, err)
	}
	return z, func() { z.Close(); f.Close() }, nil
}
