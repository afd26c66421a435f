package tryjob

import (
	"errors"
	"fmt"
	"strings"
)

// evalExpr evaluates a CI/CD variable expression (rules:if, only:variables): $VAR,
// "string", 'string', null, /regexp/flags; ==, !=, =~, !~; && (binding tighter) and ||;
// parentheses. An undefined variable is null; a defined one, even empty, is not — though
// as a bare operand an empty value is false, as in GitLab.
func evalExpr(expr string, vars map[string]string) (bool, error) {
	toks, err := lexExpr(expr)
	if err != nil {
		return false, err
	}
	p := &exprParser{toks: toks, vars: vars}
	v, err := p.or()
	if err != nil {
		return false, err
	}
	if p.pos != len(p.toks) {
		return false, fmt.Errorf("unexpected %q in %q", p.toks[p.pos].text, expr)
	}
	return v, nil
}

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
		switch {
		case c == ' ' || c == '\t':
			i++
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
			for j < len(s) && strings.IndexByte("ims", s[j]) >= 0 {
				j++
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

type exprParser struct {
	toks []token
	pos  int
	vars map[string]string
}

func (p *exprParser) peekOp(op string) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == tokOp && p.toks[p.pos].text == op
}

func (p *exprParser) or() (bool, error) {
	v, err := p.and()
	for err == nil && p.peekOp("||") {
		p.pos++
		var r bool
		r, err = p.and()
		v = v || r
	}
	return v, err
}

func (p *exprParser) and() (bool, error) {
	v, err := p.cmp()
	for err == nil && p.peekOp("&&") {
		p.pos++
		var r bool
		r, err = p.cmp()
		v = v && r
	}
	return v, err
}

// value is an operand: a string, or null (ok false).
type value struct {
	s      string
	ok     bool
	regexp string
}

func (p *exprParser) operand() (value, error) {
	if p.pos >= len(p.toks) {
		return value{}, errors.New("expression ends early")
	}
	t := p.toks[p.pos]
	p.pos++
	switch t.kind {
	case tokVar:
		s, ok := p.vars[t.text]
		return value{s: s, ok: ok}, nil
	case tokString:
		return value{s: t.text, ok: true}, nil
	case tokNull:
		return value{}, nil
	case tokRegexp:
		return value{regexp: t.text, ok: true}, nil
	}
	return value{}, fmt.Errorf("unexpected %q", t.text)
}

func (p *exprParser) cmp() (bool, error) {
	if p.peekOp("(") {
		p.pos++
		v, err := p.or()
		if err != nil {
			return false, err
		}
		if !p.peekOp(")") {
			return false, errors.New("missing )")
		}
		p.pos++
		return v, nil
	}
	l, err := p.operand()
	if err != nil {
		return false, err
	}
	if p.pos >= len(p.toks) || p.toks[p.pos].kind != tokOp || p.peekOp("&&") || p.peekOp("||") || p.peekOp(")") {
		return l.ok && l.s != "", nil
	}
	op := p.toks[p.pos].text
	p.pos++
	r, err := p.operand()
	if err != nil {
		return false, err
	}
	switch op {
	case "==", "!=":
		eq := l.ok == r.ok && l.s == r.s && l.regexp == r.regexp
		return eq == (op == "=="), nil
	case "=~", "!~":
		if r.regexp == "" {
			// GitLab also accepts a variable holding a /regexp/.
			if r.ok && strings.HasPrefix(r.s, "/") {
				r.regexp = r.s
			} else {
				return false, fmt.Errorf("the right side of %s must be a /regexp/", op)
			}
		}
		re, err := compileSlashRegexp(r.regexp)
		if err != nil {
			return false, err
		}
		m := l.ok && re.MatchString(l.s)
		return m == (op == "=~"), nil
	}
	return false, fmt.Errorf("unexpected %q", op)
}
