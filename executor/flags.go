package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelpShown is returned by a command that printed its help because it was asked to
// (-h, --help): main exits 0 for it.
var errHelpShown = errors.New("help shown")

// newFlags starts the flag set of a command. Every command accepts --config after its name
// as well as before it (`chatops-executor check --config FILE` and `chatops-executor
// --config FILE check` mean the same), and -h/--help.
func (a *app) newFlags(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.configFlag, "config", a.configFlag, "read the configuration from `FILE` (default $CHATOPS_EXECUTOR_CONFIG, then /etc/chatops-executor/config.toml)")
	return fs
}

// parseFlags parses a command's arguments. Asked for help, it prints the command's help to
// stdout and returns errHelpShown; a mistake is a usage error naming the command.
func (a *app) parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printCommandHelp(a.stdout, fs)
		return errHelpShown
	}
	if err != nil {
		return usagef("%s: %v (run '%s %s --help')", fs.Name(), err, name, fs.Name())
	}
	return nil
}

// commandHelp is what a command's --help says besides its flags.
type commandHelp struct {
	synopsis string // after "chatops-executor CMD [flags]"
	about    string // a paragraph, wrapped by hand
}

var helps = map[string]commandHelp{
	"config": {"", `The runner's config_exec: prints the ConfigExecOutput JSON (per-job builds
dir, cache dir, driver) on stdout. Called by gitlab-runner, not by people.`},
	"prepare": {"", `The runner's prepare_exec: identifies the job from JOB_RESPONSE_FILE, applies
the policy and creates the job's private state. Called by gitlab-runner.`},
	"run": {"SCRIPT_PATH STAGE_NAME", `The runner's run_exec: runs the runner-generated script with the configured
shell, streaming its output untouched. Called by gitlab-runner.`},
	"cleanup": {"", `The runner's cleanup_exec: kills what the job left running, derives its status,
posts the reply and removes the job's state. Called by gitlab-runner.`},
	"check": {"", `Validates the config file and what it points at (token files, directories, users,
the shell, the policy) and prints every problem with its key, line and fix.
With --online it also asks Slack and GitLab whether the tokens work and can do
what the config needs. Exit status: 0 usable (warnings allowed), 1 not.`},
	"flush": {"", `Delivers the chat messages waiting in the outbox (Slack was down, slow or rate
limiting when their job ended) and says per job what was delivered, what still
waits and why. Run it as the runner's user (the package's
chatops-executor-flush.timer does, every minute). Exit status: 0 when nothing is
left waiting or failed, 1 otherwise.`},
	"policy explain": {"--job NAME [flags]", `Prints which [[policy.rule]] decides a chat job with these details, and why the
rules before it did not, without running anything. The user counts as verified.
Group and access-level conditions are asked of GitLab when gitlab.token_file is
set; otherwise they are treated as not holding.
Exit status: 0 allow, 1 deny, 2 usage or config error.`},
	"try": {"JOB [INPUT…]", `Runs one chat job from a .gitlab-ci.yml through this executor's own stages under
an emulated gitlab-runner, and shows the job log and what the channel would show.
Without --config: embedded defaults, every request allowed, no GitLab or Slack
needed. With --config: that file's policy decides as ` + "`policy explain`" + ` does (the
given --user counts as verified), with the directories moved into a temporary one.
Nothing is posted to Slack unless --post is given (then to --channel, with the
config's Slack settings). --var and --masked add CI/CD variables, as a project's
settings would; --masked ones are masked as GitLab masks them. When the policy needs
approval, the preview shows the request; --approve-as U… approves it as that Slack user.`},
	"audit": {"verify [flags] [FILE...]", `Checks the hash chain of the audit log and reports the first line that was edited,
removed or moved. Without FILE it checks the configured log (policy.audit_log). After
log rotation, give the files oldest first, the live log last, for example:

    chatops-executor audit verify audit.jsonl.3.gz audit.jsonl.2.gz audit.jsonl.1 audit.jsonl

Each file must continue the chain of the one before it (.gz files are read as they are).
A sequence that does not start at record 1 is checked from its first record on, and the
output says so. Exit status: 0 the chain holds, 1 it is broken or unreadable, 2 usage.`},
	"version": {"", `Prints the version, the commit and date it was built from, and the Go version.`},
}

// printCommandHelp writes a command's usage, what it does and its flags, one line each.
func printCommandHelp(w io.Writer, fs *flag.FlagSet) {
	h := helps[fs.Name()]
	syn := name + " " + fs.Name() + " [flags]"
	if strings.Contains(h.synopsis, "[flags]") {
		syn = name + " " + fs.Name() + " " + h.synopsis
	} else if h.synopsis != "" {
		syn += " " + h.synopsis
	}
	fmt.Fprintf(w, "usage: %s\n", syn)
	if h.about != "" {
		fmt.Fprintf(w, "\n%s\n", h.about)
	}
	fmt.Fprintf(w, "\nflags:\n")
	var rows [][2]string
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		left := "--" + f.Name
		if arg != "" {
			left += " " + arg
		}
		if d := f.DefValue; d != "" && d != "false" && d != "0" && f.Name != "config" {
			usage += " (default " + d + ")"
		}
		rows = append(rows, [2]string{left, usage})
		width = max(width, len(left))
	})
	rows = append(rows, [2]string{"-h, --help", "print this help"})
	width = max(width, len("-h, --help"))
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r[0], r[1])
	}
}
