package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// The queue files outlive the binary that wrote them: an upgrade (or a downgrade) happens
// while replies wait. Each file says which format it is in, so that a binary knows what it
// reads:
//   - no "format" field: the format of release ebc2373, the last one without the field,
//     which this binary reads as format 1 (every field it has means what it meant);
//   - a format up to queueFormat: read as usual;
//   - a newer format: written by a newer chatops-executor, after a downgrade. This binary
//     cannot know what the file means, so the whole job is left alone — not delivered, not
//     quarantined, not removed, its files untouched — and reported, until an upgrade
//     delivers it or an admin discards it.

// queueFormat is the newest version of the queue files this binary reads and writes. Raise
// it when a change to op or batch would be misread by an older binary. Each file is
// written in the oldest format that holds it (see Backend.format):
//   - 1: Slack messages;
//   - 2: adds "backend" ("mattermost"); an older binary would post such a message to Slack.
const queueFormat = 2

// ErrNewerFormat means a job's queue holds a file written by a newer chatops-executor.
var ErrNewerFormat = errors.New("written by a newer chatops-executor")

// newerError lists a job's files that are in a newer format than this binary's.
type newerError struct {
	job    string
	files  []string
	format int
}

func (e *newerError) Error() string {
	return fmt.Sprintf("outbox: job %s: %s %s (queue format %d; this one reads up to %d); upgrade, or discard the job with 'chatops-executor flush --discard --job %s'",
		e.job, strings.Join(e.files, ", "), ErrNewerFormat, e.format, queueFormat, e.job)
}

func (e *newerError) Unwrap() error { return ErrNewerFormat }

// fileFormat returns the format a queue file declares: 1 for a file without one.
func fileFormat(data []byte) (int, error) {
	var h struct {
		Format *int `json:"format"`
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return 0, err
	}
	if h.Format == nil {
		return 1, nil
	}
	if *h.Format < 1 {
		return 0, fmt.Errorf("invalid format %d", *h.Format)
	}
	return *h.Format, nil
}

// add records that path is in format f, newer than queueFormat.
func (e *newerError) add(path string, f int) {
	e.files = append(e.files, filepath.Base(path))
	e.format = max(e.format, f)
}
