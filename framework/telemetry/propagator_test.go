package telemetry_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/testenv"
)

// markPropagator writes one header of its own and reads it back; it knows
// nothing of W3C traceparent.
type markPropagator struct{}

func (markPropagator) Inject(_ context.Context, c propagation.TextMapCarrier) { c.Set("x-mark", "1") }
func (markPropagator) Extract(ctx context.Context, _ propagation.TextMapCarrier) context.Context {
	return ctx
}
func (markPropagator) Fields() []string { return []string{"x-mark"} }

// One propagator setting governs both directions: WithPropagator changes
// what publishes inject, not only what deliveries extract.
func TestWithPropagatorGovernsInjection(t *testing.T) {
	srv := testenv.Start(t)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	obs, err := telemetry.NewObserver(telemetry.WithTracerProvider(tp), telemetry.WithPropagator(markPropagator{}))
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(t, srv, "order", []framework.Option{framework.WithObserver(obs)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := orderTopic.Publish(ctx, svc, orderCreated{ID: "o-1"}, framework.WithKey("o-1"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := svc.Conn().JS.Stream(ctx, ack.Stream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get("x-mark") != "1" {
		t.Errorf("the configured propagator did not inject: headers %v", raw.Header)
	}
	if v := raw.Header.Get("traceparent"); v != "" {
		t.Errorf("the global propagator injected traceparent %q although the observer has its own", v)
	}
}
