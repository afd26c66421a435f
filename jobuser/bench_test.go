package jobuser

import "testing"

// BenchmarkProcesses is one scan of /proc for a uid's processes, which every stage end,
// cancel and cleanup does at least once.
func BenchmarkProcesses(b *testing.B) {
	for b.Loop() {
		if _, err := Processes(1 << 30); err != nil {
			b.Fatal(err)
		}
	}
}
