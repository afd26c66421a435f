package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	var newer *newerError
	if errors.As(err, &newer) {
		rep.Quarantined = append(rep.Quarantined, j.quarantined()...)
		rep.Newer = newer
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	rep.Quarantined = append(rep.Quarantined, j.quarantined()...)
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

// read returns the job's ops in order; none when the job has no directory. Ops come from
// batch files (as queued) and op files (as delivery left them); an op's own file wins.
// Unreadable files are quarantined, and the rest is returned. A file in a newer format
// makes it return a *newerError and no ops: the job is left to the binary that wrote it.
func (j *Job) read() ([]op, error) {
	byseq := map[int]op{}
	newer := &newerError{job: j.id}
	batches, err := filepath.Glob(filepath.Join(j.dir, "batch-*.json"))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	for _, n := range batches {
		var b batch
		ok, err := j.readFile(n, &b, newer)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		for _, o := range b.Ops {
			if o.Seq > 0 {
				byseq[o.Seq] = o
			}
		}
	}
	names, err := filepath.Glob(filepath.Join(j.dir, "op-*.json"))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	for _, n := range names {
		var o op
		ok, err := j.readFile(n, &o, newer)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if o.Seq <= 0 {
			j.quarantine(n, errors.New("the op has no sequence number"))
			continue
		}
		byseq[o.Seq] = o
	}
	if len(newer.files) > 0 {
		return nil, newer
	}
	ops := make([]op, 0, len(byseq))
	for _, o := range byseq {
		ops = append(ops, o)
	}
	sort.Slice(ops, func(a, b int) bool { return ops[a].Seq < ops[b].Seq })
	return ops, nil
}

func (j *Job) write(o *op) error {
	o.Format = o.Backend.format()
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
