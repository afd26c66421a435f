// Package delivery gets chat messages to Slack or Mattermost and never loses one.
//
// It knows nothing of how a job runs or is decided: it imports no stages and no policy, so
// every process that holds messages (the stages, flush, try) uses it the same way.
//
// A chat job says three to four things over its life, from different processes: prepare
// posts a start message, run edits it with progress, cleanup edits it to the final status
// and posts the reply (or uploads it as a file) in its thread. Each later message needs the
// timestamp Slack gave the first. Slack may be down, slow or rate limiting at any of those
// moments, and the executor may be killed at any instruction.
//
// # Design
//
// Poster is the chat platform (four calls); Slack implements it with slack-go and
// classifies every failure by one question: could Slack have acted on the call? (Class:
// Retryable, Uncertain, Permanent.)
//
// Outbox is a directory per job under <state_dir>/outbox/<job id>/ holding one file per
// message ("op"), numbered in the order queued. Every message goes through it, also when
// Slack is up: the start message's ts is recorded there, which is how cleanup, a different
// process perhaps hours later, edits it and threads under it. A message names an earlier
// post by name ("start") rather than by ts, so it can be queued before that post was
// delivered; the reference is resolved when it is sent.
//
// One process at a time delivers a job: it holds an flock on the job's "lock" file (the
// kernel drops it if the process dies), re-reads the ops from disk, and works through them
// strictly in order: op N+1 is not tried until op N is done or has finally failed. Queuing
// takes a separate lock ("append.lock") only to number the new op, so a stage never waits
// for a slow delivery to queue its message. All files are written to a temporary name,
// synced and renamed (mode 0600, directories 0700).
//
// # Guarantee: at most once, never silently dropped
//
// Before every call to Slack the op is recorded "in-flight"; after Slack's answer it is
// recorded done (with the ts), pending (Slack certainly did not act: retry), failed
// (Slack refused it for good) or unknown. A process that finds an op still in-flight knows
// its sender died between the two records and Slack may or may not have the message:
//
//   - an edit (chat.update) is idempotent, so it is simply sent again;
//   - a post, an ephemeral message or a file share is recorded "unknown" and NOT sent
//     again. The same holds for a call that was written to the wire in full and then got no
//     usable answer (timeout, connection reset, Slack's internal_error).
//
// So each message reaches the channel at most once, and one that may not have is never
// deleted or hidden: flush lists it as failed with the reason, exits 1, and an admin who has
// checked the channel can send it again with `flush --retry-failed` (their decision to risk
// a duplicate) or drop it with `flush --discard`. We chose at-most-once over at-least-once
// because a reply posted twice in a channel is visible and confusing to everyone in it,
// while an unknown outcome is rare (it needs a crash or timeout inside a sub-second call),
// is reported, and is recoverable. Calls that cannot have been acted on — not fully written
// (connection refused, DNS, TLS), rate limited (Retry-After honoured), or answered with an
// HTTP 5xx or service_unavailable — are retried with exponential backoff and jitter inside
// a time budget, and what is still undelivered waits in the outbox for the next delivery.
//
// When a message this one depends on ended failed or unknown, it degrades instead of
// waiting forever: an edit becomes a new post, a thread reply goes to the channel, and the
// op's note says so. A failed message does not hold up the job's later ones.
//
// Known gap: an HTTP 5xx status from Slack is taken to mean Slack did not act (SPEC asks us
// to retry 5xx). If Slack ever stored a message and still answered 5xx, the retry would post
// it twice. Slack documents no such case; it does document it for the ok:false codes
// internal_error and fatal_error, which we therefore treat as unknown.
//
// # Limits
//
// A message waiting longer than Options.MaxAge (72h by default, counted from when it was
// queued or last requeued) is marked expired: flush reports it and keeps it. Attempts are
// counted and shown but are not a limit, since how often flush runs is the admin's choice
// and says nothing about how long a reply has waited. A job's directory is removed once
// cleanup closed it (Job.Close) and every message in it is done; a job whose cleanup never
// came is swept after a month without activity, when nothing in it is waiting.
//
// # Rate budget
//
// Slack's limits are per app and workspace, and a busy runner has many executor processes
// posting at once. RateBudget (ratebudget.go) wraps the Poster in one token bucket per
// Slack tier shared by every process on the host, so final replies get the budget before
// progress edits do and a 429 pauses the whole host; it sits under the outbox, so a message
// that cannot get a slot in time is postponed like any other retryable failure.
//
// # Mattermost
//
// Mattermost (mattermost.go) is a second Poster, on Mattermost's REST API v4 with net/http,
// classified by the same question. Every message records its backend (backend.go); the
// outbox hands it to that backend's Poster (Outbox.Use), and one whose backend has no
// Poster in this process waits. Mattermost messages are written in queue format 2 so that
// a binary that knows only Slack leaves them alone; Slack messages stay in format 1. The
// rate budget is Slack's only: Mattermost's 429 carries X-RateLimit-Reset, which the retry
// loop waits out.
//
// The bot token never reaches an outbox file, and error texts are scrubbed of it (and of
// anything shaped like a Slack token) before anyone sees them.
package delivery
