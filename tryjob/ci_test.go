package tryjob

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// chatVars are the pipeline variables of the tests' chat pipeline.
func chatVars() map[string]string {
	return Chat{Input: "v1.2.3", Channel: "C1", UserID: "U1", User: "alice", Project: "ops/infra", Ref: "main"}.PipelineVars()
}

// describe prints what File.Job makes of every top-level key (and a missing one), with
// and without --play.
func describe(f *File) string {
	var b strings.Builder
	keys := append(slices.Sorted(maps.Keys(f.top)), "missing")
	for _, k := range keys {
		fmt.Fprintf(&b, "== %s\n", k)
		for _, play := range []bool{false, true} {
			j, err := f.Job(k, Options{Play: play, Vars: chatVars(), Ref: "main"})
			var r *RefusedError
			if play && !(errors.As(err, &r) || err == nil) {
				continue
			}
			if play {
				if err == nil {
					// Only worth showing when --play changed the outcome.
					if _, e := f.Job(k, Options{Vars: chatVars(), Ref: "main"}); e == nil {
						continue
					}
				} else {
					continue
				}
				b.WriteString("-- with --play\n")
			}
			if err != nil {
				fmt.Fprintf(&b, "error (%T): %s\n", err, err)
				continue
			}
			fmt.Fprintf(&b, "stage: %q\n", j.Stage)
			fmt.Fprintf(&b, "before_script: %q\n", j.BeforeScript)
			fmt.Fprintf(&b, "script: %q\n", j.Script)
			fmt.Fprintf(&b, "after_script: %q\n", j.AfterScript)
			for _, v := range j.Variables {
				fmt.Fprintf(&b, "variable: %s=%q", v.Key, v.Value)
				if v.Raw {
					b.WriteString(" (raw)")
				}
				b.WriteByte('\n')
			}
			for _, w := range j.Warnings {
				fmt.Fprintf(&b, "warning: %s\n", w)
			}
		}
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.input")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse(filepath.Base(in), data)
			if err != nil {
				t.Fatal(err)
			}
			got := describe(f)
			golden := strings.TrimSuffix(in, ".input") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("%s differs from %s (go test ./tryjob -run TestGolden -update):\ngot:\n%s", in, golden, got)
			}
		})
	}
}
