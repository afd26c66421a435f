package delivery

import (
	"fmt"
	"strings"
	"time"
)

// Report is what a delivery left behind for one job.
type Report struct {
	Job string
	// Delivered lists what this call delivered.
	Delivered []OpStatus
	// Waiting lists messages that will be tried again (Slack down, rate limited, out of
	// time).
	Waiting []OpStatus
	// Failed lists messages that will not be tried again without an admin: refused by
	// Slack, outcome unknown, or expired. They stay in the outbox.
	Failed []OpStatus
	// Busy is set when another process was delivering this job.
	Busy bool
	// Quarantined lists queue files that could not be read and were set aside.
	Quarantined []Quarantined
}

// Clear reports that nothing of the job is waiting, failed or quarantined.
func (r Report) Clear() bool {
	return len(r.Waiting) == 0 && len(r.Failed) == 0 && len(r.Quarantined) == 0
}

// String is a one-line summary for a runner log, e.g. "2 delivered, 1 waiting (Slack
// unreachable: …)".
func (r Report) String() string {
	var parts []string
	if n := len(r.Delivered); n > 0 {
		parts = append(parts, fmt.Sprintf("%d delivered", n))
	}
	if n := len(r.Waiting); n > 0 {
		s := fmt.Sprintf("%d waiting in the outbox", n)
		if e := r.Waiting[0].Err; e != "" {
			s += " (" + e + ")"
		}
		parts = append(parts, s)
	}
	if n := len(r.Failed); n > 0 {
		s := fmt.Sprintf("%d failed (%s", n, r.Failed[0].Err)
		if h := r.Failed[0].Hint; h != "" {
			s += "; hint: " + h
		}
		parts = append(parts, s+")")
	}
	if n := len(r.Quarantined); n > 0 {
		parts = append(parts, fmt.Sprintf("%d unreadable queue file%s set aside (%s)", n, plural(n), r.Quarantined[0]))
	}
	if r.Busy {
		parts = append(parts, "another process is delivering it")
	}
	if len(parts) == 0 {
		return "nothing to deliver"
	}
	return strings.Join(parts, ", ")
}

// OpStatus describes one queued message.
type OpStatus struct {
	Seq      int
	Kind     Kind
	Name     string
	Channel  string
	State    State
	Attempts int
	Age      time.Duration // since it was queued
	TS       string
	Err      string // the last error, token-free
	Hint     string
	Note     string // how it was delivered when not as asked (degraded)
}

func (o *op) status(now time.Time) OpStatus {
	return OpStatus{Seq: o.Seq, Kind: o.Kind, Name: o.Name, Channel: o.Channel, State: o.State,
		Attempts: o.Attempts, Age: now.Sub(o.Queued).Round(time.Second), TS: o.TS, Err: o.LastErr,
		Hint: o.Hint, Note: o.Note}
}

// String describes the message for an admin: "#2 post "start" in C0123 (in-flight, 3 attempts)".
func (s OpStatus) String() string {
	b := fmt.Sprintf("#%d %s", s.Seq, s.Kind)
	if s.Name != "" {
		b += fmt.Sprintf(" %q", s.Name)
	}
	b += " in " + s.Channel
	b += fmt.Sprintf(" (%s, %d attempt%s, queued %s ago)", s.State, s.Attempts, plural(s.Attempts), s.Age)
	return b
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
