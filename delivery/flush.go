package delivery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FlushOptions tunes Flush.
type FlushOptions struct {
	// Jobs limits the flush to these job ids; empty means all.
	Jobs []string
	// Skip is a job not to touch (the caller's own, delivered separately).
	Skip string
	// JobBudget bounds each job (0: Options.Budget); Total bounds the whole flush (0: none).
	JobBudget, Total time.Duration
	// Wait makes Flush wait for a job another process is delivering (the flush command)
	// instead of skipping it (opportunistic flushes from stages, which must stay quick).
	Wait bool
}

// Flush delivers what waits in the outbox, job by job, oldest job first. After a job ends
// with Slack unreachable the remaining jobs get no retries in this call: each still gets
// one attempt, but nobody waits out backoffs for an outage.
func (o *Outbox) Flush(ctx context.Context, fo FlushOptions) ([]Report, error) {
	ids, err := o.jobIDs(fo.Jobs)
	if err != nil {
		return nil, err
	}
	if fo.Total > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, fo.Total)
		defer cancel()
	}
	budget := fo.JobBudget
	var reps []Report
	var errs []error
	for _, id := range ids {
		if id == fo.Skip {
			continue
		}
		j, err := o.Job(id)
		if err != nil {
			continue
		}
		if ctx.Err() != nil {
			rep, err := j.Status()
			if err != nil {
				errs = append(errs, err)
			}
			reps = append(reps, rep)
			continue
		}
		rep, err := j.deliver(ctx, budget, fo.Wait)
		if err != nil {
			errs = append(errs, err)
		}
		if len(rep.Waiting) > 0 && len(rep.Delivered) == 0 && !rep.Busy {
			budget = time.Nanosecond // Slack seems down: one attempt each from here on
		}
		if len(rep.Delivered) > 0 || !rep.Clear() || rep.Busy {
			reps = append(reps, rep)
		}
	}
	return reps, errors.Join(errs...)
}

// Status reports every job with something waiting or failed, without sending anything.
func (o *Outbox) Status() ([]Report, error) {
	ids, err := o.jobIDs(nil)
	if err != nil {
		return nil, err
	}
	var reps []Report
	for _, id := range ids {
		j, err := o.Job(id)
		if err != nil {
			continue
		}
		rep, err := j.Status()
		if err != nil {
			return reps, err
		}
		if !rep.Clear() {
			reps = append(reps, rep)
		}
	}
	return reps, nil
}

// Requeue makes the failed, unknown and expired messages of a job pending again, with a
// fresh age limit, so the next delivery sends them — in their original order relative to
// each other. For "unknown" messages that is the admin's decision to risk a duplicate. It
// returns how many were requeued.
func (o *Outbox) Requeue(ctx context.Context, id string) (int, error) {
	j, err := o.Job(id)
	if err != nil {
		return 0, err
	}
	unlock, err := j.lockSend(ctx, true)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("outbox: job %s: %w", id, err)
	}
	defer unlock()
	ops, err := j.read()
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range ops {
		o := &ops[i]
		if o.State != StateFailed && o.State != StateUnknown && o.State != StateExpired {
			continue
		}
		o.Note = fmt.Sprintf("requeued after %s: %s", o.State, o.LastErr)
		o.State, o.Since = StatePending, j.ob.opt.Clock.Now().UTC()
		if err := j.write(o); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Discard deletes a job's queue, delivered or not. It is the only way a message leaves the
// outbox undelivered, and only on an admin's explicit request (`flush --discard`).
func (o *Outbox) Discard(ctx context.Context, id string) (Report, error) {
	j, err := o.Job(id)
	if err != nil {
		return Report{}, err
	}
	unlock, err := j.lockSend(ctx, true)
	if errors.Is(err, fs.ErrNotExist) {
		return Report{Job: id}, nil
	}
	if err != nil {
		return Report{Job: id}, fmt.Errorf("outbox: job %s: %w", id, err)
	}
	defer unlock()
	rep, err := j.Status()
	if err != nil {
		return rep, err
	}
	return rep, j.remove(true)
}

// jobIDs lists job directories, oldest first (numeric job ids grow with time).
func (o *Outbox) jobIDs(only []string) ([]string, error) {
	if len(only) > 0 {
		return only, nil
	}
	ents, err := os.ReadDir(o.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".removed-") {
			os.RemoveAll(filepath.Join(o.dir, e.Name())) // a remover died half-way
			continue
		}
		if e.IsDir() && jobIDRe.MatchString(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Slice(ids, func(a, b int) bool {
		x, errx := strconv.ParseInt(ids[a], 10, 64)
		y, erry := strconv.ParseInt(ids[b], 10, 64)
		if errx == nil && erry == nil {
			return x < y
		}
		return ids[a] < ids[b]
	})
	return ids, nil
}
