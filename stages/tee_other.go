//go:build !linux || nosplice

package stages

import (
	"io"
	"os"
)

// startCopy starts copying the job's output from r to the runner's out, with a copy for
// sink. Without tee(2) and splice(2) (or built with the nosplice tag, which the benchmark
// uses to compare the engines), every output gets the plain copy.
func startCopy(out io.Writer, r *os.File, sink Sink) *outputCopy {
	return startPlainCopy(out, r, sink)
}
