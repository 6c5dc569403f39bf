package telemetry_test

import (
	"context"
	"os"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/testenv"
)

// TestMain installs the W3C propagator globally, as telemetry.Setup does:
// framework's publish path injects trace context with the global propagator.
func TestMain(m *testing.M) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	os.Exit(m.Run())
}

type orderCreated struct {
	ID  string `json:"id"`
	Qty int    `json:"qty"`
}

type stockReserved struct {
	OrderID string `json:"order_id"`
}

var (
	ordersStream = framework.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}
	stockStream  = framework.StreamSpec{Name: "STOCK", Subjects: []string{"stock.>"}}
	orderTopic   = framework.MustNewTopic[orderCreated]("orders.created.v1", framework.Keyed())
	stockTopic   = framework.MustNewTopic[stockReserved]("stock.reserved.v1")
)

// rig is an instrumented service on an embedded server, with in-memory
// span and metric readers.
type rig struct {
	srv    *testenv.Server
	svc    *framework.Service
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
}

func newRig(t *testing.T, edit ...func(*framework.Config)) *rig {
	t.Helper()
	return newRigWith(t, nil, edit...)
}

// newRigWith is newRig with extra service options (e.g. a logger).
func newRigWith(t *testing.T, opts []framework.Option, edit ...func(*framework.Config)) *rig {
	t.Helper()
	r := &rig{srv: testenv.Start(t), spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(r.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
	obs, err := telemetry.NewObserver(telemetry.WithTracerProvider(tp), telemetry.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	r.svc = newService(t, r.srv, "order", append([]framework.Option{framework.WithObserver(obs)}, opts...), edit...)
	return r
}

func newService(t testing.TB, srv *testenv.Server, name string, opts []framework.Option, edit ...func(*framework.Config)) *framework.Service {
	t.Helper()
	cfg := srv.Config(name)
	cfg.RetryInitial = 20 * time.Millisecond
	cfg.RetryMax = 100 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	for _, e := range edit {
		e(&cfg)
	}
	ctx := context.Background()
	svc := testenv.NewService(t, cfg, opts...)
	for _, spec := range []framework.StreamSpec{ordersStream, stockStream} {
		if _, err := svc.EnsureStream(ctx, spec); err != nil {
			t.Fatalf("EnsureStream %s: %v", spec.Name, err)
		}
	}
	return svc
}

// waitSpans waits until the exporter holds at least n spans and returns them.
func (r *rig) waitSpans(t *testing.T, n int) tracetest.SpanStubs {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, "spans exported", func() bool { return len(r.spans.GetSpans()) >= n })
	return r.spans.GetSpans()
}
