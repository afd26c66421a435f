package bashscript

import "strings"

// ANSI sequences the runner puts into generated scripts (helpers/ansi_colors.go).
const (
	ansiBoldGreen = "\x1b[32;1m"
	ansiYellow    = "\x1b[0;33m"
	ansiReset     = "\x1b[0;m"
	ansiClear     = "\x1b[0K"
)

// byteClass says how ShellEscape treats one byte, following the table in
// helpers/shell_escape.go: literal bytes pass unchanged, "special" bytes pass
// unchanged but force $'...' quoting, named escapes use their ANSI-C form and
// everything else (other control bytes, DEL, every byte >= 0x80) becomes \xNN.
// Working on bytes, not runes, is what makes non-UTF-8 values round-trip.
type byteClass uint8

const (
	classHex byteClass = iota
	classLiteral
	classSpecial
	classNamed
)

var (
	escapeClass [256]byteClass
	escapeNamed [256]string
)

func init() {
	for _, c := range []byte(",-./0123456789@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz") {
		escapeClass[c] = classLiteral
	}
	for _, c := range []byte(" !\"#$%&()*+:;<=>?[]^`{|}~") {
		escapeClass[c] = classSpecial
	}
	for c, s := range map[byte]string{
		'\a': `\a`, '\b': `\b`, '\t': `\t`, '\n': `\n`, '\v': `\v`, '\f': `\f`,
		'\r': `\r`, '\'': `\'`, '\\': `\\`,
	} {
		escapeClass[c] = classNamed
		escapeNamed[c] = s
	}
}

// ShellEscape quotes s for bash the way gitlab-runner 19.4.0's
// helpers.ShellEscape does: unchanged when every byte is safe, otherwise an
// ANSI-C $'...' string; the empty string becomes a pair of single quotes.
func ShellEscape(s string) string {
	if s == "" {
		return "''"
	}
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s) * 2)
	quote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch escapeClass[c] {
		case classLiteral:
			b.WriteByte(c)
		case classSpecial:
			b.WriteByte(c)
			quote = true
		case classNamed:
			b.WriteString(escapeNamed[c])
			quote = true
		default:
			b.Write([]byte{'\\', 'x', hex[c>>4], hex[c&0x0f]})
			quote = true
		}
	}
	if !quote {
		return b.String()
	}
	return "$'" + b.String() + "'"
}

// PosixShellEscape is the FF_POSIXLY_CORRECT_ESCAPES variant
// (helpers.PosixShellEscape): a double-quoted string with ` " \ $
// backslash-escaped; other bytes, control bytes included, pass unchanged.
func PosixShellEscape(s string) string {
	if s == "" {
		return "''"
	}
	var b strings.Builder
	b.Grow(len(s) * 2)
	quote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '`', '"', '\\', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
			quote = true
		case ' ', '!', '#', '%', '&', '(', ')', '*', '<', '=', '>', '?', '[', '|':
			b.WriteByte(c)
			quote = true
		default:
			b.WriteByte(c)
		}
	}
	if !quote {
		return b.String()
	}
	return `"` + b.String() + `"`
}

// doubleQuote is the runner's "argument expansion" quoting (shells/abstract.go):
// the value is wrapped in double quotes with no escaping at all, so $VAR in
// it expands when the script runs. The runner only uses it for paths it
// builds itself.
func doubleQuote(s string) string {
	return `"` + s + `"`
}
