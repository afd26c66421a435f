package tryjob

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// evalExpr evaluates a CI/CD variable expression (rules:if, only:variables) the way GitLab's
// Gitlab::Ci::Pipeline::Expression::Statement#truthful? does: $VAR, "string", 'string',
// null, /regexp/flags; ==, !=, =~, !~ (binding tightest), && and ||; parentheses around
// any operand.
//
// Operators work on values, not booleans, with Ruby's semantics: an undefined variable is
// null, a defined one is its string, even empty; && and || return one of their operands
// (only null and false are false there, so "" && "x" is "x"); =~ with a string on the right
// that is not a /regexp/ asks whether the right side contains the left. The whole
// expression holds when its value is present: not null, not false, not "".
func evalExpr(expr string, vars map[string]string) (bool, error) {
	v, err := exprValue(expr, vars)
	if err != nil {
		return false, err
	}
	return v.present(), nil
}

// exprValue is the expression's value (Statement#evaluate).
func exprValue(expr string, vars map[string]string) (value, error) {
	toks, err := lexExpr(expr)
	if err != nil {
		return value{}, err
	}
	if len(toks) == 0 {
		return value{}, errors.New("empty expression")
	}
	p := &exprParser{toks: toks, vars: vars}
	v, err := p.binary(0)
	if err != nil {
		return value{}, err
	}
	if p.pos != len(p.toks) {
		return value{}, fmt.Errorf("unexpected %q in %q", p.toks[p.pos].text, expr)
	}
	return v, nil
}

// maxExprTokens is GitLab's Lexer::MAX_TOKENS.
const maxExprTokens = 100

type tokKind int

const (
	tokVar tokKind = iota
	tokString
	tokNull
	tokRegexp
	tokOp // == != =~ !~ && || ( )
)

type token struct {
	kind tokKind
	text string
}

func lexExpr(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			i++
			continue
		}
		if len(out) == maxExprTokens {
			return nil, fmt.Errorf("too many tokens in %q (GitLab allows %d)", s, maxExprTokens)
		}
		switch {
		case c == '$':
			j := i + 1
			braced := j < len(s) && s[j] == '{'
			if braced {
				j++
			}
			k := j
			for k < len(s) && (s[k] == '_' || s[k] >= 'a' && s[k] <= 'z' || s[k] >= 'A' && s[k] <= 'Z' || s[k] >= '0' && s[k] <= '9') {
				k++
			}
			if k == j {
				return nil, fmt.Errorf("bad variable at %q", s[i:])
			}
			out = append(out, token{tokVar, s[j:k]})
			if braced {
				if k >= len(s) || s[k] != '}' {
					return nil, fmt.Errorf("unclosed ${ in %q", s)
				}
				k++
			}
			i = k
		case c == '"' || c == '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unclosed string in %q", s)
			}
			out = append(out, token{tokString, s[i+1 : i+1+j]})
			i += j + 2
		case c == '/':
			j := i + 1
			for j < len(s) && s[j] != '/' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unclosed regexp in %q", s)
			}
			j++
			for j < len(s) && strings.IndexByte("ismU", s[j]) >= 0 {
				j++
			}
			if _, err := compileSlashRegexp(s[i:j]); err != nil {
				return nil, err
			}
			out = append(out, token{tokRegexp, s[i:j]})
			i = j
		case strings.HasPrefix(s[i:], "null"):
			out = append(out, token{tokNull, "null"})
			i += 4
		case c == '(' || c == ')':
			out = append(out, token{tokOp, string(c)})
			i++
		default:
			if i+1 < len(s) {
				switch op := s[i : i+2]; op {
				case "==", "!=", "=~", "!~", "&&", "||":
					out = append(out, token{tokOp, op})
					i += 2
					continue
				}
			}
			return nil, fmt.Errorf("unexpected %q in %q", s[i:], s)
		}
	}
	return out, nil
}

type valueKind uint8

const (
	vNull valueKind = iota
	vString
	vBool
	vRegexp
)

// value is what an expression evaluates to: null, a string, a boolean (from a
// comparison), or a regexp (a /pattern/ literal).
type value struct {
	kind valueKind
	s    string // the string, or the regexp's source
	b    bool
}

// truthy is Ruby's truth, which && and || use: everything but null and false.
func (v value) truthy() bool { return v.kind != vNull && !(v.kind == vBool && !v.b) }

// present is Rails' present?, which decides the expression: truthy and not "".
func (v value) present() bool { return v.truthy() && !(v.kind == vString && v.s == "") }

func (v value) equal(o value) bool {
	if v.kind != o.kind {
		return false
	}
	switch v.kind {
	case vBool:
		return v.b == o.b
	case vNull:
		return true
	}
	return v.s == o.s
}

