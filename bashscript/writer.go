package bashscript

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// writer accumulates the body of one stage script, the part that ends up
// inside eval $'...' (shells/bash.go BashWriter).
type writer struct {
	b      strings.Builder
	indent int
	tmpDir string

	exitCodeCheck bool // FF_ENABLE_BASH_EXIT_CODE_CHECK
	posixEscape   bool // FF_POSIXLY_CORRECT_ESCAPES
}

func (w *writer) escape(s string) string {
	if w.posixEscape {
		return PosixShellEscape(s)
	}
	return ShellEscape(s)
}

func (w *writer) line(s string) {
	w.b.WriteString(strings.Repeat("  ", w.indent))
	w.b.WriteString(s)
	w.b.WriteByte('\n')
}

// goQuote is what the runner's Linef("%q", ...) produces: Go string syntax
// in double quotes. Bash reads it as a double-quoted word, so $ and `
// inside it still expand; the runner relies on that only for paths.
func goQuote(s string) string { return strconv.Quote(s) }

func (w *writer) checkForErrors() {
	if w.exitCodeCheck {
		w.line("_runner_exit_code=$?; if [ $_runner_exit_code -ne 0 ]; then exit $_runner_exit_code; fi")
	}
}

func (w *writer) buildCommand(quote func(string) string, command string, args ...string) string {
	parts := []string{w.escape(command)}
	for _, a := range args {
		parts = append(parts, quote(a))
	}
	return strings.Join(parts, " ")
}

func (w *writer) command(command string, args ...string) {
	w.line(w.buildCommand(w.escape, command, args...))
	w.checkForErrors()
}

func (w *writer) commandArgExpand(command string, args ...string) {
	w.line(w.buildCommand(doubleQuote, command, args...))
	w.checkForErrors()
}

// commandWithStdinBestEffort is CommandWithStdin(bestEffort=true): errexit
// and pipefail would otherwise abort the script when the consumer fails.
func (w *writer) commandWithStdinBestEffort(stdin, command string, args ...string) {
	producer := w.buildCommand(w.escape, "echo", stdin)
	consumer := w.buildCommand(w.escape, command, args...)
	w.line(producer + " | " + consumer + " || true")
}

func (w *writer) notice(text string) {
	w.line("echo " + w.escape(ansiBoldGreen+text+ansiReset))
}

func (w *writer) emptyLine() { w.line("echo") }

// absolute mirrors BashWriter.Absolute: relative paths are anchored at $PWD
// at run time.
func absolute(dir string) string {
	if path.IsAbs(dir) || strings.HasPrefix(dir, "$PWD") {
		return dir
	}
	return path.Join("$PWD", dir)
}

func (w *writer) tmpFile(name string) string {
	return absolute(path.Join(w.tmpDir, name))
}

// variable exports one job variable (BashWriter.Variable). File variables
// are written into the temporary directory and the variable holds the path.
func (w *writer) variable(v Variable) {
	if v.File {
		file := w.tmpFile(v.Key)
		w.line(fmt.Sprintf("mkdir -p %s", goQuote(w.tmpDir)))
		w.line(fmt.Sprintf("printf '%%s' %s > %s", w.escape(v.Value), goQuote(file)))
		w.line(fmt.Sprintf("export %s=%s", w.escape(v.Key), goQuote(file)))
		return
	}
	value := v.Value
	if strings.HasPrefix(value, w.tmpDir) {
		value = absolute(value)
	}
	w.line(fmt.Sprintf("export %s=%s", w.escape(v.Key), w.escape(value)))
}

func (w *writer) exportRaw(name, value string) {
	w.line(fmt.Sprintf("export %s=%s", w.escape(name), doubleQuote(value)))
}

func (w *writer) sourceEnv(file string) {
	w.line(fmt.Sprintf("mkdir -p %s", goQuote(w.tmpDir)))
	w.line(fmt.Sprintf("touch %s", goQuote(file)))
	w.line(fmt.Sprintf(`while read -r line; do export "$line"; done < %s`, goQuote(file)))
}

func (w *writer) ifDirectory(p string) {
	w.line(fmt.Sprintf("if [ -d %s ]; then", goQuote(p)))
	w.indent++
}

func (w *writer) ifFile(p string) {
	w.line(fmt.Sprintf("if [ -e %s ]; then", goQuote(p)))
	w.indent++
}

func (w *writer) ifFileReadable(p string) {
	w.line(fmt.Sprintf("if [ -r %s ]; then", goQuote(p)))
	w.indent++
}

func (w *writer) endIf() {
	w.indent--
	w.line("fi")
}

func (w *writer) cd(p string)    { w.command("cd", p) }
func (w *writer) mkDir(p string) { w.command("mkdir", "-p", p) }
func (w *writer) rmFile(p string) {
	w.commandArgExpand("rm", "-f", p)
}

func (w *writer) rmDir(p string) {
	w.ifDirectory(p)
	w.commandArgExpand("chmod", "-R", "u+rwX", p)
	w.endIf()
	w.commandArgExpand("rm", "-r", "-f", p)
}

func (w *writer) rmFilesRecursive(p, name string) {
	w.ifDirectory(p)
	w.line(fmt.Sprintf(`et='+' ; find /dev/null -exec true {} + 2>/dev/null || et=';' ; find %s -name %s -type f -exec rm -f {} "${et}"`, goQuote(p), goQuote(name)))
	w.endIf()
}

func (w *writer) sectionStart(id, command string, options []string) {
	opts := ""
	if len(options) > 0 {
		opts = "[" + strings.Join(options, ",") + "]"
	}
	w.line("printf '%b\\n' " +
		"section_start:$(awk 'BEGIN{srand(); print srand()}'):section_" + id + opts +
		"\r" + ansiClear + w.escape(ansiBoldGreen+command+ansiReset))
}

func (w *writer) sectionEnd(id string) {
	w.line("printf '%b\\n' " +
		"section_end:$(awk 'BEGIN{srand(); print srand()}'):section_" + id +
		"\r" + ansiClear)
}

// setupGitCredHelper is BashWriter.SetupGitCredHelper.
func (w *writer) setupGitCredHelper(confFile, section, user string) {
	helper := w.escape(section + ".helper")
	username := w.escape(section + ".username")
	w.line(fmt.Sprintf(
		`git config -f %[1]s --replace-all %[2]s %[3]s && `+
			`git config -f %[1]s --add %[2]s %[4]s && `+
			`git config -f %[1]s %[5]s %[6]s`,
		doubleQuote(confFile), helper, `""`, w.escape(credHelperCommand), username, user))
	w.checkForErrors()
}

const credHelperCommand = `!f(){ if [ "$1" = "get" ] ; then echo "password=${CI_JOB_TOKEN}" ; fi ; } ; f`
