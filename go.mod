module github.com/chatops-executor/chatops-executor

go 1.26.5

require (
	github.com/BurntSushi/toml v1.6.0
	gitlab.com/gitlab-org/gitlab-runner v1.11.1-0.20260903214710-fc1f1862bd91
	golang.org/x/sys v0.50.0
)
