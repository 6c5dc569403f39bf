package framework

import (
	"encoding/json"
	"log/slog"
)

// Secret holds a credential (password, token). It never prints its value:
// fmt, log/slog and encoding/json all render it as "[redacted]". Call
// Reveal to obtain the value where it is actually needed.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value. Use it only to hand the value to the
// NATS client, never to build a log line or error.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer so %#v redacts too.
func (s Secret) GoString() string { return `framework.Secret("` + s.String() + `")` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }
