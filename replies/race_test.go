//go:build race

package replies

// raceEnabled shrinks the huge-line tests: the race detector slows the
// byte-level state machines ~20×, and the memory bound they check does not
// depend on the size.
const raceEnabled = true
