package config

import (
	"os"
	"path/filepath"
)

// checkFleet looks at what the fleet keys point at: a syslog socket that is not there would
// stop every allowed job, and a textfile directory that cannot be written leaves the admin's
// alerts blind.
func (c *Config) checkFleet() []Problem {
	var ps []Problem
	if p := c.Policy.AuditSyslog; p != "" {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			ps = append(ps, Problem{Key: "policy.audit_syslog", Msg: "no syslog socket: " + err.Error() + " (allowed jobs would not run: their decision cannot be copied)"})
		case fi.Mode()&os.ModeSocket == 0:
			ps = append(ps, Problem{Key: "policy.audit_syslog", Msg: p + " is not a socket"})
		}
	}
	if p := c.Metrics.Textfile; p != "" {
		if err := checkDir(filepath.Dir(p), false); err != nil {
			ps = append(ps, Problem{Key: "metrics.textfile", Msg: err.Error()})
		}
	}
	return ps
}
