package replies

import (
	"fmt"
	"strings"
	"time"

	"github.com/chatops-executor/chatops-executor/job"
)

// Approval is what the start message of a job that needs approval says about it.
type Approval struct {
	Approvers []string // Slack user ids
	Groups    []string // Slack user group ids
	Needed    int
	Expires   time.Time
}

// who names the approvers as Slack mentions: "<@U1>, <@U2> or a member of <!subteam^S1>".
func (a Approval) who() string {
	var names []string
	for _, u := range a.Approvers {
		if ValidUser(u) {
			names = append(names, "<@"+u+">")
		}
	}
	for _, g := range a.Groups {
		if job.SlackID(g, "S") {
			names = append(names, "a member of <!subteam^"+g+">")
		}
	}
	switch len(names) {
	case 0:
		return "nobody"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// expires renders t in each reader's own time zone, with UTC as the fallback.
func expires(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} at {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

// mentions renders user ids as mentions.
func mentions(users []string) string {
	var out []string
	for _, u := range users {
		if ValidUser(u) {
			out = append(out, "<@"+u+">")
		}
	}
	return strings.Join(out, ", ")
}

// asks is the first line of an approval request: who asks for what.
func asks(j Job) string {
	s := mention(j) + "asks to run " + what(j)
	if in := j.clip(j.Input, 200); in != "" {
		s += " with " + inlineCode(in)
	}
	return s + " · " + link(j)
}

// ApprovalText is the start message of a job that waits for approval: who asks for what,
// who may approve, how, and when the request expires.
func ApprovalText(j Job, a Approval) string {
	n := max(a.Needed, 1)
	approvals := "an approval"
	if n > 1 {
		approvals = fmt.Sprintf("%d approvals (from different people)", n)
	}
	return ":raised_hand: " + asks(j) + "\nNeeds " + approvals + " from " + a.who() +
		": react :white_check_mark: to approve, :x: to refuse. Expires " + expires(a.Expires) + "."
}

// ApprovedText is the start message once approved: then the job starts.
func ApprovedText(j Job, by []string) string {
	return StartText(j) + "\n:ballot_box_with_check: approved by " + mentions(by) +
		" · react :octagonal_sign: to cancel"
}

// RefusedText is the start message of a refused job.
func RefusedText(j Job, by string) string {
	return ":x: " + asks(j) + "\nRefused by " + mentions([]string{by}) + ": the job does not run."
}

// ExpiredText is the start message of a request nobody approved in time.
func ExpiredText(j Job, a Approval, by []string) string {
	s := ":alarm_clock: " + asks(j) + fmt.Sprintf("\nExpired: %d of %d approvals", len(by), max(a.Needed, 1))
	if len(by) > 0 {
		s += " (" + mentions(by) + ")"
	}
	return s + " came in time, so the job does not run."
}

// ApprovalFailedText is the start message when chat could not be read: nobody can have
// approved, so the job does not run.
func ApprovalFailedText(j Job) string {
	return ":warning: " + asks(j) + "\nThe approvals could not be read from Slack, so the job does not run; run the command again."
}

// ApprovalStoppedText is the start message when the runner stopped the job while it waited.
func ApprovalStoppedText(j Job) string {
	return ":no_entry_sign: " + asks(j) + "\nThe runner stopped the job while it waited for approval (cancelled, or the prepare timeout)."
}

// ApprovalDeniedText is the ephemeral message that tells the requester why their job did
// not run. Like DeniedText it quotes nothing the job controls: only the job id, its page,
// and what the approvers (Slack ids) did.
func ApprovalDeniedText(id int64, url, why string) string {
	return ":lock: Your chat command did not run: " + why + " · " + link(Job{ID: id, URL: url})
}

// CancelledBy is the reason of a job cancelled from chat, for its final status.
func CancelledBy(user string) string {
	if !ValidUser(user) {
		return "from chat"
	}
	return "from chat by <@" + user + ">"
}
