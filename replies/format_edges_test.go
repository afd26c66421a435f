package replies

import (
	"strings"
	"testing"
	"time"
)

// Issue 9: five or more backticks closed the code fence early (the escaping turned them
// into three again).
func TestCodeBlockNoFenceInsideForAnyRun(t *testing.T) {
	for n := 3; n <= 12; n++ {
		run := strings.Repeat("`", n)
		for _, in := range []string{run, "a" + run + "b", run + "\n" + run, "x" + run} {
			block := codeBlock(in)
			body := strings.TrimSuffix(strings.TrimPrefix(block, "```\n"), "\n```")
			if strings.Contains(body, "```") {
				t.Errorf("%d backticks: fence inside %q", n, body)
			}
			if got := strings.ReplaceAll(body, "\u200b", ""); got != in {
				t.Errorf("%d backticks: text changed to %q", n, got)
			}
		}
	}
}

// Issue 9: "after <1s" put an unescaped '<' right before the job link.
func TestDurationsAreEscaped(t *testing.T) {
	for _, text := range []string{
		ProgressText(testJob, 10*time.Millisecond, ""),
		StatusText(testJob, Status{State: "succeeded", Elapsed: 10 * time.Millisecond}),
	} {
		if !strings.Contains(text, "&lt;1s") {
			t.Errorf("no escaped duration in %q", text)
		}
		if strings.Count(text, "<") != strings.Count(text, ">") || strings.Contains(text, "<1s") {
			t.Errorf("unbalanced angle brackets in %q", text)
		}
	}
}

// Every text made from the job masks its secrets before it is cut: the start message's
// input, the job name and project, the reason of a failure or a denial. (DeniedText quotes
// nothing the job controls at all; format_test.go checks its exact text.)
func TestJobTextsMaskSecrets(t *testing.T) {
	j := testJob
	j.Secrets = Secrets{Values: []string{"hunter2-value"}}
	j.Name = "deploy hunter2-value"
	j.Input = strings.Repeat("x", 195) + " hunter2-value" // the cut at 200 falls inside it
	texts := []string{
		StartText(j),
		StatusText(j, Status{State: "failed", Reason: "bad gldt-deploytoken123"}),
		StatusText(j, Status{State: "denied", Reason: "input hunter2-value"}),
		ProgressText(j, time.Second, ""),
	}
	for _, text := range texts {
		for _, bad := range []string{"hunter", "deploytoken", "runnertoken"} {
			if strings.Contains(text, bad) {
				t.Errorf("%q leaked in %q", bad, text)
			}
		}
	}
	if !strings.Contains(texts[0], "*deploy [MASKED]*") {
		t.Errorf("name not masked as expected: %q", texts[0])
	}
}
