// Package atomicfile writes files that readers and crashes see whole or not at all.
//
// Every process of the executor — the runner's four calls, flush, a later job's cleanup —
// may read a file another one is writing, and any of them may be killed half-way. So state
// and outbox files are written to a temporary name in the same directory, synced, renamed
// over the target, and the directory synced, so that after a crash the path holds the old
// content or the new, never a part, and a rename that returned is not forgotten.
package atomicfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile writes data to path atomically with permissions perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	_, err := WriteFrom(path, bytes.NewReader(data), perm)
	return err
}

// WriteFrom copies r to path atomically with permissions perm and returns the length.
func WriteFrom(path string, r io.Reader, perm os.FileMode) (int64, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	SyncDir(dir)
	return n, nil
}

// SyncDir makes a rename in dir durable. Best effort: some file systems refuse to sync a
// directory, and the rename itself has already happened.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
