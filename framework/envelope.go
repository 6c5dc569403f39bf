package framework

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// CloudEvents 1.0 binary-mode header names, lower-case as other-language
// clients write them. Header names are case-insensitive: a received
// message spelling one of them twice is malformed, and WithHeader refuses
// them in any spelling.
const (
	HeaderID          = "ce-id"
	HeaderType        = "ce-type"
	HeaderSource      = "ce-source"
	HeaderSpecVersion = "ce-specversion"
	HeaderTime        = "ce-time"
	// HeaderDataContentType carries the payload's MIME type in binary
	// mode, as the CloudEvents NATS binding maps datacontenttype.
	HeaderDataContentType = "ce-datacontenttype"
	// HeaderContentType is read as the payload's MIME type when
	// ce-datacontenttype is absent (producers before the binding, and
	// jetkit before it followed the binding); application/cloudevents+json
	// marks a structured-mode event.
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
	// SpecVersion is the CloudEvents spec version, "1.0"; empty for a
	// message accepted without an envelope (AllowMissingEnvelope).
	SpecVersion string
	// Time is when the event happened, as the producer said.
	Time time.Time
	// ContentType is the payload's MIME type (datacontenttype); empty
	// means the topic's codec.
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

// writeEnvelope sets the envelope headers (and Nats-Msg-Id) on h: binary
// mode, datacontenttype as ce-datacontenttype only (a content-type header
// as well would cost every message 32 bytes on the wire and in storage).
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
	h[HeaderDataContentType] = vals[5:6:6]
	h[HeaderMsgID] = vals[6:7:7]
}
