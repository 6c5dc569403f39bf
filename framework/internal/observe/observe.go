// Package observe holds the instrumentation hooks the framework calls on
// every publish and every delivery, and that framework/telemetry
// implements. It is internal so that the hooks can change with the
// framework: users turn instrumentation on with framework.WithObserver and
// the value telemetry gives them, and cannot implement an Observer by
// accident.
package observe

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/jetkit/jetkit/internal/wire"
)

// Observer receives the hooks: every publish and every subscription.
// Implementations must be safe for concurrent use and cheap: they run
// inline on every message. Without an observer the hot paths test one nil
// interface and do nothing else.
type Observer interface {
	// StartPublish is called before an event is encoded and sent. The
	// returned context replaces ctx for the rest of the publish: its trace
	// context is what is injected into the message headers. end is called
	// exactly once, with the message as sent (nil when it could not be
	// built) and the publish error.
	StartPublish(ctx context.Context, info PublishInfo) (context.Context, PublishEnd)
	// Subscribed is called once when a subscription starts consuming. The
	// returned SubscriptionObserver sees each of its deliveries; nil
	// observes nothing.
	Subscribed(info SubscriptionInfo) SubscriptionObserver
}

// Propagating is implemented by an Observer that owns the propagator the
// trace context is injected and extracted with, so that one setting
// governs both directions.
type Propagating interface {
	Propagator() propagation.TextMapPropagator
}

// SubscriptionObserver observes the deliveries of one subscription.
type SubscriptionObserver interface {
	// StartProcess is called when a worker takes a delivery, before the
	// handler chain runs; the returned context is the one the handler
	// chain receives. d has no event id or type when the delivery cannot
	// be decoded (the handler is then skipped). end is called exactly
	// once, after the delivery is settled.
	StartProcess(ctx context.Context, d Delivery) (context.Context, ProcessEnd)
	// Stopped is called once when the subscription has stopped (after
	// Subscribed returned this observer).
	Stopped()
}

// PublishEnd reports the end of one publish: the message sent (nil if it
// could not be built) and the error, nil when the server stored it (or,
// for PublishAsync, when it was queued).
type PublishEnd func(msg *nats.Msg, err error)

// ProcessEnd reports how a delivery was settled.
type ProcessEnd func(Settlement)

// PublishInfo describes a publish before its message exists.
type PublishInfo struct {
	// Subject is the topic's base subject, without the per-message key: a
	// bounded label for metrics and span names.
	Subject string
	// EventType is the CloudEvents type.
	EventType string
	// Async is true for PublishAsync, whose end reports the enqueue only.
	Async bool
}

// SubscriptionInfo describes a subscription.
type SubscriptionInfo struct {
	// Stream and Consumer (the durable name) identify the subscription.
	Stream   string
	Consumer string
	// Filters are the consumer's filter subjects.
	Filters []string
	// Subject is a bounded label for the subscription's subjects: the
	// topic's base subject, or the filter of an untyped subscription.
	Subject string
	// Concurrency is the most handlers running at once.
	Concurrency int
	// Prefetch bounds the messages pulled ahead of the handlers.
	Prefetch int
	// MaxDeliver is the delivery limit before dead-lettering.
	MaxDeliver int
	// AckWait is the consumer's ack wait.
	AckWait time.Duration
	// Group is, for one partition of a partitioned consumer group, the
	// group's durable name ("" otherwise), and Partition its number.
	Group     string
	Partition int
}

// Delivery describes one delivery to its observer.
type Delivery struct {
	Subject      string
	Header       nats.Header
	Size         int // bytes of data
	NumDelivered uint64
	StreamSeq    uint64
	EventID      string // empty when the envelope could not be read
	EventType    string
}

// Outcome is how the framework settled a delivery (docs/design.md, section 2).
type Outcome uint8

// Delivery outcomes.
const (
	// Acked: the handler succeeded and the ack was sent (confirmed in sync mode).
	Acked Outcome = iota + 1
	// AckFailed: the handler succeeded but the ack failed; the server redelivers.
	AckFailed
	// Retried: a transient failure; redelivery scheduled after Settlement.Delay.
	Retried
	// DeadLettered: copied to the dead-letter stream and terminated.
	DeadLettered
	// DeadLetterFailed: the dead-letter copy failed; retried after Settlement.Delay.
	DeadLetterFailed
	// HandedBack: returned unfinished at shutdown for another instance.
	HandedBack
)

// String names the outcome: acked, ack_failed, retried, dead_lettered,
// dead_letter_failed, handed_back.
func (o Outcome) String() string {
	switch o {
	case Acked:
		return "acked"
	case AckFailed:
		return "ack_failed"
	case Retried:
		return "retried"
	case DeadLettered:
		return "dead_lettered"
	case DeadLetterFailed:
		return "dead_letter_failed"
	case HandedBack:
		return "handed_back"
	default:
		return "unknown"
	}
}

// Settlement is the end of one delivery, as reported to a ProcessEnd.
type Settlement struct {
	// Outcome is what the framework did with the message.
	Outcome Outcome
	// Err is the handler's (or decoding's) error; nil when it succeeded.
	Err error
	// Delay is the redelivery delay for Retried and DeadLetterFailed.
	Delay time.Duration
	// Reason is the dead-letter reason for DeadLettered and DeadLetterFailed.
	Reason string
	// SettleErr is the error of the ack, nak or dead-letter publish, if any.
	SettleErr error
}

// HeaderCarrier adapts nats.Header to OpenTelemetry's TextMapCarrier. It
// writes lower-case keys (traceparent, tracestate, baggage), as W3C and
// other-language clients do, and reads keys case-insensitively because
// nats.Header.Get is case-sensitive.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key, matched case-insensitively.
func (c HeaderCarrier) Get(key string) string { return wire.HeaderValue(nats.Header(c), key) }

// Set stores value under the lower-cased key.
func (c HeaderCarrier) Set(key, value string) { c[strings.ToLower(key)] = []string{value} }

// Keys lists the header keys.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
