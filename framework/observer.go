package framework

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/jetkit/jetkit/framework/internal/observe"
)

// WithObserver turns on instrumentation: pass the observer
// framework/telemetry builds (telemetry.Setup's Telemetry.Observer), which
// traces and measures every publish through the service (and through its
// connection) and every subscription. A nil observer instruments nothing
// and costs nothing. With WithConn it is set on the shared connection.
//
// Its parameter type is internal to jetkit on purpose: the hooks change
// with the framework, so only framework/telemetry implements them.
func WithObserver(o observe.Observer) Option { return func(s *Service) { s.observer = o } }

// propagator is what publishes through c inject the trace context with:
// the observer's own when it has one (telemetry's), so that one setting
// governs both injection and extraction; otherwise the global one.
func (c *Conn) propagator() propagation.TextMapPropagator {
	if p, ok := c.observer.(observe.Propagating); ok {
		return p.Propagator()
	}
	return otel.GetTextMapPropagator()
}

// subscriptionInfo describes s to an observer.
func (s *Subscription) subscriptionInfo() observe.SubscriptionInfo {
	return observe.SubscriptionInfo{
		Stream: s.stream, Consumer: s.durable, Filters: append([]string(nil), s.filters...), Subject: s.subject,
		Concurrency: s.opts.concurrency, Prefetch: s.opts.prefetch, MaxDeliver: s.opts.maxDeliver,
		AckWait: s.opts.ackWait, Group: s.partGroup, Partition: s.partition,
	}
}

// delivery describes m to an observer.
func delivery(m *Message) observe.Delivery {
	return observe.Delivery{Subject: m.Subject, Header: m.Header, Size: len(m.Data), NumDelivered: m.NumDelivered,
		StreamSeq: m.StreamSeq, EventID: m.Envelope.ID, EventType: m.Envelope.Type}
}
