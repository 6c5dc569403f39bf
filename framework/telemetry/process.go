package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetkit/jetkit/framework"
)

// Span event names recorded on process spans.
const (
	EventRetry        = "retry"              // redelivery scheduled with backoff
	EventDeadLetter   = "dead_letter"        // copied to the dead-letter stream
	EventDLQFailed    = "dead_letter_failed" // the copy failed; retried later
	EventHandedBack   = "handed_back"        // returned unfinished at shutdown
	EventAckFailed    = "ack_failed"         // handled, but the ack failed
	operationProcess  = "process"
	maxStatusErrorLen = 256
)

// subscriptionObserver instruments one subscription. Everything that does
// not vary per message is computed here, once.
type subscriptionObserver struct {
	o        *Observer
	info     framework.SubscriptionInfo
	spanName string
	base     []attribute.KeyValue // span attributes common to every delivery
	// Prebuilt option slices: passing them with ... allocates nothing.
	add    []metric.AddOption    // labels: subject, stream, consumer (bounded)
	record []metric.RecordOption // the same labels
	start  []trace.SpanStartOption
}

// Subscribed implements framework.Observer.
func (o *Observer) Subscribed(info framework.SubscriptionInfo) framework.SubscriptionObserver {
	labels := attrSet(systemNATS, semconv.MessagingDestinationName(info.Subject),
		semconv.MessagingConsumerGroupName(info.Consumer), AttrStream.String(info.Stream))
	s := &subscriptionObserver{
		o:        o,
		info:     info,
		spanName: operationProcess + " " + info.Subject,
		add:      []metric.AddOption{labels},
		record:   []metric.RecordOption{labels},
		start:    []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)},
		base: []attribute.KeyValue{
			systemNATS, semconv.MessagingOperationTypeProcess, semconv.MessagingOperationName(operationProcess),
			semconv.MessagingConsumerGroupName(info.Consumer), semconv.MessagingDestinationSubscriptionName(info.Consumer),
			AttrStream.String(info.Stream), AttrMaxDeliver.Int(info.MaxDeliver),
		},
	}
	o.inst.limit.Record(context.Background(), int64(info.Concurrency), s.record...)
	return s
}

// StartProcess starts the CONSUMER span "process <subject>".
//
// Parent or link: the OpenTelemetry messaging conventions require a link
// from the process span to the message's creation context and allow it to
// also be the parent when one message is processed at a time, as here. jetkit
// does both: the process span is a child of the producer's publish span, so
// a request crossing several services over JetStream is one trace, and it
// carries a link to that same context for back-ends that follow links.
// A delivery without trace headers starts a new trace.
func (s *subscriptionObserver) StartProcess(ctx context.Context, m *framework.Message) (context.Context, framework.ProcessEnd) {
	start := time.Now()
	in := s.o.inst
	in.consumed.Add(ctx, 1, s.add...)
	if m.NumDelivered > 1 {
		in.redelivered.Add(ctx, 1, s.add...)
	}
	in.inFlight.Add(ctx, 1, s.add...)

	fields := readHeaderFields(m.Header)
	ctx = s.o.prop.Extract(ctx, &fields)
	producer := trace.SpanContextFromContext(ctx)
	span := noSpan
	if s.o.tracer != nil {
		ctx, span = s.o.tracer.Start(ctx, s.spanName, s.start...)
	}
	if span.IsRecording() {
		// Added after the start so that a no-op tracer costs no allocation;
		// samplers therefore do not see the link (they see the parent).
		if producer.IsValid() {
			span.AddLink(trace.Link{SpanContext: producer})
		}
		attrs := make([]attribute.KeyValue, 0, len(s.base)+8)
		attrs = append(attrs, s.base...)
		attrs = append(attrs,
			semconv.MessagingDestinationName(m.Subject),
			semconv.MessagingMessageBodySize(len(m.Data)),
			AttrDeliveryCount.Int64(int64(m.NumDelivered)),
			AttrStreamSeq.Int64(int64(m.StreamSeq)))
		if m.Subject != s.info.Subject {
			attrs = append(attrs, semconv.MessagingDestinationTemplate(s.info.Subject))
		}
		if m.Envelope.ID != "" {
			attrs = append(attrs, semconv.MessagingMessageID(m.Envelope.ID), AttrEventType.String(m.Envelope.Type))
		}
		span.SetAttributes(attrs...)
	}
	return ctx, func(st framework.Settlement) { s.end(start, span, m, st) }
}

func (s *subscriptionObserver) end(start time.Time, span trace.Span, m *framework.Message, st framework.Settlement) {
	in := s.o.inst
	ctx := context.Background()
	in.inFlight.Add(ctx, -1, s.add...)
	in.processTime.Record(ctx, time.Since(start).Seconds(), s.record...)
	if st.Err != nil {
		in.failed.Add(ctx, 1, s.add...)
	}
	switch st.Outcome {
	case framework.OutcomeAcked:
		in.processed.Add(ctx, 1, s.add...)
	case framework.OutcomeRetried, framework.OutcomeDeadLetterFailed:
		in.retried.Add(ctx, 1, s.add...)
	case framework.OutcomeDeadLettered:
		in.deadLettered.Add(ctx, 1, s.add...)
	case framework.OutcomeHandedBack:
		in.handedBack.Add(ctx, 1, s.add...)
	case framework.OutcomeAckFailed:
		in.ackFailed.Add(ctx, 1, s.add...)
	}
	if span.IsRecording() {
		s.annotate(span, m, st)
	}
	span.End()
}

// annotate records the outcome on the span: the error, and retries and
// dead-letters as span events.
func (s *subscriptionObserver) annotate(span trace.Span, m *framework.Message, st framework.Settlement) {
	span.SetAttributes(AttrOutcome.String(st.Outcome.String()))
	if st.Err != nil {
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(st.Err)))
		span.RecordError(st.Err)
		span.SetStatus(codes.Error, truncate(st.Err.Error(), maxStatusErrorLen))
	}
	delivery := AttrDeliveryCount.Int64(int64(m.NumDelivered))
	switch st.Outcome {
	case framework.OutcomeRetried:
		span.AddEvent(EventRetry, trace.WithAttributes(delivery, AttrMaxDeliver.Int(s.info.MaxDeliver),
			AttrRetryDelay.Int64(st.Delay.Milliseconds())))
	case framework.OutcomeDeadLettered:
		span.AddEvent(EventDeadLetter, trace.WithAttributes(delivery, AttrDLQReason.String(st.Reason),
			attribute.String("jetkit.dead_letter.subject", framework.DeadLetterSubject(s.info.Stream, s.info.Consumer))))
	case framework.OutcomeDeadLetterFailed:
		span.AddEvent(EventDLQFailed, trace.WithAttributes(delivery, AttrDLQReason.String(st.Reason),
			AttrRetryDelay.Int64(st.Delay.Milliseconds())))
	case framework.OutcomeHandedBack:
		span.AddEvent(EventHandedBack, trace.WithAttributes(delivery))
	case framework.OutcomeAckFailed:
		span.AddEvent(EventAckFailed, trace.WithAttributes(delivery))
	}
	if st.SettleErr != nil {
		span.SetAttributes(attribute.String("jetkit.settle.error", truncate(st.SettleErr.Error(), maxStatusErrorLen)))
		if st.Err == nil {
			span.SetStatus(codes.Error, "settle: "+truncate(st.SettleErr.Error(), maxStatusErrorLen))
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
