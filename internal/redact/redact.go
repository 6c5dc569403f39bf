// Package redact hides credentials in text jetkit shows: logs, errors,
// banners and String methods.
package redact

import "strings"

// Placeholder replaces a hidden value.
const Placeholder = "[redacted]"

// URL hides the user information of a server URL: nats://user:password@host,
// nats://token@host and nats://user@host all become nats://[redacted]@host.
// To NATS a user without a password is a token, so every form is a secret.
// It works on the text, so a URL that does not parse is redacted too:
// everything between the scheme and the last @ goes.
func URL(raw string) string {
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return raw
	}
	start := 0
	if i := strings.Index(raw[:at], "://"); i >= 0 {
		start = i + len("://")
	}
	return raw[:start] + Placeholder + raw[at:]
}

// URLs is URL for each server of a comma-separated list.
func URLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		parts[i] = URL(p)
	}
	return strings.Join(parts, ",")
}
