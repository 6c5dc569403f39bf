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
	"github.com/jetkit/jetkit/framework/internal/observe"
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
	info     observe.SubscriptionInfo
	spanName string
	base     []attribute.KeyValue // span attributes common to every delivery
	// Prebuilt option slices: passing them with ... allocates nothing.
	add    []metric.AddOption    // labels: subject, stream, consumer (bounded)
	record []metric.RecordOption // the same labels
	start  []trace.SpanStartOption
	pool   sync.Pool // *processState
	// owned labels the partition this subscription consumes (nil: not a
	// partition of a consumer group).
	owned []metric.AddOption
}

// Subscribed implements observe.Observer.
func (o *Observer) Subscribed(info observe.SubscriptionInfo) observe.SubscriptionObserver {
	if o == nil { // a typed nil in the observe.Observer interface
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
	if info.Group != "" {
		s.owned = []metric.AddOption{attrSet(systemNATS, AttrStream.String(info.Stream),
			semconv.MessagingConsumerGroupName(info.Group), AttrPartition.Int(info.Partition))}
		o.inst.partitionOwned.Add(context.Background(), 1, s.owned...)
	}
	return s
}

// Stopped implements observe.SubscriptionObserver: a partition this
// instance no longer consumes counts 0.
func (s *subscriptionObserver) Stopped() {
	if s.owned != nil {
		s.o.inst.partitionOwned.Add(context.Background(), -1, s.owned...)
	}
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
func (s *subscriptionObserver) StartProcess(ctx context.Context, d observe.Delivery) (context.Context, observe.ProcessEnd) {
	p := s.pool.Get().(*processState)
	p.s, p.d = s, d
	in := s.o.inst
	// One check for all instruments: they share a provider. Remembered so
	// that end matches what start recorded (in-flight stays balanced).
	if p.metrics = in.consumed.Enabled(ctx); p.metrics {
		p.start = time.Now()
		in.consumed.Add(ctx, 1, s.add...)
		if d.NumDelivered > 1 {
			in.redelivered.Add(ctx, 1, s.add...)
		}
		in.inFlight.Add(ctx, 1, s.add...)
	}

	p.fields = readHeaderFields(d.Header)
	ctx = s.o.prop.Extract(ctx, &p.fields)
	p.span = noSpan
	if s.o.spansOn() {
		producer := trace.SpanContextFromContext(ctx)
		ctx, p.span = s.o.tracer.Start(ctx, s.spanName, s.start...)
		if p.span.IsRecording() {
			s.describe(p.span, producer, &p.d)
		}
	}
	return ctx, p.endFn
}

// describe sets the attributes of a recording process span.
func (s *subscriptionObserver) describe(span trace.Span, producer trace.SpanContext, d *observe.Delivery) {
	// Added after the start so that a no-op tracer costs no allocation;
	// samplers therefore see the parent but not the link.
	if producer.IsValid() {
		span.AddLink(trace.Link{SpanContext: producer})
	}
	attrs := make([]attribute.KeyValue, 0, len(s.base)+8)
	attrs = append(attrs, s.base...)
	attrs = append(attrs,
		semconv.MessagingDestinationName(d.Subject),
		semconv.MessagingMessageBodySize(d.Size),
		AttrDeliveryCount.Int64(int64(d.NumDelivered)),
		AttrStreamSeq.Int64(int64(d.StreamSeq)))
	if d.Subject != s.info.Subject {
		attrs = append(attrs, semconv.MessagingDestinationTemplate(s.info.Subject))
	}
	if d.EventID != "" {
		attrs = append(attrs, semconv.MessagingMessageID(d.EventID), AttrEventType.String(d.EventType))
	}
	span.SetAttributes(attrs...)
}

// processState is one delivery in flight. It is pooled, and its end
// function is bound once, so that observing a delivery allocates nothing
// of its own; the framework calls end exactly once.
type processState struct {
	s       *subscriptionObserver
	d       observe.Delivery
	span    trace.Span
	start   time.Time
	metrics bool
	fields  headerFields
	endFn   observe.ProcessEnd
}

func newProcessState() any {
	p := &processState{}
	p.endFn = p.end
	return p
}

func (p *processState) end(st observe.Settlement) {
	s, span := p.s, p.span
	if p.metrics {
		s.measure(p.start, st)
	}
	if span.IsRecording() {
		s.annotate(span, p.d.NumDelivered, st)
	}
	span.End()
	*p = processState{endFn: p.endFn}
	s.pool.Put(p)
}

func (s *subscriptionObserver) measure(start time.Time, st observe.Settlement) {
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
	case observe.Acked:
		in.processed.Add(ctx, 1, s.add...)
	case observe.Retried, observe.DeadLetterFailed:
		in.retried.Add(ctx, 1, s.add...)
	case observe.DeadLettered:
		in.deadLettered.Add(ctx, 1, s.add...)
	case observe.HandedBack:
		in.handedBack.Add(ctx, 1, s.add...)
	case observe.AckFailed:
		in.ackFailed.Add(ctx, 1, s.add...)
	}
}

// annotate records the outcome on the span: the error, and retries and
// dead-letters as span events.
func (s *subscriptionObserver) annotate(span trace.Span, numDelivered uint64, st observe.Settlement) {
	span.SetAttributes(AttrOutcome.String(st.Outcome.String()))
	if st.Err != nil {
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(st.Err)))
		span.RecordError(st.Err)
		span.SetStatus(codes.Error, truncate(st.Err.Error(), maxStatusErrorLen))
	}
	delivery := AttrDeliveryCount.Int64(int64(numDelivered))
	switch st.Outcome {
	case observe.Retried:
		span.AddEvent(EventRetry, trace.WithAttributes(delivery, AttrMaxDeliver.Int(s.info.MaxDeliver),
			AttrRetryDelay.Int64(st.Delay.Milliseconds())))
	case observe.DeadLettered:
		span.AddEvent(EventDeadLetter, trace.WithAttributes(delivery, AttrDLQReason.String(st.Reason),
			attribute.String("jetkit.dead_letter.subject", wire.DeadLetterSubject(s.info.Stream, s.info.Consumer))))
	case observe.DeadLetterFailed:
		span.AddEvent(EventDLQFailed, trace.WithAttributes(delivery, AttrDLQReason.String(st.Reason),
			AttrRetryDelay.Int64(st.Delay.Milliseconds())))
	case observe.HandedBack:
		span.AddEvent(EventHandedBack, trace.WithAttributes(delivery))
	case observe.AckFailed:
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