// precedence of the binary operators: GitLab's lexemes' (Ruby's: =~ and == 10, && 11,
// || 12; lower binds tighter), as binding power.
var binaryPower = map[string]int{"||": 1, "&&": 2, "==": 3, "!=": 3, "=~": 3, "!~": 3}

type exprParser struct {
	toks []token
	pos  int
	vars map[string]string
}

func (p *exprParser) peekOp() (string, bool) {
	if p.pos < len(p.toks) && p.toks[p.pos].kind == tokOp {
		return p.toks[p.pos].text, true
	}
	return "", false
}

// binary parses operators of at least power min, left-associative, as GitLab's
// shunting-yard parser does.
func (p *exprParser) binary(min int) (value, error) {
	l, err := p.primary()
	if err != nil {
		return value{}, err
	}
	for {
		op, ok := p.peekOp()
		pw := binaryPower[op]
		if !ok || pw == 0 || pw < min {
			return l, nil
		}
		p.pos++
		r, err := p.binary(pw + 1)
		if err != nil {
			return value{}, err
		}
		if l, err = apply(op, l, r); err != nil {
			return value{}, err
		}
	}
}

func (p *exprParser) primary() (value, error) {
	if p.pos >= len(p.toks) {
		return value{}, errors.New("expression ends early")
	}
	t := p.toks[p.pos]
	p.pos++
	switch t.kind {
	case tokVar:
		s, ok := p.vars[t.text]
		if !ok {
			return value{}, nil
		}
		return value{kind: vString, s: s}, nil
	case tokString:
		return value{kind: vString, s: t.text}, nil
	case tokNull:
		return value{}, nil
	case tokRegexp:
		return value{kind: vRegexp, s: t.text}, nil
	}
	if t.text == "(" {
		v, err := p.binary(0)
		if err != nil {
			return value{}, err
		}
		if op, ok := p.peekOp(); !ok || op != ")" {
			return value{}, errors.New("unmatched parenthesis")
		}
		p.pos++
		return v, nil
	}
	return value{}, fmt.Errorf("unexpected %q", t.text)
}

func apply(op string, l, r value) (value, error) {
	switch op {
	case "&&":
		if !l.truthy() {
			return l, nil
		}
		return r, nil
	case "||":
		if l.truthy() {
			return l, nil
		}
		return r, nil
	case "==", "!=":
		return value{kind: vBool, b: l.equal(r) == (op == "==")}, nil
	}
	// =~ and !~: no right side (null, false) is no match.
	want := op == "=~"
	if !r.truthy() {
		return value{kind: vBool, b: !want}, nil
	}
	if l.kind == vNull {
		// nil.to_s is "", which GitLab's spec never matches against a pattern
		// ("$UNDEFINED_VARIABLE =~ /var.*/" is false, "!~" true); we take no
		// value to match nothing, whatever the pattern.
		return value{kind: vBool, b: !want}, nil
	}
	text := ""
	if l.kind == vString || l.kind == vRegexp {
		text = l.s
	} else if l.kind == vBool {
		text = fmt.Sprint(l.b)
	}
	var m bool
	switch {
	case r.kind == vRegexp:
		re, err := compileSlashRegexp(r.s)
		if err != nil {
			return value{}, err
		}
		m = re.MatchString(text)
	case r.kind == vString:
		// A variable holding "/pattern/" is a regexp; any other string matches where
		// it contains the left side (Ruby's String#scan).
		if re, err := compileSlashRegexp(r.s); err == nil && strings.HasPrefix(r.s, "/") {
			m = re.MatchString(text)
		} else {
			m = strings.Contains(r.s, text)
		}
	default:
		return value{}, fmt.Errorf("the right side of %s must be a /regexp/ or a string", op)
	}
	return value{kind: vBool, b: m == want}, nil
}

// compileSlashRegexp compiles GitLab's /pattern/flags form (flags: i, m, s, U); "\/"
// inside stands for "/".
func compileSlashRegexp(s string) (*regexp.Regexp, error) {
	end := strings.LastIndex(s, "/")
	if !strings.HasPrefix(s, "/") || end <= 0 {
		return nil, fmt.Errorf("bad regexp %s", s)
	}
	body, flags := s[1:end], s[end+1:]
	for _, c := range flags {
		if !strings.ContainsRune("imsU", c) {
			return nil, fmt.Errorf("bad regexp flags in %s", s)
		}
	}
	body = strings.ReplaceAll(body, `\/`, "/")
	if flags != "" {
		body = "(?" + flags + ")" + body
	}
	re, err := regexp.Compile(body)
	if err != nil {
		return nil, fmt.Errorf("bad regexp %s: %v", s, err)
	}
	return re, nil
}
