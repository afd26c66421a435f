package audit

import (
	"bytes"
	"log/syslog"
)

// SyslogTag is the program name syslog and journald show for audit records
// (SYSLOG_IDENTIFIER in the journal).
const SyslogTag = "chatops-executor-audit"

// copyToSyslog sends line, the record exactly as written to the file (chain fields and
// all, so a central store can verify it too), to the local syslog socket. Facility
// authpriv: decisions name people and what they asked for, and syslog daemons keep
// authpriv in a file only root reads. Denials are notices, allows informational.
func copyToSyslog(socket string, rec Record, line []byte) error {
	prio := syslog.LOG_AUTHPRIV | syslog.LOG_INFO
	if rec.Decision != "allow" {
		prio = syslog.LOG_AUTHPRIV | syslog.LOG_NOTICE
	}
	w, err := syslog.Dial("unixgram", socket, prio, SyslogTag)
	if err != nil {
		return err
	}
	defer w.Close()
	msg := string(bytes.TrimSuffix(line, []byte("\n")))
	if rec.Decision != "allow" {
		return w.Notice(msg)
	}
	return w.Info(msg)
}
