// Package replies is the pure, streaming core of the reply pipeline: it
// finds the job's chat_reply section in raw output, cleans output into chat
// text, and masks secrets. It does no I/O of its own — callers pass
// io.Writers and io.Readers (the run stage's tee, the state directory's
// files, the formatter) — so every part is testable byte for byte.
//
// # Design
//
// The run stage tees the job's raw stdout+stderr into a Capture, which
// writes the whole stage output to one sink and the chat_reply section's
// content to another. GitLab accepts a section only when the whole job log
// holds exactly one start and one end marker, in that order
// (Gitlab::Ci::Trace::SectionParser#sanitize_markers), while each stage
// runs in a separate executor process; so Capture exposes Counts, the caller
// persists them per stage, and Decide makes the choice at cleanup. Markers
// follow GitLab's build_trace_section_regex exactly and, as in GitLab, may
// appear anywhere in a line.
//
// At cleanup the chosen bytes go through a Cleaner (the chat_reply section's
// first line, as GitLab drops it; markers, which break lines as in GitLab's
// log view; timestamps, ANSI escapes, `\r` redraws, the runner's echoed
// commands, invalid UTF-8, secrets, Slack escaping), and HeadTail/LastLines
// cut previews from the cleaned, masked text. SecretsOf says what to mask
// for a job: the same for every text that leaves the host. A Redactor masks secrets as bytes stream past; put one in
// front of the capture files so secrets never reach the disk, and the
// Cleaner runs another over the cleaned text.
//
// Nothing here assumes a marker, escape sequence or secret arrives in one
// Write: each stage is a byte-level state machine, and the output is the
// same for every chunking of the same input (the tests and fuzz targets
// check this).
//
// # Memory bounds
//
//   - Capture: at most MaxMarkerLen (4 KiB) bytes held back — only a
//     candidate that could still become a marker — whatever the line length.
//   - Redactor: the longest partial match in progress, so at most the
//     longest secret value or prefix (plus the URL parameter keys), and a
//     32 KiB output buffer.
//   - Cleaner: two lines of CleanOptions.MaxLineBytes (16 KiB by default;
//     the current redraw and the one before it), MaxMarkerLen, a 32-byte
//     timestamp, 64 bytes of a line's start (the echo check) and its
//     Redactor. A longer line is passed on in pieces and broken behind the
//     Redactor, so a secret across the break is still masked whole.
//   - HeadTail: (head+tail) lines of at most maxLineBytes each.
package replies
