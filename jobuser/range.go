// Package jobuser gives every job a Unix user of its own and takes it back.
//
// A chat job is an attacker with a shell. Running each job as a uid that belongs to it
// alone — leased from the admin's executor.job_uids range in prepare, given back in cleanup
// only once no process of it is left — turns "which processes and files are this job's"
// into a question the kernel answers: everything of that uid. Cancel and cleanup stop every
// process of the uid, whatever process group or session it moved to; a job cannot signal,
// trace or read another job's processes, nor reach files the executor keeps private.
//
// The package has three parts: the lease (lease.go, a flock'd directory of lease files in
// state_dir), the processes of a uid (proc.go, found in /proc and stopped through pidfds so
// a recycled pid is never hit), and the directories a job is handed (dirs.go, built with
// openat and O_NOFOLLOW so no link a job planted is followed).
package jobuser

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Range is an inclusive range of uids. Each uid's primary gid is the same number, with no
// supplementary groups, so a job's group gives it nothing either.
type Range struct {
	First, Last uint32
}

// ParseRange reads "64000-64099". Uid 0 and the overflow ids (65534 nobody is a real
// account on most systems; 4294967295 is (uid_t)-1) are refused.
func ParseRange(s string) (Range, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Range{}, fmt.Errorf("want FIRST-LAST, such as \"64000-64099\", got %q", s)
	}
	first, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
	last, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
	if err1 != nil || err2 != nil {
		return Range{}, fmt.Errorf("want two decimal uids FIRST-LAST, got %q", s)
	}
	r := Range{First: uint32(first), Last: uint32(last)}
	switch {
	case r.First > r.Last:
		return Range{}, fmt.Errorf("first uid %d is above last uid %d", r.First, r.Last)
	case r.First < 1000:
		return Range{}, fmt.Errorf("uids below 1000 belong to the system (root is 0), got %q", s)
	case r.Last >= 1<<32-1:
		return Range{}, fmt.Errorf("uid 4294967295 is (uid_t)-1, not a usable uid")
	}
	return r, nil
}

func (r Range) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// Size is how many uids the range holds.
func (r Range) Size() int { return int(r.Last-r.First) + 1 }

// Contains reports whether uid is in the range.
func (r Range) Contains(uid uint32) bool { return uid >= r.First && uid <= r.Last }

// Account is a user or group entry that falls inside a range.
type Account struct {
	Kind string // "user" or "group"
	Name string
	ID   uint32
}

// Overlaps lists the entries of a passwd-format and a group-format file whose ids fall in
// r: a job leased such a uid would own that account's files. Missing files are skipped.
func (r Range) Overlaps(passwdFile, groupFile string) ([]Account, error) {
	var out []Account
	for _, f := range []struct{ kind, path string }{{"user", passwdFile}, {"group", groupFile}} {
		fh, err := os.Open(f.path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.path, err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) < 3 || strings.HasPrefix(fields[0], "#") {
				continue
			}
			id, err := strconv.ParseUint(fields[2], 10, 32)
			if err == nil && r.Contains(uint32(id)) {
				out = append(out, Account{Kind: f.kind, Name: fields[0], ID: uint32(id)})
			}
		}
		err = sc.Err()
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.path, err)
		}
	}
	return out, nil
}

// RandomRange returns a range of n uids at a random place between 2^20 and 2^31, far above
// any account a distribution creates. It is for runs that must not meet another executor's
// jobs on the same host — tests, and `try` — where a fixed range would let two concurrent
// runs with different state directories lease the same uid.
func RandomRange(n int) Range {
	var b [4]byte
	_, _ = rand.Read(b[:])
	const lo, hi = 1 << 20, 1 << 31
	blocks := uint32((hi - lo) / n)
	first := lo + (binary.LittleEndian.Uint32(b[:])%blocks)*uint32(n)
	return Range{First: first, Last: first + uint32(n) - 1}
}
