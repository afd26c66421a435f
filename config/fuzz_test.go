package config

import (
	"os"
	"testing"
	"time"
)

// Parse must never panic, whatever the file: a config is edited by hand, and the walker
// and the re-encoding of what is left see every shape TOML allows.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../config.example.toml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(minimal + "[[policy.rules]]\nname = 1\n[slack]\ninline_limit = \"x\"\nthread = [1, \"a\"]\n"))
	f.Add([]byte("executor = 1\n[policy]\nrule = [{name = \"a\", jobs = [[\"x\"]]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			cfg, err := ParsePartial("f.toml", data)
			if err == nil && cfg == nil {
				t.Error("no config and no error")
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Parse of %d bytes has not returned after 10s: %q", len(data), data)
		}
	})
}
