package audit

import "time"

// Decisions of the records that approvals and cancels from chat append (package control
// decides them; the stages write them).
const (
	Approved        = "approved"
	Refused         = "refused"
	Expired         = "expired"
	ApprovalFailed  = "approval-failed" // chat could not be asked or read: fail closed
	ApprovalStopped = "approval-stopped"
	ChatCancelled   = "cancelled-from-chat"
)

// Control is what a chat approval or cancel record adds to the job's identity: who could
// approve, who did, and when the wait began and ended.
type Control struct {
	Approvers []string  `json:"approvers,omitempty"`
	Groups    []string  `json:"approver_groups,omitempty"`
	Needed    int       `json:"needed,omitempty"`
	By        []string  `json:"by,omitempty"` // Slack user ids that approved, refused or cancelled
	Asked     time.Time `json:"asked,omitzero"`
	Ended     time.Time `json:"ended,omitzero"`
}
