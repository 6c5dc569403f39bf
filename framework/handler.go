package framework

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Message is one delivery of an event to a subscription: the raw payload,
// headers, envelope and JetStream metadata. Handlers and middleware read
// it; the framework alone settles it (ack, retry, dead-letter).
type Message struct {
	// Subject the event was published to.
	Subject string
	// Data is the encoded event data: the payload, or for a
	// structured-mode CloudEvent the event's data member.
	Data []byte
	// Header holds all headers, envelope and trace context included.
	Header nats.Header
	// Envelope is the parsed CloudEvents context.
	Envelope Envelope
	// Stream and Consumer name where the message came from.
	Stream   string
	Consumer string
	// StreamSeq is the message's sequence in the stream.
	StreamSeq uint64
	// ConsumerSeq is the delivery's sequence in the consumer.
	ConsumerSeq uint64
	// NumDelivered counts deliveries of this message, this one included (1 = first).
	NumDelivered uint64
	// NumPending is how many messages the consumer still had pending.
	NumPending uint64
	// Timestamp is when the stream stored the message.
	Timestamp time.Time
	// MaxDeliver is the subscription's delivery limit; the delivery with
	// NumDelivered == MaxDeliver is the last before dead-lettering.
	MaxDeliver int
	// Attempt counts in-process attempts within this delivery (1 = first);
	// retry middleware increments it.
	Attempt int

	raw jetstream.Msg
}

// InProgress tells the server the message is still being worked on, which
// resets its AckWait. The framework already does this for long handlers;
// call it only to signal progress earlier.
func (m *Message) InProgress() error { return m.raw.InProgress() }

// Raw is the underlying JetStream message, for what jetkit does not cover.
// Do not ack, nak or term it: the framework settles every message.
func (m *Message) Raw() jetstream.Msg { return m.raw }

// Handler processes one message. Returning nil acks it; an error retries it
// with backoff, or dead-letters it when the error is permanent (Permanent)
// or the deliveries are used up.
type Handler interface {
	Handle(ctx context.Context, m *Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m *Message) error { return f(ctx, m) }

// Middleware wraps a Handler, like net/http middleware. The first
// middleware given is the outermost.
type Middleware func(Handler) Handler

// chain wraps h in mws, the first outermost.
func chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// TypedHandler handles a decoded event of type T together with its message.
type TypedHandler[T any] func(ctx context.Context, ev T, m *Message) error
