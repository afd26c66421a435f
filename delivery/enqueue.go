package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"

	"github.com/chatops-executor/chatops-executor/atomicfile"
)

// Enqueue writes msgs to the job's queue, in order, in one atomic step, without sending
// anything. A reference
// (ThreadOf, Target) must name an earlier post of this job: check with Has first when the
// earlier message is optional (no start message when slack.ack is off).
func (j *Job) Enqueue(msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	var unlock func()
	for try := 0; ; try++ {
		if err := os.MkdirAll(j.dir, 0o700); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		var err error
		unlock, err = lock(context.Background(), filepath.Join(j.dir, appendLock), true)
		if errors.Is(err, fs.ErrNotExist) && try < 3 {
			continue // swept between MkdirAll and the lock: make it again
		}
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		break
	}
	defer unlock()
	ops, err := j.read()
	if err != nil {
		return err
	}
	names := map[string]Kind{}
	next := 1
	for _, o := range ops {
		if o.Name != "" {
			names[o.Name] = o.Kind
		}
		next = o.Seq + 1
	}
	// All or nothing, as far as validation goes: a bad message must not leave the ones
	// before it queued without it.
	seen := maps.Clone(names)
	for i, m := range msgs {
		if err := validate(m, seen); err != nil {
			return fmt.Errorf("outbox: message %d of job %s: %w", i+1, j.id, err)
		}
		if m.Name != "" {
			seen[m.Name] = m.Kind
		}
	}
	now := j.ob.opt.Clock.Now().UTC()
	b := batch{Format: 1, Ops: make([]op, 0, len(msgs))}
	first := next
	for i, m := range msgs {
		o := op{Seq: next, Kind: m.Kind, Name: m.Name, Channel: m.Channel, User: m.User, Text: m.Text,
			ThreadOf: m.ThreadOf, Target: m.Target, Filename: m.Filename, Title: m.Title, Blocks: m.Blocks,
			Queued: now, Since: now, State: StatePending, Format: m.Backend.format()}
		if m.Backend != BackendSlack {
			o.Backend = m.Backend // Slack's ops stay as earlier binaries wrote them
		}
		b.Format = max(b.Format, o.Format)
		if m.Kind == KindUpload {
			// The data lands under its final name before the batch that points at it exists,
			// so a sender never sees an upload without its content.
			n, err := atomicfile.WriteFrom(j.dataPath(next), m.Content, 0o600)
			if err != nil {
				return fmt.Errorf("outbox: %w", err)
			}
			if n == 0 {
				os.Remove(j.dataPath(next))
				return fmt.Errorf("outbox: message %d of job %s: empty file upload", i+1, j.id)
			}
			o.Size = n
		}
		b.Ops = append(b.Ops, o)
		next++
	}
	// One file for the whole call: a process killed here leaves every message or none.
	data, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := atomicfile.WriteFile(j.batchPath(first), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

func validate(m Message, names map[string]Kind) error {
	if m.Channel == "" {
		return errors.New("no channel")
	}
	if err := m.Backend.valid(); err != nil {
		return err
	}
	if len(m.Blocks) > 0 && m.Kind != KindPost && m.Kind != KindUpdate {
		return fmt.Errorf("blocks on a %s message: only posts and updates carry blocks", m.Kind)
	}
	if len(m.Blocks) > 0 && !json.Valid(m.Blocks) {
		return errors.New("blocks are not valid JSON")
	}
	if m.Name != "" {
		if !jobIDRe.MatchString(m.Name) {
			return fmt.Errorf("invalid name %q", m.Name)
		}
		if _, dup := names[m.Name]; dup {
			return fmt.Errorf("name %q is already used", m.Name)
		}
	}
	ref := func(field, name string) error {
		if name == "" {
			return nil
		}
		if k, ok := names[name]; !ok || k != KindPost {
			return fmt.Errorf("%s %q does not name an earlier post of this job", field, name)
		}
		return nil
	}
	switch m.Kind {
	case KindPost:
		if m.Text == "" {
			return errors.New("post without text")
		}
		return ref("thread_of", m.ThreadOf)
	case KindUpdate:
		if m.Text == "" {
			return errors.New("update without text")
		}
		if m.Target == "" {
			return errors.New("update without target")
		}
		return ref("target", m.Target)
	case KindEphemeral:
		if m.User == "" || m.Text == "" {
			return errors.New("ephemeral message needs a user and text")
		}
		return nil
	case KindUpload:
		if m.Filename == "" || m.Content == nil {
			return errors.New("upload needs a file name and content")
		}
		return ref("thread_of", m.ThreadOf)
	}
	return fmt.Errorf("unknown kind %q", m.Kind)
}

// Has reports whether the job has queued a message called name (at any state).
func (j *Job) Has(name string) bool {
	ops, err := j.read()
	if err != nil {
		return false
	}
	for _, o := range ops {
		if o.Name == name {
			return true
		}
	}
	return false
}
