package telemetry

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetkit/jetkit/framework/internal/observe"
	"github.com/jetkit/jetkit/internal/wire"
)

// publishLabels are computed once per topic subject.
type publishLabels struct {
	spanName string
	base     []attribute.KeyValue  // capacity == length: appends copy
	add      []metric.AddOption    // prebuilt: passing them with ... allocates nothing
	record   []metric.RecordOption // the same labels
	start    []trace.SpanStartOption
}

func (o *Observer) publishLabels(subject string) *publishLabels {
	if l, ok := o.pubLabels.Load(subject); ok {
		return l.(*publishLabels)
	}
	base := []attribute.KeyValue{systemNATS, semconv.MessagingDestinationName(subject), semconv.MessagingOperationName("publish")}
	l := &publishLabels{
		spanName: "publish " + subject,
		base:     base,
		add:      []metric.AddOption{attrSet(base...)},
		record:   []metric.RecordOption{attrSet(base...)},
		start:    []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)},
	}
	actual, _ := o.pubLabels.LoadOrStore(subject, l)
	return actual.(*publishLabels)
}

// StartPublish starts a PRODUCER span "publish <subject>" whose context the
// framework injects into the message headers (W3C traceparent), so the
// consumer's process span continues this trace.
func (o *Observer) StartPublish(ctx context.Context, info observe.PublishInfo) (context.Context, observe.PublishEnd) {
	if o == nil { // a typed nil in the observe.Observer interface
		return ctx, nil
	}
	spans := o.spansOn()
	if !spans && !o.inst.publishMetricsOn(ctx) {
		return ctx, skipPublishEnd // nothing would be recorded: no clock reads, no closure
	}
	l := o.publishLabels(info.Subject)
	start := time.Now()
	span := noSpan
	if spans {
		ctx, span = o.tracer.Start(ctx, l.spanName, l.start...)
	}
	return ctx, func(msg *nats.Msg, err error) {
		o.inst.publishTime.Record(context.Background(), time.Since(start).Seconds(), l.record...)
		if err != nil {
			o.inst.publishFailed.Add(context.Background(), 1,
				metric.WithAttributes(append(l.base[:len(l.base):len(l.base)], semconv.ErrorTypeKey.String(errorType(err)))...))
		} else {
			o.inst.published.Add(context.Background(), 1, l.add...)
		}
		if span.IsRecording() {
			attrs := make([]attribute.KeyValue, 0, 9)
			attrs = append(attrs, systemNATS, semconv.MessagingOperationTypeSend, semconv.MessagingOperationName("publish"),
				AttrEventType.String(info.EventType))
			if msg != nil {
				attrs = append(attrs, semconv.MessagingDestinationName(msg.Subject),
					semconv.MessagingMessageID(wire.HeaderValue(msg.Header, wire.HeaderID)),
					semconv.MessagingMessageBodySize(len(msg.Data)))
				if msg.Subject != info.Subject {
					attrs = append(attrs, semconv.MessagingDestinationTemplate(info.Subject))
				}
			} else {
				attrs = append(attrs, semconv.MessagingDestinationName(info.Subject))
			}
			if info.Async {
				attrs = append(attrs, attribute.Bool("jetkit.publish.async", true))
			}
			span.SetAttributes(attrs...)
			if err != nil {
				span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
		}
		span.End()
	}
}

// skipPublishEnd ends a publish that neither a span nor a metric observes.
func skipPublishEnd(*nats.Msg, error) {}

// publishMetricsOn reports whether any publish metric is recorded: false
// over a meter provider that is not configured (the global one before an
// SDK is installed, or a no-op one), so that such publishes skip their
// measurement. It asks on every publish, so an SDK installed later as the
// global provider is measured from then on.
func (in *instruments) publishMetricsOn(ctx context.Context) bool {
	return in.publishTime.Enabled(ctx) || in.published.Enabled(ctx) || in.publishFailed.Enabled(ctx)
}
