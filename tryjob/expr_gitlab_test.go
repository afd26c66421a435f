package tryjob

import "testing"

// Cases from GitLab's spec/lib/gitlab/ci/pipeline/expression/statement_spec.rb.
var statementSpecVars = map[string]string{
	"PRESENT_VARIABLE":   "my variable",
	"PATH_VARIABLE":      "a/path/variable/value",
	"FULL_PATH_VARIABLE": "/a/full/path/variable/value",
	"EMPTY_VARIABLE":     "",
}

// nilV, str and boolV spell the spec's expected values.
var nilV = value{}

func str(s string) value { return value{kind: vString, s: s} }
func boolV(b bool) value { return value{kind: vBool, b: b} }

// '#evaluate': the expression's value.
func TestExprEvaluateStatementSpec(t *testing.T) {
	for _, tt := range []struct {
		expr string
		want value
	}{
		{`$PRESENT_VARIABLE == "my variable"`, boolV(true)},
		{`"my variable" == $PRESENT_VARIABLE`, boolV(true)},
		{`$PRESENT_VARIABLE == null`, boolV(false)},
		{`$EMPTY_VARIABLE == null`, boolV(false)},
		{`"" == $EMPTY_VARIABLE`, boolV(true)},
		{`$EMPTY_VARIABLE`, str("")},
		{`$UNDEFINED_VARIABLE == null`, boolV(true)},
		{`null == $UNDEFINED_VARIABLE`, boolV(true)},
		{`$PRESENT_VARIABLE`, str("my variable")},
		{`$UNDEFINED_VARIABLE`, nilV},
		{`$PRESENT_VARIABLE =~ /var.*e$/`, boolV(true)},
		{`$PRESENT_VARIABLE =~ /va\r.*e$/`, boolV(false)},
		{`$PRESENT_VARIABLE =~ /va\/r.*e$/`, boolV(false)},
		{`$PRESENT_VARIABLE =~ /^var.*/`, boolV(false)},
		{`$EMPTY_VARIABLE =~ /var.*/`, boolV(false)},
		{`$UNDEFINED_VARIABLE =~ /var.*/`, boolV(false)},
		{`$PRESENT_VARIABLE =~ /VAR.*/i`, boolV(true)},
		{`$PATH_VARIABLE =~ /path\/variable/`, boolV(true)},
		{`$FULL_PATH_VARIABLE =~ /^\/a\/full\/path\/variable\/value$/`, boolV(true)},
		{`$FULL_PATH_VARIABLE =~ /\/path\/variable\/value$/`, boolV(true)},
		{`$PRESENT_VARIABLE != "my variable"`, boolV(false)},
		{`"my variable" != $PRESENT_VARIABLE`, boolV(false)},
		{`$PRESENT_VARIABLE != null`, boolV(true)},
		{`$EMPTY_VARIABLE != null`, boolV(true)},
		{`"" != $EMPTY_VARIABLE`, boolV(false)},
		{`$UNDEFINED_VARIABLE != null`, boolV(false)},
		{`null != $UNDEFINED_VARIABLE`, boolV(false)},
		{`$PRESENT_VARIABLE !~ /var.*e$/`, boolV(false)},
		{`$PRESENT_VARIABLE !~ /^var.*/`, boolV(true)},
		{`$PRESENT_VARIABLE !~ /^v\ar.*/`, boolV(true)},
		{`$PRESENT_VARIABLE !~ /^v\/ar.*/`, boolV(true)},
		{`$EMPTY_VARIABLE !~ /var.*/`, boolV(true)},
		{`$UNDEFINED_VARIABLE !~ /var.*/`, boolV(true)},
		{`$PRESENT_VARIABLE !~ /VAR.*/i`, boolV(false)},

		{`$PRESENT_VARIABLE && "string"`, str("string")},
		{`$PRESENT_VARIABLE && $PRESENT_VARIABLE`, str("my variable")},
		{`$PRESENT_VARIABLE && $EMPTY_VARIABLE`, str("")},
		{`$PRESENT_VARIABLE && null`, nilV},
		{`"string" && $PRESENT_VARIABLE`, str("my variable")},
		{`$EMPTY_VARIABLE && $PRESENT_VARIABLE`, str("my variable")},
		{`null && $PRESENT_VARIABLE`, nilV},
		{`$EMPTY_VARIABLE && "string"`, str("string")},
		{`$EMPTY_VARIABLE && $EMPTY_VARIABLE`, str("")},
		{`"string" && $EMPTY_VARIABLE`, str("")},
		{`"string" && null`, nilV},
		{`null && "string"`, nilV},
		{`"string" && "string"`, str("string")},
		{`null && null`, nilV},

		{`$PRESENT_VARIABLE =~ /my var/ && $EMPTY_VARIABLE =~ /nope/`, boolV(false)},
		{`$EMPTY_VARIABLE == "" && $PRESENT_VARIABLE`, str("my variable")},
		{`$EMPTY_VARIABLE == "" && $PRESENT_VARIABLE != "nope"`, boolV(true)},
		{`$PRESENT_VARIABLE && $UNDEFINED_VARIABLE`, nilV},
		{`$UNDEFINED_VARIABLE && $EMPTY_VARIABLE`, nilV},
		{`$UNDEFINED_VARIABLE && $PRESENT_VARIABLE`, nilV},

		{`$FULL_PATH_VARIABLE =~ /^\/a\/full\/path\/variable\/value$/ && $PATH_VARIABLE =~ /path\/variable/`, boolV(true)},
		{`$FULL_PATH_VARIABLE =~ /^\/a\/bad\/path\/variable\/value$/ && $PATH_VARIABLE =~ /path\/variable/`, boolV(false)},
		{`$FULL_PATH_VARIABLE =~ /^\/a\/full\/path\/variable\/value$/ && $PATH_VARIABLE =~ /bad\/path\/variable/`, boolV(false)},
		{`$FULL_PATH_VARIABLE =~ /^\/a\/bad\/path\/variable\/value$/ && $PATH_VARIABLE =~ /bad\/path\/variable/`, boolV(false)},
		{`$FULL_PATH_VARIABLE =~ /^\/a\/full\/path\/variable\/value$/ || $PATH_VARIABLE =~ /path\/variable/`, boolV(true)},
		{`$FULL_PATH_VARIABLE =~ /^\/a\/bad\/path\/variable\/value$/ || $PATH_VARIABLE =~ /path\/variable/`, boolV(true)},
		{`$FULL_PATH_VARIABLE =~ /^\/a\/full\/path\/variable\/value$/ || $PATH_VARIABLE =~ /bad\/path\/variable/`, boolV(true)},
		{`$FULL_PATH_VARIABLE =~ /^\/a\/bad\/path\/variable\/value$/ || $PATH_VARIABLE =~ /bad\/path\/variable/`, boolV(false)},

		{`$PRESENT_VARIABLE =~ /my var/ || $EMPTY_VARIABLE =~ /nope/`, boolV(true)},
		{`$EMPTY_VARIABLE == "" || $PRESENT_VARIABLE`, boolV(true)},
		{`$PRESENT_VARIABLE != "nope" || $EMPTY_VARIABLE == ""`, boolV(true)},
		{`$PRESENT_VARIABLE && null || $EMPTY_VARIABLE == ""`, boolV(true)},
		{`$PRESENT_VARIABLE || $UNDEFINED_VARIABLE`, str("my variable")},
		{`$UNDEFINED_VARIABLE || $PRESENT_VARIABLE`, str("my variable")},
		{`$UNDEFINED_VARIABLE == null || $PRESENT_VARIABLE`, boolV(true)},
		{`$PRESENT_VARIABLE || $UNDEFINED_VARIABLE == null`, str("my variable")},

		{`($PRESENT_VARIABLE)`, str("my variable")},
		{`(($PRESENT_VARIABLE))`, str("my variable")},
		{`(($PRESENT_VARIABLE && null) || $EMPTY_VARIABLE == "")`, boolV(true)},
		{`($PRESENT_VARIABLE) && (null || $EMPTY_VARIABLE == "")`, boolV(true)},
		{`("string" || "test") == "string"`, boolV(true)},
		{`(null || ("test" == "string"))`, boolV(false)},
		{`("string" == ("test" && "string"))`, boolV(true)},
		{`("string" == ("test" || "string"))`, boolV(false)},
		{`("string" == "test" || "string")`, str("string")},
		{`("string" == ("string" || (("1" == "1") && ("2" == "3"))))`, boolV(true)},
	} {
		got, err := exprValue(tt.expr, statementSpecVars)
		if err != nil || !got.equal(tt.want) {
			t.Errorf("%s = %+v, %v; want %+v", tt.expr, got, err, tt.want)
		}
	}
}

