package telemetry

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/internal/observe"
)

// Observer is jetkit's OpenTelemetry instrumentation: an observer
// that traces and measures every publish and every delivery. Give it to a
// service with framework.WithObserver. It is safe for concurrent use.
type Observer struct {
	tracer  trace.Tracer // nil when the provider is a no-op: no span is started
	tracing atomic.Bool  // the provider is configured: start spans (see spansOn)
	probes  atomic.Uint64
	inst    *instruments
	prop    propagation.TextMapPropagator

	// publish attribute sets per topic subject: bounded by the topics declared.
	pubLabels sync.Map // string -> *publishLabels
}

var _ observe.Observer = (*Observer)(nil)

// Option configures an Observer.
type Option func(*observerConfig)

type observerConfig struct {
	tp   trace.TracerProvider
	mp   metric.MeterProvider
	prop propagation.TextMapPropagator
}

// WithTracerProvider sets the tracer provider (default: the global one,
// otel.GetTracerProvider(), looked up when NewObserver runs). A
// go.opentelemetry.io/otel/trace/noop provider turns spans off entirely;
// the producer's trace context still reaches handlers.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *observerConfig) { c.tp = tp }
}

// WithMeterProvider sets the meter provider (default: the global one).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *observerConfig) { c.mp = mp }
}

// WithPropagator sets the propagator that writes the trace context into
// published messages and reads it from delivered ones (default: the
// global one, otel.GetTextMapPropagator()).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *observerConfig) { c.prop = p }
}

// NewObserver builds the instrumentation over the given (or global)
// providers. Over providers that are not configured (the globals before
// any SDK is installed) it starts no spans and records nothing, and costs
// a few hundred nanoseconds per message: reading the trace headers, so
// that handlers still see the producer's trace context. With no observer
// at all the framework skips instrumentation entirely.
//
// An SDK tracer provider installed globally after NewObserver is picked up
// within probeEvery messages (see spansOn).
func NewObserver(opts ...Option) (*Observer, error) {
	var c observerConfig
	for _, o := range opts {
		o(&c)
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.prop == nil {
		c.prop = otel.GetTextMapPropagator()
	}
	inst, err := newInstruments(c.mp.Meter(instrumentationScope))
	if err != nil {
		return nil, err
	}
	o := &Observer{inst: inst, prop: c.prop}
	if _, off := c.tp.(tracenoop.TracerProvider); !off {
		o.tracer = c.tp.Tracer(instrumentationScope)
		o.probe()
	}
	return o, nil
}

// Propagator is the propagator the observer's service injects and
// extracts trace context with (see WithPropagator).
func (o *Observer) Propagator() propagation.TextMapPropagator {
	if o == nil { // a typed nil given to framework.WithObserver
		return otel.GetTextMapPropagator()
	}
	return o.prop
}

// probeEvery is how many publishes and deliveries pass between two probes
// of a tracer provider that was not configured at the last probe.
const probeEvery = 1024

// spansOn reports whether to start spans. A tracer provider that is not
// configured (the global one before an SDK is set) would return a
// non-recording span for every message, which costs allocations and
// carries nothing; so until a probe finds a configured provider, no span
// is started, and the probe is repeated every probeEvery messages so that
// a provider installed later is picked up.
func (o *Observer) spansOn() bool {
	if o.tracing.Load() {
		return true
	}
	if o.tracer == nil || o.probes.Add(1)%probeEvery != 0 {
		return false
	}
	return o.probe()
}

// probe starts a root span and looks at its context: a configured SDK
// gives a new root span a valid trace id even when its sampler drops it;
// an unconfigured provider returns an empty context. The probe span is
// never ended, so it is never exported.
func (o *Observer) probe() bool {
	_, span := o.tracer.Start(context.Background(), "jetkit.telemetry.probe")
	if !span.SpanContext().IsValid() {
		return false
	}
	o.tracing.Store(true)
	return true
}

// noSpan stands in for a span when tracing is off: the context keeps the
// producer's trace context (extracted from the headers), so logs and
// onward publishes still carry it.
var noSpan = trace.SpanFromContext(context.Background())

// errorType is the error.type attribute: a small fixed set of values, so
// that it stays a bounded label.
func errorType(err error) string {
	var pe *framework.PanicError
	switch {
	case errors.Is(err, framework.ErrDecode):
		return "decode"
	case errors.As(err, &pe):
		return "panic"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, framework.ErrMessageTooLarge):
		return "message_too_large"
	case errors.Is(err, framework.ErrInvalidSubject):
		return "invalid_subject"
	case framework.IsPermanent(err):
		return "permanent"
	default:
		return "_OTHER"
	}
}

// attrSet builds a metric option from attributes once, so that hot paths
// do not sort attributes per measurement.
func attrSet(kvs ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(kvs...))
}
