package layout

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/chatops-executor/chatops-executor"

// forbidden maps a package (relative to the module) to the module packages it must never
// depend on, directly or through another package.
var forbidden = map[string][]string{
	"failure":    {"stages", "executor", "emulator", "tryjob", "policy", "delivery", "replies"},
	"atomicfile": {"stages", "executor", "emulator", "tryjob", "policy", "delivery", "replies"},
	"job":        {"stages", "executor", "emulator", "tryjob", "policy", "delivery", "replies"},
	"replydir":   {"stages", "executor", "emulator", "tryjob", "policy", "delivery", "replies", "config"},
	"jobuser":    {"stages", "executor", "emulator", "tryjob", "policy", "delivery", "replies", "config"},
	"config":     {"stages", "executor", "emulator", "tryjob", "policy", "delivery"},
	"replies":    {"stages", "executor", "emulator", "tryjob", "policy", "delivery"},
	"gitlab":     {"stages", "executor", "emulator", "tryjob", "policy", "delivery"},
	"audit":      {"stages", "executor", "emulator", "tryjob", "policy", "delivery"},
	"metrics":    {"stages", "executor", "emulator", "tryjob", "policy", "delivery", "replies", "audit"},
	"policy":     {"stages", "executor", "emulator", "tryjob", "delivery"},
	"delivery":   {"stages", "executor", "emulator", "tryjob", "policy"},
	// The fake Mattermost is a server, not a client: it knows nothing of delivery.
	"delivery/mattermostrecorder": {"stages", "executor", "emulator", "tryjob", "policy", "delivery", "replies", "config"},
	"bashscript":                  {"stages", "executor", "emulator", "tryjob", "policy", "delivery"},
	"preflight":                   {"stages", "executor", "emulator", "tryjob", "policy", "delivery"},
	"control":                     {"stages", "executor", "emulator", "tryjob", "policy", "delivery", "config", "replies", "audit", "gitlab", "job"},
	"stages":                      {"executor", "emulator", "tryjob"},
	"emulator":                    {"executor", "stages", "tryjob"},
	"tryjob":                      {"executor", "stages"},
}

type pkg struct {
	ImportPath string
	Deps       []string
}

// listPackages runs `go list -deps` semantics for every non-test package of the module:
// Deps is the transitive closure of what the package's non-test files import.
func listPackages(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Deps", module+"/...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		var own []string
		for _, d := range p.Deps {
			if r, ok := strings.CutPrefix(d, module+"/"); ok {
				own = append(own, r)
			}
		}
		deps[rel] = own
	}
	return deps
}

// rulesFor returns the rules of p: its own, or for a sub-package its parent's.
func rulesFor(p string) ([]string, bool) {
	if r, ok := forbidden[p]; ok {
		return r, true
	}
	if i := strings.Index(p, "/"); i > 0 {
		r, ok := forbidden[p[:i]]
		return r, ok
	}
	return nil, false
}

func TestDependencyRules(t *testing.T) {
	deps := listPackages(t)
	for p := range forbidden {
		if _, ok := deps[p]; !ok {
			t.Errorf("package %s named in the rules does not exist; update layout's rules", p)
		}
	}
	for p, have := range deps {
		banned, _ := rulesFor(p)
		for _, d := range have {
			for _, b := range banned {
				if d == b || strings.HasPrefix(d, b+"/") {
					t.Errorf("%s depends on %s (see the README's Architecture section and package layout)", p, d)
				}
			}
		}
	}
}

// isTestDouble reports whether a package is a test double: its last path element ends in
// "test" (slacktest, gitlabtest).
func isTestDouble(p string) bool {
	return strings.HasSuffix(p[strings.LastIndex(p, "/")+1:], "test")
}

func TestNoProductionCodeUsesTestDoubles(t *testing.T) {
	deps := listPackages(t)
	for p, have := range deps {
		if isTestDouble(p) {
			continue
		}
		for _, d := range have {
			if isTestDouble(d) {
				t.Errorf("non-test code of %q depends on the test double %s", p, d)
			}
		}
	}
}

func TestEveryPackageIsPlaced(t *testing.T) {
	// A new package should be placed in the rules on purpose, not slip past them.
	known := []string{"", "executor", "layout", "bench", "e2e", "packaging"}
	for p := range listPackages(t) {
		if _, ok := rulesFor(p); ok || slices.Contains(known, p) || isTestDouble(p) || strings.HasPrefix(p, "e2e/") {
			continue
		}
		t.Errorf("package %s is in no dependency rule: add it to forbidden in layout_test.go and to the README's Architecture section", p)
	}
}
