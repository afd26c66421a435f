package stages

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/chatops-executor/chatops-executor/atomicfile"
	"github.com/chatops-executor/chatops-executor/policy"
)

// Each executor call is a new process, so what a later call needs is written under
// state_dir/<job id>/. The job id comes from the runner's JOB_RESPONSE_FILE, never from a
// job variable, so one job cannot name another's state. Files are written whole to a
// temporary name and renamed, so a call killed half-way never leaves a torn record.

// stageNameRe is what the runner's stage names look like (build_script, step_release,
// after_script…). The name becomes part of a file name, so nothing else is accepted.
var stageNameRe = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// JobRecord is written by prepare and read by run and cleanup.
type JobRecord struct {
	Format     int       `json:"format"` // stateFormat; see readJSON
	JobID      int64     `json:"job_id"`
	Name       string    `json:"name"`
	Project    string    `json:"project"`
	PreparedAt time.Time `json:"prepared_at"`
	// TimeoutSeconds is the job timeout GitLab gave the runner; cleanup uses it to tell a
	// timeout from a cancel, since both arrive as the same SIGTERM.
	TimeoutSeconds int    `json:"timeout_seconds"`
	BuildDir       string `json:"build_dir"`
	// Isolation, UID, GID and RunAs say who the job's scripts run as (see jobuser.go).
	Isolation  Isolation `json:"isolation,omitempty"`
	UID        uint32    `json:"uid,omitempty"`
	GID        uint32    `json:"gid,omitempty"`
	RunAs      string    `json:"run_as,omitempty"`
	Denied     bool      `json:"denied,omitempty"`
	DenyReason string    `json:"deny_reason,omitempty"`

	// The runner retries a prepare that failed or died, up to three times, with a cleanup
	// after each attempt; see prepare.go. Attempts counts prepare's attempts, Decided says
	// the policy's decision (Denied, Rule, Reason) is recorded, and Prepared that an attempt
	// got to its end, so that run may follow.
	Attempts int    `json:"attempts,omitempty"`
	Deciding bool   `json:"deciding,omitempty"`
	Decided  bool   `json:"decided,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Prepared bool   `json:"prepared,omitempty"`
	// AttemptEnded marks a prepare that got to its end but that no stage followed (see
	// preparePending): if no retry comes, the job ended before its first stage.
	AttemptEnded bool `json:"attempt_ended,omitempty"`
	// Tell is the decision's TellRequester.
	Tell bool `json:"tell_requester,omitempty"`
	// AllowMentions is the decision's AllowMentions (a record written before it existed
	// has false: mentions stay neutralised).
	AllowMentions bool `json:"allow_mentions,omitempty"`
	// RunnerFile is the runner's JOB_RESPONSE_FILE of the latest attempt. The runner removes
	// it with its temporary directory after cleanup, so while it exists the runner still
	// has the job; once it is gone the job is over, whatever became of its cleanup.
	RunnerFile string `json:"runner_file,omitempty"`
	// Approval is the deciding rule's approval (action = "approve"), kept so that a retried
	// prepare waits for it too; Approved says it was given, by ApprovedBy.
	Approval *policy.Approval `json:"approval,omitempty"`
	Approved bool             `json:"approved,omitempty"`
	// ApprovalAsked is when the request was first posted: its deadline counts from there.
	ApprovalAsked time.Time `json:"approval_asked,omitzero"`
	ApprovedBy    []string  `json:"approved_by,omitempty"`
}

// StageRecord is written by run for each stage it ran: once when the stage starts (Running
// set) and again when it ends. A record still Running at cleanup is a stage whose executor
// was killed (the runner's SIGKILL after graceful_kill_timeout, the OOM killer).
type StageRecord struct {
	Format    int       `json:"format"` // stateFormat; see readJSON
	Stage     string    `json:"stage"`
	Seq       int       `json:"seq"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	ExitCode  int       `json:"exit_code"`
	Running   bool      `json:"running,omitempty"`
	// Terminated is set when the runner asked the stage to stop (SIGTERM): the job was
	// cancelled or timed out.
	Terminated   bool      `json:"terminated,omitempty"`
	TerminatedAt time.Time `json:"terminated_at,omitzero"`
	// Signal names the signal that ended the script when it did not exit by itself.
	Signal string `json:"signal,omitempty"`
	// Error is set when the executor itself failed to run the stage.
	Error string `json:"error,omitempty"`
	// CancelledBy is the Slack user whose :octagonal_sign: stopped the stage (Terminated).
	CancelledBy string `json:"cancelled_by,omitempty"`
}

// State is one job's state directory.
type State struct {
	Dir string
}

// OpenState returns the state of job id under stateDir. It does not touch the disk.
func OpenState(stateDir string, id int64) State {
	return State{Dir: filepath.Join(stateDir, strconv.FormatInt(id, 10))}
}

