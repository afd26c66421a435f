package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/chatops-executor/chatops-executor/audit"
	"github.com/chatops-executor/chatops-executor/policy"
)

// runAudit implements `audit verify`, the admin's check that nobody edited the decisions
// recorded on this host (see package audit for the chain).
func runAudit(_ context.Context, a *app, args []string) error {
	fs := a.newFlags("audit")
	switch {
	case len(args) == 0:
		return usagef("audit needs a subcommand: audit verify [FILE...] (run '%s audit --help')", name)
	case args[0] == "verify":
		args = args[1:]
	case !strings.HasPrefix(args[0], "-"):
		return usagef("unknown audit subcommand %q (the one there is: verify)", args[0])
	}
	if err := a.parseFlags(fs, args); err != nil {
		return err
	}
	files := fs.Args()
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
