package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// A file of a job's queue that cannot be read — empty, cut short, not JSON, written by
// hand — must not block the job's other messages: it is moved aside into the job's
// quarantine directory, with a note saying why, and the rest is delivered. A quarantined
// file keeps its job's queue from being removed, and `flush --status` lists it, until an
// admin looks at it and discards the job (`flush --discard --job ID`).

const quarantineDir = "quarantine"

// Quarantined is one file set aside.
type Quarantined struct {
	File string // its name in the queue, e.g. op-000003.json
	Why  string
}

func (q Quarantined) String() string { return q.File + ": " + q.Why }

// quarantine moves the unreadable file path aside. Two readers may find the same file at
// once; the second finds it gone, which is fine.
func (j *Job) quarantine(path string, why error) {
	dir := filepath.Join(j.dir, quarantineDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	dst := filepath.Join(dir, filepath.Base(path))
	if err := os.Rename(path, dst); err != nil {
		return
	}
	_ = os.WriteFile(dst+".why", []byte(why.Error()+"\n"), 0o600)
}

// quarantined lists the job's quarantined files.
func (j *Job) quarantined() []Quarantined {
	names, _ := filepath.Glob(filepath.Join(j.dir, quarantineDir, "*.json"))
	sort.Strings(names)
	var out []Quarantined
	for _, n := range names {
		why, err := os.ReadFile(n + ".why")
		if err != nil {
			why = []byte("unreadable")
		}
		out = append(out, Quarantined{File: filepath.Base(n), Why: strings.TrimSpace(string(why))})
	}
	return out
}

// batch is one Enqueue: every message of the call in one file, written atomically, so
// that a process killed while queueing leaves all of them or none. Each op's own file,
// once written (its delivery state changed), supersedes its entry here.
type batch struct {
	Ops []op `json:"ops"`
}

func (j *Job) batchPath(seq int) string {
	return filepath.Join(j.dir, fmt.Sprintf("batch-%06d.json", seq))
}

// readFile decodes one op or batch file; an unreadable one is quarantined and reported
// as ok=false. A file removed under us (the job was delivered and removed) is skipped.
func (j *Job) readFile(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("outbox: %w", err)
	}
	if len(data) == 0 {
		j.quarantine(path, errors.New("the file is empty"))
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		j.quarantine(path, fmt.Errorf("not a valid queue file: %w", err))
		return false, nil
	}
	return true, nil
}
