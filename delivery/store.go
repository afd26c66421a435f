package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/chatops-executor/chatops-executor/atomicfile"
)

// remove deletes the job's directory: first renamed away, so that a process that was
// waiting for the lock finds the directory gone rather than half-deleted. Called with the
// send lock held; it also needs the append lock, so that it never sweeps a directory that
// an Enqueue is writing into (if one is, the directory stays for the next delivery).
func (j *Job) remove(force bool) error {
	unlock, err := lock(context.Background(), filepath.Join(j.dir, appendLock), force)
	if errors.Is(err, errBusy) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("outbox: remove delivered job %s: %w", j.id, err)
	}
	defer unlock()
	if ops, err := j.read(); !force && (err != nil || !allDone(ops)) {
		return err // something was queued after the caller looked
	}
	trash := filepath.Join(j.ob.dir, fmt.Sprintf(".removed-%s-%d", j.id, time.Now().UnixNano()))
	if err := os.Rename(j.dir, trash); err != nil {
		return fmt.Errorf("outbox: remove delivered job %s: %w", j.id, err)
	}
	atomicfile.SyncDir(j.ob.dir)
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("outbox: remove delivered job %s: %w", j.id, err)
	}
	return nil
}

// Status reports the job's queue without sending anything.
func (j *Job) Status() (Report, error) { return j.status(Report{Job: j.id}) }

func (j *Job) status(rep Report) (Report, error) {
	ops, err := j.read()
	if err != nil {
		return rep, err
	}
	now := j.ob.opt.Clock.Now()
	for _, o := range ops {
		switch o.State {
		case StatePending, StateInFlight:
			rep.Waiting = append(rep.Waiting, o.status(now))
		case StateFailed, StateUnknown, StateExpired:
			rep.Failed = append(rep.Failed, o.status(now))
		}
	}
	return rep, nil
}

// read returns the job's ops in order; none when the job has no directory.
func (j *Job) read() ([]op, error) {
	names, err := filepath.Glob(filepath.Join(j.dir, "op-*.json"))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	ops := make([]op, 0, len(names))
	for _, n := range names {
		data, err := os.ReadFile(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed under us: the job was delivered and closed
		}
		if err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		var o op
		if err := json.Unmarshal(data, &o); err != nil {
			return nil, fmt.Errorf("outbox: %s is corrupt: %w", n, err)
		}
		ops = append(ops, o)
	}
	sort.Slice(ops, func(a, b int) bool { return ops[a].Seq < ops[b].Seq })
	return ops, nil
}

func (j *Job) write(o *op) error {
	data, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := atomicfile.WriteFile(j.opPath(o.Seq), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// lockSend takes the job's send lock. The directory is never created here: a job with no
// directory has nothing to send.
func (j *Job) lockSend(ctx context.Context, wait bool) (func(), error) {
	if _, err := os.Stat(j.dir); err != nil {
		return nil, err
	}
	return lock(ctx, filepath.Join(j.dir, sendLock), wait)
}
