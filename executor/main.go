// Command chatops-executor is a gitlab-runner custom executor for ChatOps jobs.
//
// The runner calls it once per protocol stage (config, prepare, run, cleanup), each time as a
// new process; admins call check, version and the other tools. This file is the one place
// where errors become exit codes: protocol stages answer with the runner's
// $BUILD_FAILURE_EXIT_CODE or $SYSTEM_FAILURE_EXIT_CODE, everything else with 1 for a
// failure and 2 for a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"gitlab.com/gitlab-org/gitlab-runner/executors/custom/api"

	"github.com/chatops-executor/chatops-executor/failure"
)

// version, commit and date are set at build time (make build, make dist) with
// -ldflags "-X main.version=… -X main.commit=… -X main.date=…"; otherwise the version and
// commit come from the module's build info.
var version, commit, date = "", "", ""

const name = "chatops-executor"

// Exit codes for the commands that are not protocol stages.
const (
	exitFailure = 1
	exitUsage   = 2
)

// The runner's documented codes, used only when a protocol stage runs without the
// variables that carry them (someone ran it by hand). The runner always sets them.
const (
	fallbackBuildFailure  = 1
	fallbackSystemFailure = 2
)

// errUsage marks command-line mistakes.
var errUsage = errors.New("usage")

// usageError is a command-line mistake with the message to show.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Is(target error) bool {
	return target == errUsage
}

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// exitError carries a specific exit code for a command whose result is its status
// (`check`, `policy explain`), with nothing more to print.
type exitError struct{ code int }

func (e *exitError) Error() string { return "exit " + strconv.Itoa(e.code) }

func main() {
	// A runner that stops reading our output must not kill us with SIGPIPE: the exit code
	// would be "unknown". Catching it (rather than ignoring it, which children would inherit)
	// turns it into an EPIPE error on write.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// app is what every command gets: the streams, the environment and the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	configFlag     string
	version        string
}

type command struct {
	name     string
	protocol bool // a custom executor stage: exit codes come from the runner
	summary  string
	run      func(ctx context.Context, a *app, args []string) error
}

func commands() []command {
	return []command{
		{"config", true, "print the runner's config_exec JSON", runConfig},
		{"prepare", true, "identify the job, apply the policy, create its state", runPrepare},
		{"run", true, "run SCRIPT_PATH STAGE_NAME for the runner", runRun},
		{"cleanup", true, "derive the job's status, reply, remove its state", runCleanup},
		{"check", false, "validate the config file and what it points at", runCheck},
		{"flush", false, "deliver replies waiting in the outbox", runFlush},
		{"policy", false, "dry-run a policy decision: policy explain --job NAME …", runPolicy},
		{"audit", false, "check the audit log's hash chain: audit verify [FILE...]", runAudit},
		{"try", false, "run a chat job from .gitlab-ci.yml locally", runTry},
		{"version", false, "print the version", runVersion},
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, version: buildVersion()}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.configFlag, "config", "", "config file")
	showVersion := fs.Bool("version", false, "print the version")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return 0
		}
		return a.fail(nil, usagef("%v", err))
	}
	rest := fs.Args()
	if *showVersion {
		return a.fail(nil, runVersion(context.Background(), a, rest))
	}
	if len(rest) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	if rest[0] == "help" {
		if len(rest) == 1 {
			printUsage(stdout)
			return 0
		}
		// help COMMAND is COMMAND --help.
		rest = []string{rest[1], "--help"}
	}
	for _, c := range commands() {
		if c.name != rest[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		if c.name == "run" {
			// run handles SIGTERM itself: it must stop the script's process group, not just
			// give up waiting for it.
			stop()
			ctx = context.Background()
		}
		return a.fail(&c, c.run(ctx, a, rest[1:]))
	}
	return a.fail(nil, usagef("unknown command %q", rest[0]))
}

// fail prints err in the one style and returns the exit code for it.
func (a *app) fail(c *command, err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, errHelpShown) {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, errUsage) {
		fmt.Fprintf(a.stderr, "%s: %v\n", name, err)
		fmt.Fprintf(a.stderr, "%s: run '%s help' for usage\n", name, name)
		return exitUsage
	}
	kind, scriptCode, hint := failure.Classify(err)
	// A script's own failure is reported by the runner ("Job failed: exit code N");
	// repeating it would only add noise to the job log.
	if !(kind == failure.Build && scriptCode != 0) {
		fmt.Fprintf(a.stderr, "%s: %v\n", name, err)
		if hint != "" {
			fmt.Fprintf(a.stderr, "%s: hint: %s\n", name, hint)
		}
	}
	if c == nil || !c.protocol {
		return exitFailure
	}
	if kind == failure.Build {
		return a.exitCode(api.BuildFailureExitCodeVariable, fallbackBuildFailure)
	}
	return a.exitCode(api.SystemFailureExitCodeVariable, fallbackSystemFailure)
}

func (a *app) exitCode(variable string, fallback int) int {
	if n, err := strconv.Atoi(strings.TrimSpace(a.getenv(variable))); err == nil && n > 0 && n < 256 {
		return n
	}
	return fallback
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// buildCommit returns the commit and date the binary was built from: the ldflags' when
// set, else the VCS stamp go build records, else "unknown".
func buildCommit() (string, string) {
	c, d := commit, date
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.time" && d == "":
				d = s.Value
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	if d == "" {
		d = "unknown"
	}
	return c, d
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s [--config FILE] COMMAND [ARGS]\n       %s --version\n\ncommands:\n", name, name)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\n--config defaults to $CHATOPS_EXECUTOR_CONFIG, then /etc/chatops-executor/config.toml;\n")
	fmt.Fprintf(w, "it may also follow the command. '%s COMMAND --help' (or '%s help COMMAND')\n", name, name)
	fmt.Fprintf(w, "prints a command's flags.\n")
}