// '#truthful?', including 'when variables have patterns'.
func TestExprTruthfulStatementSpec(t *testing.T) {
	vars := map[string]string{"teststring": "abcde", "pattern1": "/^ab.*/", "pattern2": "/^at.*/"}
	for k, v := range statementSpecVars {
		vars[k] = v
	}
	for _, tt := range []struct {
		expr string
		want bool
	}{
		{`$PRESENT_VARIABLE == "my variable"`, true},
		{`$PRESENT_VARIABLE == 'no match'`, false},
		{`$UNDEFINED_VARIABLE == null`, true},
		{`$PRESENT_VARIABLE`, true},
		{`$UNDEFINED_VARIABLE`, false},
		{`$EMPTY_VARIABLE`, false},
		{`$PRESENT_VARIABLE =~ /var.*/`, true},
		{`$UNDEFINED_VARIABLE =~ /var.*/`, false},
		{`$PRESENT_VARIABLE !~ /var.*/`, false},
		{`$UNDEFINED_VARIABLE !~ /var.*/`, true},
		{`$teststring =~ "abcde"`, true},
		{`$teststring =~ $teststring`, true},
		{`$teststring =~ $pattern1`, true},
		{`$teststring =~ $pattern2`, false},
	} {
		got, err := evalExpr(tt.expr, vars)
		if err != nil || got != tt.want {
			t.Errorf("%s = %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
	// '$INVALID = 1' is not truthful in GitLab because it does not parse; a CI file with
	// it is invalid there (rules:if is validated), so try reports it as an error.
	if _, err := evalExpr(`$INVALID = 1`, vars); err == nil {
		t.Error("$INVALID = 1 parsed")
	}
}
