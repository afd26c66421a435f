//go:build !linux || !splice

package stages

import (
	"io"
	"os"
)

// startCopy starts copying the job's output from r to the runner's out, with a copy for
// sink: the plain copy, for every output. (Built with the splice tag on Linux, output to a
// pipe gets the tee engine instead; see tee_linux.go.)
func startCopy(out io.Writer, r *os.File, sink Sink) *outputCopy {
	return startPlainCopy(out, r, sink)
}

// pipeEngine is the engine output to a pipe gets (for tests).
const pipeEngine = "plain"
