package tryjob

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Chat is who asks for the job, and from where: what GitLab's chat command puts in the
// pipeline.
type Chat struct {
	// Input is CHAT_INPUT: the words after the job name.
	Input string
	// Channel is CHAT_CHANNEL, UserID CHAT_USER_ID, User GITLAB_USER_LOGIN.
	Channel, UserID, User string
	// Project is the project's full path ("ops/infra").
	Project string
	// ServerURL is CI_SERVER_URL.
	ServerURL string
	// Ref is the branch the pipeline runs for.
	Ref string
	// JobID is the job's (and pipeline's) id; Token the job token.
	JobID int64
	Token string
	// Created is when the pipeline was created.
	Created time.Time
}

// PipelineVars are the predefined variables rules see in a chat pipeline.
func (c Chat) PipelineVars() map[string]string {
	return map[string]string{
		"CI":                     "true",
		"GITLAB_CI":              "true",
		"CI_PIPELINE_SOURCE":     "chat",
		"CI_COMMIT_BRANCH":       c.Ref,
		"CI_COMMIT_REF_NAME":     c.Ref,
		"CI_DEFAULT_BRANCH":      c.Ref,
		"CI_PROJECT_PATH":        c.Project,
		"CHAT_INPUT":             c.Input,
		"CHAT_CHANNEL":           c.Channel,
		"CHAT_USER_ID":           c.UserID,
		"GITLAB_USER_LOGIN":      c.User,
		"CI_SERVER_URL":          c.ServerURL,
		"CI_PIPELINE_CREATED_AT": c.Created.UTC().Format(time.RFC3339),
	}
}

type respVar struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Public bool   `json:"public"`
	Masked bool   `json:"masked"`
	File   bool   `json:"file"`
	Raw    bool   `json:"raw"`
}

type respStep struct {
	Name         string   `json:"name"`
	Script       []string `json:"script"`
	Timeout      int      `json:"timeout"`
	When         string   `json:"when"`
	AllowFailure bool     `json:"allow_failure"`
}

// jobTimeout is the job timeout the response gives: GitLab's default project timeout.
const jobTimeout = 3600

// Response builds the JOB_RESPONSE_FILE JSON GitLab would hand the runner for job
// started from chat, modelled on examples/job-response.json. before_script is merged
// into the script step, as GitLab does.
func Response(j *Job, c Chat) ([]byte, error) {
	id := strconv.FormatInt(c.JobID, 10)
	projectName := c.Project
	for i := len(c.Project) - 1; i >= 0; i-- {
		if c.Project[i] == '/' {
			projectName = c.Project[i+1:]
			break
		}
	}
	jobURL := fmt.Sprintf("%s/%s/-/jobs/%s", c.ServerURL, c.Project, id)
	pub := func(k, v string) respVar { return respVar{Key: k, Value: v, Public: true} }
	vars := []respVar{
		pub("CI", "true"),
		pub("GITLAB_CI", "true"),
		pub("CI_JOB_ID", id),
		pub("CI_JOB_NAME", j.Name),
		pub("CI_JOB_STAGE", j.Stage),
		{Key: "CI_JOB_TOKEN", Value: c.Token, Masked: true},
		pub("CI_JOB_URL", jobURL),
		pub("CI_JOB_STARTED_AT", c.Created.UTC().Format(time.RFC3339)),
		pub("CI_PIPELINE_ID", id),
		pub("CI_PIPELINE_SOURCE", "chat"),
		pub("CI_PIPELINE_CREATED_AT", c.Created.UTC().Format(time.RFC3339)),
		pub("CI_PROJECT_ID", "1"),
		pub("CI_PROJECT_PATH", c.Project),
		pub("CI_PROJECT_NAME", projectName),
		pub("CI_COMMIT_BRANCH", c.Ref),
		pub("CI_COMMIT_REF_NAME", c.Ref),
		pub("CI_DEFAULT_BRANCH", c.Ref),
		pub("CI_SERVER_URL", c.ServerURL),
		pub("CI_API_V4_URL", c.ServerURL+"/api/v4"),
		pub("GITLAB_USER_LOGIN", c.User),
		pub("GIT_STRATEGY", "none"),
	}
	for _, v := range j.Variables {
		vars = append(vars, respVar{Key: v.Key, Value: v.Value, Public: !v.Masked, Masked: v.Masked, Raw: v.Raw})
	}
	// Pipeline variables come last: they beat the file's, as in GitLab.
	vars = append(vars,
		pub("CHAT_INPUT", c.Input),
		pub("CHAT_CHANNEL", c.Channel),
		pub("CHAT_USER_ID", c.UserID),
	)
	script := append(append([]string{}, j.BeforeScript...), j.Script...)
	steps := []respStep{{Name: "script", Script: script, Timeout: jobTimeout, When: "on_success"}}
	if len(j.AfterScript) > 0 {
		steps = append(steps, respStep{Name: "after_script", Script: j.AfterScript, Timeout: jobTimeout, When: "always", AllowFailure: true})
	}
	resp := map[string]any{
		"id":              c.JobID,
		"token":           c.Token,
		"allow_git_fetch": false,
		"job_info": map[string]any{
			"id": c.JobID, "name": j.Name, "stage": j.Stage, "project_id": 1,
			"project_name": projectName, "project_full_path": c.Project,
		},
		"git_info": map[string]any{
			"repo_url":   c.ServerURL + "/" + c.Project + ".git",
			"ref":        c.Ref,
			"sha":        "0000000000000000000000000000000000000000",
			"before_sha": "0000000000000000000000000000000000000000",
			"ref_type":   "branch",
			"depth":      20,
		},
		"runner_info":  map[string]any{"timeout": jobTimeout},
		"variables":    vars,
		"steps":        steps,
		"image":        map[string]any{"name": ""},
		"services":     []any{},
		"artifacts":    []any{},
		"cache":        []any{},
		"credentials":  []any{},
		"dependencies": []any{},
		"features": map[string]any{
			"trace_sections":      true,
			"token_mask_prefixes": []string{"glpat-", "glcbt-", "glrt-"},
			"failure_reasons":     []string{"script_failure", "runner_system_failure", "job_execution_timeout"},
		},
	}
	return json.MarshalIndent(resp, "", "  ")
}
