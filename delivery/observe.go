package delivery

func (o outcome) String() string {
	switch o {
	case sent:
		return "sent"
	case failed:
		return "failed"
	case unknown:
		return "unknown"
	case postponed:
		return "postponed"
	case again:
		return "again" // an edit of a deleted message, posted instead on the next pass
	}
	return "unclassified"
}

// outcome tells OnOutcome, when set.
func (o Options) outcome(kind, what string) {
	if o.OnOutcome != nil {
		o.OnOutcome(kind, what)
	}
}

// rateLimited tells On429 about a rate-limited answer from Slack (not about the host's own
// budget saying "wait": that is no 429).
func (o Options) rateLimited(e *Error) {
	if o.On429 == nil {
		return
	}
	switch e.Code {
	case "rate_limited", "ratelimited", "http_429":
		o.On429(e.Method)
	}
}

// progressOutcome names what became of a progress edit.
func progressOutcome(res outcome, e *Error) string {
	if res != sent && e != nil && e.Code == "rate_budget_short" {
		return "skipped"
	}
	return res.String()
}