// Create makes the state directory, private to the executor's user: it will hold raw,
// unredacted job output.
func (s State) Create() error {
	if err := os.MkdirAll(filepath.Dir(s.Dir), 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	if err := os.Mkdir(s.Dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create job state: %w", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, lossNote)); err == nil {
		return nil // a retried prepare: the note may already say something
	}
	return createLossNote(s.Dir)
}

// ErrNoState means prepare has not created the job's state (or cleanup removed it).
var ErrNoState = errors.New("no job state")

// WriteJob records the job.
func (s State) WriteJob(r JobRecord) error {
	r.Format = stateFormat
	return writeJSON(filepath.Join(s.Dir, "job.json"), r)
}

// ReadJob reads the job record; ErrNoState when prepare has not written it, and
// ErrNewerFormat when any record of the job was written by a newer chatops-executor: every
// caller goes through ReadJob first, so a job such a binary started is left whole to it.
func (s State) ReadJob() (JobRecord, error) {
	var r JobRecord
	err := readJSON(filepath.Join(s.Dir, "job.json"), &r)
	if errors.Is(err, fs.ErrNotExist) {
		return r, fmt.Errorf("%w in %s: prepare did not run for this job, or cleanup already removed it", ErrNoState, s.Dir)
	}
	if err == nil {
		err = s.checkFormats()
	}
	return r, err
}

// checkFormats returns ErrNewerFormat when a record of the job other than job.json is of a
// newer format than this binary's.
func (s State) checkFormats() error {
	names, err := filepath.Glob(filepath.Join(s.Dir, "stage-*.json"))
	if err != nil {
		return fmt.Errorf("list stage records: %w", err)
	}
	for _, n := range append(names, filepath.Join(s.Dir, cleanupMark)) {
		var v json.RawMessage
		if err := readJSON(n, &v); errors.Is(err, ErrNewerFormat) {
			return err
		}
	}
	return nil
}

// WriteStage records a stage's outcome. Stages are numbered in the order they ran, so a
// stage that runs twice (after_script after a retry) keeps both records.
func (s State) WriteStage(r StageRecord) error {
	if !stageNameRe.MatchString(r.Stage) {
		return fmt.Errorf("invalid stage name %q", r.Stage)
	}
	r.Format = stateFormat
	return writeJSON(s.stagePath(r), r)
}

func (s State) stagePath(r StageRecord) string {
	return filepath.Join(s.Dir, fmt.Sprintf("stage-%03d-%s.json", r.Seq, r.Stage))
}

// writeStageData writes a stage record already encoded.
func (s State) writeStageData(r StageRecord, data []byte) error {
	if !stageNameRe.MatchString(r.Stage) {
		return fmt.Errorf("invalid stage name %q", r.Stage)
	}
	return atomicfile.WriteFile(s.stagePath(r), data, 0o600)
}

// NextSeq returns the sequence number for the next stage record.
func (s State) NextSeq() (int, error) {
	recs, err := s.Stages()
	if err != nil {
		return 0, err
	}
	if len(recs) == 0 {
		return 1, nil
	}
	return recs[len(recs)-1].Seq + 1, nil
}

// Stages returns the recorded stages in the order they ran.
func (s State) Stages() ([]StageRecord, error) {
	names, err := filepath.Glob(filepath.Join(s.Dir, "stage-*.json"))
	if err != nil {
		return nil, fmt.Errorf("list stage records: %w", err)
	}
	var recs []StageRecord
	for _, n := range names {
		var r StageRecord
		if err := readJSON(n, &r); err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Seq < recs[j].Seq })
	return recs, nil
}

// Exists reports whether the state directory is there.
func (s State) Exists() bool {
	fi, err := os.Stat(s.Dir)
	return err == nil && fi.IsDir()
}

// Remove deletes the job's state.
func (s State) Remove() error {
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("remove job state: %w", err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return atomicfile.WriteFile(path, append(data, '\n'), 0o600)
}

// The records outlive the binary that wrote them: a job prepared before an upgrade is
// cleaned up after it. Each record says its format: none is the format of release ebc2373,
// the last one without the field, read as format 1 (the same layout); a newer format than
// stateFormat was written by a newer chatops-executor (a downgrade while a job ran), and is
// never read, rewritten or removed by this one: the job's state is left for an upgrade.

// stateFormat is the version of the state records this binary writes. Raise it when a
// change to a record would be misread by an older binary.
const stateFormat = 1

// ErrNewerFormat means a state record was written by a newer chatops-executor.
var ErrNewerFormat = errors.New("written by a newer chatops-executor")

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	var h struct {
		Format int `json:"format"`
	}
	if json.Unmarshal(data, &h) == nil && h.Format > stateFormat {
		return fmt.Errorf("%s %w (state format %d; this one reads up to %d); upgrade, or remove %s once the job is over",
			path, ErrNewerFormat, h.Format, stateFormat, filepath.Dir(path))
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("read %s: corrupt state: %w", path, err)
	}
	return nil
}
