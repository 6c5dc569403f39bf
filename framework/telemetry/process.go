package telemetry

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/wire"
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
	pool   sync.Pool // *processState
}

// Subscribed implements framework.Observer.
func (o *Observer) Subscribed(info framework.SubscriptionInfo) framework.SubscriptionObserver {
	if o == nil { // a typed nil in the framework.Observer interface
		return nil
	}
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
	s.pool.New = newProcessState
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
	p := s.pool.Get().(*processState)
	p.s, p.m = s, m
	in := s.o.inst
	// One check for all instruments: they share a provider. Remembered so
	// that end matches what start recorded (in-flight stays balanced).
	if p.metrics = in.consumed.Enabled(ctx); p.metrics {
		p.start = time.Now()
		in.consumed.Add(ctx, 1, s.add...)
		if m.NumDelivered > 1 {
			in.redelivered.Add(ctx, 1, s.add...)
		}
		in.inFlight.Add(ctx, 1, s.add...)
	}

	p.fields = readHeaderFields(m.Header)
	ctx = s.o.prop.Extract(ctx, &p.fields)
	p.span = noSpan
	if s.o.spansOn() {
		producer := trace.SpanContextFromContext(ctx)
		ctx, p.span = s.o.tracer.Start(ctx, s.spanName, s.start...)
		if p.span.IsRecording() {
			s.describe(p.span, producer, m)
		}
	}
	return ctx, p.endFn
}

// describe sets the attributes of a recording process span.
func (s *subscriptionObserver) describe(span trace.Span, producer trace.SpanContext, m *framework.Message) {
	// Added after the start so that a no-op tracer costs no allocation;
	// samplers therefore see the parent but not the link.
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

// processState is one delivery in flight. It is pooled, and its end
// function is bound once, so that observing a delivery allocates nothing
// of its own; the framework calls end exactly once.
type processState struct {
	s       *subscriptionObserver
	m       *framework.Message
	span    trace.Span
	start   time.Time
	metrics bool
	fields  headerFields
	endFn   framework.ProcessEnd
}

func newProcessState() any {
	p := &processState{}
	p.endFn = p.end
	return p
}

func (p *processState) end(st framework.Settlement) {
	s, m, span := p.s, p.m, p.span
	if p.metrics {
		s.measure(p.start, st)
	}
	if span.IsRecording() {
		s.annotate(span, m, st)
	}
	span.End()
	*p = processState{endFn: p.endFn}
	s.pool.Put(p)
}

func (s *subscriptionObserver) measure(start time.Time, st framework.Settlement) {
	in := s.o.inst
	ctx := context.Background()
	in.inFlight.Add(ctx, -1, s.add...)
	took := time.Since(start)
	in.processTime.Record(ctx, took.Seconds(), s.record...)
	if s.info.AckWait > 0 && took > s.info.AckWait {
		in.overran.Add(ctx, 1, s.add...)
	}
	if st.Err != nil {
		in.failed.Add(ctx, 1, s.add...)
		if errors.Is(st.Err, framework.ErrMaxHandlerTime) {
			in.timedOut.Add(ctx, 1, s.add...)
		}
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
			attribute.String("jetkit.dead_letter.subject", wire.DeadLetterSubject(s.info.Stream, s.info.Consumer))))
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
