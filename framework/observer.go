package framework

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Observer receives jetkit's instrumentation hooks: every publish and every
// delivery a subscription processes. framework/telemetry implements it with
// OpenTelemetry traces and metrics; set it with WithObserver (or
// Conn.SetObserver). Without an observer the hot paths test one nil
// interface and do nothing else.
//
// Implementations must be safe for concurrent use and cheap: they run
// inline on every message.
type Observer interface {
	// StartPublish is called before an event is encoded and sent. The
	// returned context replaces ctx for the rest of the publish: its trace
	// context is what is injected into the message headers, so a publish
	// span started here becomes the parent of the consumer's process span.
	// end is called exactly once, with the message as sent (nil when it
	// could not be built) and the publish error.
	StartPublish(ctx context.Context, info PublishInfo) (context.Context, PublishEnd)
	// Subscribed is called once when a subscription starts consuming. The
	// returned SubscriptionObserver sees each of its deliveries; nil
	// observes nothing.
	Subscribed(info SubscriptionInfo) SubscriptionObserver
}

// SubscriptionObserver observes the deliveries of one subscription.
type SubscriptionObserver interface {
	// StartProcess is called when a worker takes a delivery, before the
	// handler chain (middleware included) runs; the returned context is the
	// one the handler chain receives. m may lack an envelope when the
	// delivery cannot be decoded (the handler is then skipped). end is
	// called exactly once, after the delivery is settled, with the outcome.
	StartProcess(ctx context.Context, m *Message) (context.Context, ProcessEnd)
}

// PublishEnd reports the end of one publish: the message sent (nil if it
// could not be built) and the error, nil when the server stored it (or, for
// PublishAsync, when it was queued).
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
	// Async is true for PublishAsync, whose end reports the enqueue only;
	// storage failures surface later through Conn.FlushAsync.
	Async bool
}

// SubscriptionInfo describes a subscription to its observer.
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
	// Prefetch bounds the messages pulled ahead of the handlers: the
	// initial depth when it adapts (see framework.Prefetch).
	Prefetch int
	// AckMode is async or sync.
	AckMode AckMode
	// MaxDeliver is the delivery limit before dead-lettering.
	MaxDeliver int
	// AckWait is the consumer's ack wait: a handler running longer is kept
	// alive with InProgress heartbeats (up to MaxHandlerTime).
	AckWait time.Duration
}

// Outcome is how the framework settled a delivery (docs/design.md, section 2).
type Outcome uint8

// Delivery outcomes.
const (
	// OutcomeAcked: the handler succeeded and the ack was sent (confirmed in sync mode).
	OutcomeAcked Outcome = iota + 1
	// OutcomeAckFailed: the handler succeeded but the ack failed; the server redelivers.
	OutcomeAckFailed
	// OutcomeRetried: a transient failure; redelivery scheduled after Settlement.Delay.
	OutcomeRetried
	// OutcomeDeadLettered: copied to the dead-letter stream and terminated.
	OutcomeDeadLettered
	// OutcomeDeadLetterFailed: the dead-letter copy failed; retried after Settlement.Delay.
	OutcomeDeadLetterFailed
	// OutcomeHandedBack: returned unfinished at shutdown for another instance.
	OutcomeHandedBack
)

// String names the outcome: acked, ack_failed, retried, dead_lettered,
// dead_letter_failed, handed_back.
func (o Outcome) String() string {
	switch o {
	case OutcomeAcked:
		return "acked"
	case OutcomeAckFailed:
		return "ack_failed"
	case OutcomeRetried:
		return "retried"
	case OutcomeDeadLettered:
		return "dead_lettered"
	case OutcomeDeadLetterFailed:
		return "dead_letter_failed"
	case OutcomeHandedBack:
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
	// Delay is the redelivery delay for OutcomeRetried and OutcomeDeadLetterFailed.
	Delay time.Duration
	// Reason is the dead-letter reason (ReasonDecode, ReasonPermanent,
	// ReasonMaxDeliver) for OutcomeDeadLettered and OutcomeDeadLetterFailed.
	Reason string
	// SettleErr is the error of the ack, nak or dead-letter publish, if any.
	SettleErr error
}

// WithObserver sets the service's instrumentation observer, e.g. the one
// telemetry.Setup returns. It observes publishes through the service (and
// through its connection) and every subscription. With WithConn it is set
// on the shared connection.
func WithObserver(o Observer) Option { return func(s *Service) { s.observer = o } }

// SetObserver sets the observer of publishes through c and of the
// subscriptions using c. Call it before publishing or subscribing: it is
// not synchronised with them.
func (c *Conn) SetObserver(o Observer) { c.observer = o }

// propagator is what publishes through c inject the trace context with:
// the observer's own when it has one (an Observer with a
// Propagator() method, as telemetry's), so that one setting governs both
// injection and extraction; otherwise the global one.
func (c *Conn) propagator() propagation.TextMapPropagator {
	if p, ok := c.observer.(interface {
		Propagator() propagation.TextMapPropagator
	}); ok {
		return p.Propagator()
	}
	return otel.GetTextMapPropagator()
}

// subscriptionInfo describes s to an Observer.
func (s *Subscription) subscriptionInfo() SubscriptionInfo {
	return SubscriptionInfo{
		Stream: s.stream, Consumer: s.durable, Filters: append([]string(nil), s.filters...), Subject: s.subject,
		Concurrency: s.opts.concurrency, Prefetch: s.opts.prefetch, AckMode: s.opts.ackMode, MaxDeliver: s.opts.maxDeliver,
		AckWait: s.opts.ackWait,
	}
}
