package emulator

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// The capture is what the real runner wrote for the example job; re-encoding the example
// must give it back byte for byte (e2e/realrunner checks the capture against the runner).
func TestRunnerJobResponseReproducesCapture(t *testing.T) {
	example, err := os.ReadFile(exampleResponse)
	if err != nil {
		t.Skip("examples/job-response.json is not around")
	}
	got, err := RunnerJobResponse(example)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, runnerJobResponse) {
		t.Errorf("re-encoded example:\n%s\ncapture:\n%s", got, runnerJobResponse)
	}
}

func TestRunnerJobResponseRules(t *testing.T) {
	in := `{"id": 9, "token": "t", "job_info": {"id": 9, "name": "a<b>&c", "extra": 1},
		"variables": [{"key": "K", "value": "v", "masked": true, "unknown": "x"}],
		"steps": [{"name": "script", "script": ["echo 1"]}],
		"unknown_top": {"x": 1}, "image": null}`
	out, err := RunnerJobResponse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if !strings.HasSuffix(s, "}\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("want compact JSON and one trailing newline: %q", s)
	}
	for _, gone := range []string{`"unknown_top"`, `"extra"`, `"unknown"`, `"job_info":{"id"`} {
		if strings.Contains(s, gone) {
			t.Errorf("%s survived: %s", gone, s)
		}
	}
	for _, want := range []string{
		`"job_info":{"name":"a\u003cb\u003e\u0026c","stage":"","pipeline_id":0,`,
		`"variables":[{"key":"K","value":"v","public":false,"file":false,"masked":true,"raw":false}]`,
		`"steps":[{"name":"script","script":["echo 1"],"timeout":0,"when":"","allow_failure":false}]`,
		`"inputs":{}`, `"tracing":null`, `"refspecs":null`, `"image":{"name":"","executor_opts":{"docker":{"platform":"","user":""}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("lacks %s:\n%s", want, s)
		}
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if _, err := RunnerJobResponse([]byte(`{"id": "nine"}`)); err == nil {
		t.Error("a string id was accepted; the runner cannot decode it")
	}
}
