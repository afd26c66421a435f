package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// The chain makes tampering with the log visible. Every record carries the host that wrote
// it, a sequence number one higher than the record before it, and Prev: the SHA-256 (hex) of
// the previous line's bytes as written, without its newline. Editing a line breaks the Prev
// of the next one; removing lines makes Seq jump; moving one makes Seq go back. Verify finds
// the first such place.
//
// The chain runs on across log rotation. Next to the log, in a file logrotate's globs do
// not match (".<name>.chain"), Append keeps the last record's Seq and hash; a fresh (rotated,
// truncated) log starts from there, so the first line of audit.jsonl chains from the last
// line of audit.jsonl.1. That file also lets Verify notice lines cut from the end of the
// live log, which no later line could reveal.
//
// The chain shows tampering by anyone who cannot also rewrite every later line; someone with
// the runner's rights can recompute it all. Against that, ship the records off the host as
// they are written (policy.audit_syslog, or a log shipper reading the file): the copy held
// elsewhere anchors the chain.

// chainHead is the chain file: where the next record continues from.
type chainHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// ChainPath is the chain file that belongs to the log at path.
func ChainPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".chain")
}

// lineHash is what the next record's Prev must be.
func lineHash(line []byte) string {
	sum := sha256.Sum256(bytes.TrimSuffix(line, []byte("\n")))
	return hex.EncodeToString(sum[:])
}

// chained is the part of a record the chain reads.
type chained struct {
	Host string `json:"host"`
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
}

// head finds where the next record of the log f continues the chain: from the log's last
// line when it has one, else (a fresh or rotated log) from the chain file.
func head(f *os.File, chainFile string) (chainHead, error) {
	last, err := lastLine(f)
	if err != nil {
		return chainHead{}, err
	}
	if len(last) > 0 {
		var c chained
		_ = json.Unmarshal(last, &c) // a record from before the chain has Seq 0: restart at 1
		return chainHead{Seq: c.Seq, Hash: lineHash(last)}, nil
	}
	data, err := os.ReadFile(chainFile)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(bytes.TrimSpace(data)) == 0) {
		return chainHead{}, nil // the very first record
	}
	if err != nil {
		return chainHead{}, err
	}
	var h chainHead
	if err := json.Unmarshal(data, &h); err != nil {
		return chainHead{}, fmt.Errorf("chain file %s: %w", chainFile, err)
	}
	return h, nil
}

// lastLine returns the last line of f (without its newline), reading backwards from the end.
func lastLine(f *os.File) ([]byte, error) {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil || end == 0 {
		return nil, err
	}
	const chunk = 16 << 10
	var tail []byte
	pos := end
	for pos > 0 {
		n := min(chunk, pos)
		pos -= n
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, pos); err != nil {
			return nil, err
		}
		tail = append(buf, tail...)
		body := bytes.TrimSuffix(tail, []byte("\n"))
		if i := bytes.LastIndexByte(body, '\n'); i >= 0 {
			return body[i+1:], nil
		}
	}
	return bytes.TrimSuffix(tail, []byte("\n")), nil
}

// writeHead records h in the chain file. It is rewritten in place (under the log's chain
// lock): it is a cache of the log's last line, which stays the truth.
func writeHead(f *os.File, h chainHead) error {
	data, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err = f.WriteAt(append(data, '\n'), 0)
	return err
}
