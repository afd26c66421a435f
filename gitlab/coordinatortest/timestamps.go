package coordinatortest

import (
	"regexp"
	"strings"
)

// timestampHeader is what gitlab-runner 19.4's timestamper (common/buildlogger/internal/
// timestamper, on with FF_TIMESTAMPS) puts before every line of the trace:
// "<RFC 3339 UTC time, microseconds> <stream, two hex digits><O|E><' ' or '+'>". A '+' line
// continues the one before: the runner broke it (a long line, or a '\r') with a newline
// of its own.
var timestampHeader = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z [0-9a-f]{2}[OE]([ +])`)

// StripTimestamps turns a timestamped trace back into the job log as written. A trace
// without timestamps (FF_TIMESTAMPS=false) comes back unchanged. Continuation lines are
// joined to the line before even when another stream wrote in between, so output of two
// streams interleaved within one line may come out in a different order.
func StripTimestamps(trace []byte) string {
	lines := strings.SplitAfter(string(trace), "\n")
	out := make([]byte, 0, len(trace))
	for _, line := range lines {
		m := timestampHeader.FindStringSubmatch(line)
		if m == nil {
			out = append(out, line...)
			continue
		}
		if m[1] == "+" && len(out) > 0 && out[len(out)-1] == '\n' {
			out = out[:len(out)-1]
		}
		out = append(out, line[len(m[0]):]...)
	}
	return string(out)
}
