package framework

import (
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/internal/wire"
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

// writeEnvelope sets the envelope headers (and Nats-Msg-Id) on h: binary
// mode, datacontenttype as ce-datacontenttype only (a content-type header
// as well would cost every message 32 bytes on the wire and in storage).
func writeEnvelope(h nats.Header, env Envelope) {
	// One backing array for the seven one-value slices: one allocation
	// instead of seven on every publish (hot path).
	v := [...]string{wire.SpecVersion, env.ID, env.Type, env.Source, env.Time.UTC().Format(time.RFC3339Nano), env.ContentType, env.ID}
	vals := v[:]
	h[wire.HeaderSpecVersion] = vals[0:1:1]
	h[wire.HeaderID] = vals[1:2:2]
	h[wire.HeaderType] = vals[2:3:3]
	h[wire.HeaderSource] = vals[3:4:4]
	h[wire.HeaderTime] = vals[4:5:5]
	h[wire.HeaderDataContentType] = vals[5:6:6]
	h[wire.HeaderMsgID] = vals[6:7:7]
}
