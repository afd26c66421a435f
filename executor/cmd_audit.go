package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/chatops-executor/chatops-executor/audit"
	"github.com/chatops-executor/chatops-executor/policy"
)

const auditUsage = `usage: chatops-executor [--config FILE] audit verify [FILE...]

Checks the hash chain of the audit log and reports the first line that was edited,
removed or moved. Without FILE it checks the configured log (policy.audit_log). After
log rotation, give the files oldest first, the live log last, for example:

    chatops-executor audit verify audit.jsonl.3.gz audit.jsonl.2.gz audit.jsonl.1 audit.jsonl

Each file must continue the chain of the one before it (.gz files are read as they are).
A sequence that does not start at record 1 is checked from its first record on, and the
output says so. Exit status: 0 the chain holds, 1 it is broken or unreadable, 2 usage.
`

// runAudit implements `audit verify`, the admin's check that nobody edited the decisions
// recorded on this host (see package audit for the chain).
func runAudit(_ context.Context, a *app, args []string) error {
	if len(args) == 0 {
		return usagef("audit needs a subcommand: audit verify [FILE...]")
	}
	switch args[0] {
	case "verify":
	case "-h", "-help", "--help", "help":
		fmt.Fprint(a.stdout, auditUsage)
		return nil
	default:
		return usagef("unknown audit subcommand %q (the one there is: verify)", args[0])
	}
	files := args[1:]
	for _, f := range files {
		if f == "-h" || f == "--help" || f == "-help" {
			fmt.Fprint(a.stdout, auditUsage)
			return nil
		}
		if strings.HasPrefix(f, "-") {
			return usagef("audit verify takes file names, got %q", f)
		}
	}
	if len(files) == 0 {
		cfg, err := a.loadConfig()
		if err != nil {
			return err
		}
		files = []string{policy.AuditPath(cfg)}
	}
	s, err := audit.Verify(files)
	var b *audit.Break
	switch {
	case errors.As(err, &b):
		fmt.Fprintf(a.stderr, "%s: audit log tampered with: %s\n", name, b)
		return &exitError{code: exitFailure}
	case err != nil:
		fmt.Fprintf(a.stderr, "%s: %v\n", name, err)
		return &exitError{code: exitFailure}
	}
	from := "from record 1"
	if !s.Anchored {
		from = fmt.Sprintf("from record %d (older files not given: the chain is checked from there on)", s.FirstSeq)
	}
	if s.LastSeq == 0 {
		from = "no chained records"
	}
	fmt.Fprintf(a.stdout, "%s: audit chain holds: %d records in %d file(s), %s to record %d", name, s.Records, len(files), from, s.LastSeq)
	if len(s.Hosts) > 0 {
		fmt.Fprintf(a.stdout, ", host %s", strings.Join(s.Hosts, ", "))
	}
	fmt.Fprintln(a.stdout)
	if s.Unchained > 0 {
		fmt.Fprintf(a.stdout, "%s: note: the first %d records were written before the chain existed and are not protected\n", name, s.Unchained)
	}
	if !s.Tail {
		fmt.Fprintf(a.stdout, "%s: note: no chain file next to %s: lines cut from its end would not show\n", name, files[len(files)-1])
	}
	return nil
}
