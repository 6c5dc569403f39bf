package telemetry_test

import (
	"context"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/jetkit/jetkit/framework/internal/observe"
	"github.com/jetkit/jetkit/framework/telemetry"
)

// lateMeterProvider behaves like the global meter provider: its
// instruments record nothing and report themselves disabled until an SDK
// is installed (on), then they record into the SDK.
type lateMeterProvider struct {
	embedded.MeterProvider
	sdk *sdkmetric.MeterProvider
	on  *atomic.Bool
}

func (p lateMeterProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return lateMeter{Meter: p.sdk.Meter(name, opts...), on: p.on}
}

type lateMeter struct {
	metric.Meter
	on *atomic.Bool
}

func (m lateMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c, err := m.Meter.Int64Counter(name, opts...)
	return lateCounter{Int64Counter: c, on: m.on}, err
}

func (m lateMeter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	h, err := m.Meter.Float64Histogram(name, opts...)
	return lateHistogram{Float64Histogram: h, on: m.on}, err
}

type lateCounter struct {
	metric.Int64Counter
	on *atomic.Bool
}

func (c lateCounter) Add(ctx context.Context, v int64, opts ...metric.AddOption) {
	if c.on.Load() {
		c.Int64Counter.Add(ctx, v, opts...)
	}
}
func (c lateCounter) Enabled(ctx context.Context) bool {
	return c.on.Load() && c.Int64Counter.Enabled(ctx)
}

type lateHistogram struct {
	metric.Float64Histogram
	on *atomic.Bool
}

func (h lateHistogram) Record(ctx context.Context, v float64, opts ...metric.RecordOption) {
	if h.on.Load() {
		h.Float64Histogram.Record(ctx, v, opts...)
	}
}
func (h lateHistogram) Enabled(ctx context.Context) bool {
	return h.on.Load() && h.Float64Histogram.Enabled(ctx)
}

// Over a meter provider that records nothing, a publish is not measured,
// but the end it gets is still safe to call; once the provider records,
// every publish is measured.
func TestPublishMetricsStartWhenTheProviderDoes(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	sdk := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = sdk.Shutdown(context.Background()) }()
	var on atomic.Bool
	obs, err := telemetry.NewObserver(telemetry.WithMeterProvider(lateMeterProvider{sdk: sdk, on: &on}),
		telemetry.WithTracerProvider(tracenoop.NewTracerProvider()))
	if err != nil {
		t.Fatal(err)
	}
	info := observe.PublishInfo{Subject: "orders.created.v1", EventType: "orders.created.v1"}
	publish := func(n int) {
		for range n {
			_, end := obs.StartPublish(context.Background(), info)
			if end == nil {
				t.Fatal("StartPublish returned a nil end")
			}
			end(nil, nil)
		}
	}
	publish(3) // not recorded: the provider records nothing yet
	on.Store(true)
	publish(2)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					counts[m.Name] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					counts[m.Name] += int64(p.Count)
				}
			}
		}
	}
	if counts[telemetry.MetricPublished] != 2 || counts[telemetry.MetricPublishTime] != 2 {
		t.Fatalf("published %d, publish durations %d; want 2 and 2 (the publishes after the provider started recording)",
			counts[telemetry.MetricPublished], counts[telemetry.MetricPublishTime])
	}
}
