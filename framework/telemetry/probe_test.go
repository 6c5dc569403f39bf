package telemetry_test

import (
	"context"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/jetkit/jetkit/framework/internal/observe"
	"github.com/jetkit/jetkit/framework/telemetry"
)

// lateProvider behaves like the global tracer provider: unconfigured (no-op
// spans with an empty context) until an SDK provider is set.
type lateProvider struct {
	embedded.TracerProvider
	sdk atomic.Pointer[sdktrace.TracerProvider]
}

func (p *lateProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return &lateTracer{p: p, name: name}
}

type lateTracer struct {
	embedded.Tracer
	p    *lateProvider
	name string
}

func (t *lateTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if tp := t.p.sdk.Load(); tp != nil {
		return tp.Tracer(t.name).Start(ctx, name, opts...)
	}
	return tracenoop.NewTracerProvider().Tracer(t.name).Start(ctx, name, opts...)
}

// An observer made before the SDK is installed starts no spans, then picks
// the SDK up within a bounded number of messages.
func TestObserverPicksUpALateTracerProvider(t *testing.T) {
	late := &lateProvider{}
	obs, err := telemetry.NewObserver(telemetry.WithTracerProvider(late))
	if err != nil {
		t.Fatal(err)
	}
	info := observe.PublishInfo{Subject: "orders.created.v1", EventType: "orders.created.v1"}
	publish := func(n int) {
		for range n {
			_, end := obs.StartPublish(context.Background(), info)
			end(nil, nil)
		}
	}
	publish(10)

	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	late.sdk.Store(tp)
	publish(2048) // two probe intervals: the provider is noticed within them
	got := spans.GetSpans()
	if len(got) == 0 {
		t.Fatal("no span after the SDK was installed and 2048 publishes")
	}
	for _, s := range got {
		if s.Name != "publish orders.created.v1" {
			t.Fatalf("unexpected span %q (the probe must never be exported)", s.Name)
		}
	}
	before := len(got)
	publish(5)
	if n := len(spans.GetSpans()) - before; n != 5 {
		t.Fatalf("once picked up every publish is traced: got %d spans for 5 publishes", n)
	}
}
