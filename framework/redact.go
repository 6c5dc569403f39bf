package framework

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/jetkit/jetkit/internal/redact"
)

// redactURL hides the user information of a server URL before it is
// shown (user:password, token or user alone): see redact.URL.
func redactURL(raw string) string { return redact.URL(raw) }

// configFields is Config without its methods, so the methods below can
// format the fields without calling themselves.
type configFields Config

// redacted is a copy safe to show: the user information in server URLs is
// replaced (Secret fields redact themselves).
func (c Config) redacted() configFields {
	out := configFields(c)
	out.URLs = make([]string, len(c.URLs))
	for i, u := range c.URLs {
		out.URLs[i] = redactURL(u)
	}
	return out
}

// String renders the configuration with secrets redacted: the password and
// token, and any user information (user:password, token) in NATS_URL. %v
// and %+v use it.
func (c Config) String() string { return fmt.Sprintf("%+v", c.redacted()) }

// GoString is String for %#v.
func (c Config) GoString() string { return "framework.Config" + c.String() }

// LogValue lets slog log a Config with secrets redacted.
func (c Config) LogValue() slog.Value { return slog.AnyValue(c.redacted()) }

// MarshalJSON encodes the configuration with secrets redacted.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.redacted()) }
