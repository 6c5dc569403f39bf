package framework

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// CloudEvents 1.0 binary-mode header names, lower-case as other-language
// clients write them. See DESIGN.md §4.
const (
	HeaderID          = "ce-id"
	HeaderType        = "ce-type"
	HeaderSource      = "ce-source"
	HeaderSpecVersion = "ce-specversion"
	HeaderTime        = "ce-time"
	HeaderContentType = "content-type"
	// HeaderMsgID is JetStream's de-duplication header; jetkit sets it to the event id.
	HeaderMsgID = nats.MsgIdHdr
	// SpecVersion is the CloudEvents version jetkit writes and accepts.
	SpecVersion = "1.0"
)

// Envelope is the CloudEvents context of a message, carried in headers.
type Envelope struct {
	// ID is the event id; also the Nats-Msg-Id used for de-duplication.
	ID string
	// Type names the kind of event, e.g. orders.created.v1.
	Type string
	// Source identifies the producer (the service name by default).
	Source string
	// SpecVersion is the CloudEvents spec version, "1.0".
	SpecVersion string
	// Time is when the event happened, as the producer said.
	Time time.Time
	// ContentType is the payload's MIME type.
	ContentType string
}

// headerValue reads a header case-insensitively: nats.Header.Get is
// case-sensitive, and producers differ in how they spell keys.
func headerValue(h nats.Header, key string) string {
	if v, ok := h[key]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// HeaderValue returns the first value of key in h, matching the key
// case-insensitively.
func HeaderValue(h nats.Header, key string) string { return headerValue(h, key) }

// parseEnvelope reads and checks the CloudEvents headers. The error names
// the header at fault; decode failures are permanent.
func parseEnvelope(h nats.Header) (Envelope, error) {
	env := Envelope{
		ID:          headerValue(h, HeaderID),
		Type:        headerValue(h, HeaderType),
		Source:      headerValue(h, HeaderSource),
		SpecVersion: headerValue(h, HeaderSpecVersion),
		ContentType: headerValue(h, HeaderContentType),
	}
	switch {
	case env.SpecVersion == "":
		return env, decodeError("missing header %s; jetkit expects CloudEvents binary mode", HeaderSpecVersion)
	case env.SpecVersion != SpecVersion:
		return env, decodeError("header %s is %q; only %q is supported", HeaderSpecVersion, env.SpecVersion, SpecVersion)
	case env.ID == "":
		return env, decodeError("missing header %s", HeaderID)
	case env.Type == "":
		return env, decodeError("missing header %s", HeaderType)
	case env.Source == "":
		return env, decodeError("missing header %s", HeaderSource)
	}
	if raw := headerValue(h, HeaderTime); raw != "" {
		t, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil {
			return env, decodeError("header %s %q is not an RFC 3339 time", HeaderTime, raw)
		}
		env.Time = t
	}
	return env, nil
}

// writeEnvelope sets the envelope headers (and Nats-Msg-Id) on h.
func writeEnvelope(h nats.Header, env Envelope) {
	// One backing array for the seven one-value slices: one allocation
	// instead of seven on every publish (hot path).
	v := [...]string{SpecVersion, env.ID, env.Type, env.Source, env.Time.UTC().Format(time.RFC3339Nano), env.ContentType, env.ID}
	vals := v[:]
	h[HeaderSpecVersion] = vals[0:1:1]
	h[HeaderID] = vals[1:2:2]
	h[HeaderType] = vals[2:3:3]
	h[HeaderSource] = vals[3:4:4]
	h[HeaderTime] = vals[4:5:5]
	h[HeaderContentType] = vals[5:6:6]
	h[HeaderMsgID] = vals[6:7:7]
}
