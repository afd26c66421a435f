package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration that decodes only from a string such as "90s" or "30m".
//
// BurntSushi/toml would decode a bare integer into time.Duration as nanoseconds, so
// `timeout = 10` would silently mean ten nanoseconds. A string-only type turns that into an
// error that names the key.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalTOML implements toml.Unmarshaler.
func (d *Duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("a duration must be a quoted string such as \"90s\" or \"30m\", got %s", what(v))
	}
	parsed, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a number with a unit, such as \"90s\", \"10m\" or \"1h30m\"", s)
	}
	*d = Duration(parsed)
	return nil
}

// MarshalText renders the duration the way it is written in the file.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d Duration) String() string { return time.Duration(d).String() }
