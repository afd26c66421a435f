package replies

import (
	"strconv"

	"github.com/chatops-executor/chatops-executor/job"
)

// maskAllDefaultTokensFlag is gitlab-runner's feature flag for the default token prefixes
// (helpers/featureflags MaskAllDefaultTokens); it is on unless something turns it off.
const maskAllDefaultTokensFlag = "FF_MASK_ALL_DEFAULT_TOKENS"

// SecretsOf returns what must be masked in everything that leaves the host about j: its
// masked variables' values and token, the token prefixes of its features, and whether the
// runner masks all default prefixes for it.
//
// The runner resolves FF_MASK_ALL_DEFAULT_TOKENS from its config.toml first and from the
// job's variables second, and exports the result to the executor as
// CUSTOM_ENV_FF_MASK_ALL_DEFAULT_TOKENS; getenv (nil: not known) is asked for that first,
// so a job cannot unmask what the runner masks. Only a value strconv.ParseBool reads as
// false turns the prefixes off, as in the runner.
func SecretsOf(j *job.Response, getenv func(string) string) Secrets {
	on := true
	raw, set := "", false
	if getenv != nil {
		raw = getenv("CUSTOM_ENV_" + maskAllDefaultTokensFlag)
		set = raw != ""
	}
	if !set {
		raw, set = j.Var(maskAllDefaultTokensFlag)
	}
	if set {
		if v, err := strconv.ParseBool(raw); err == nil {
			on = v
		}
	}
	return Secrets{Values: j.Secrets(), TokenPrefixes: j.Features.TokenMaskPrefixes, OnlyPATPrefix: !on}
}
