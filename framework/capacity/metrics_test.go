package capacity

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// gaugeValues collects the gauges the reader sees: name → value.
func gaugeValues(t *testing.T, r *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			g, ok := m.Data.(metricdata.Gauge[float64])
			if !ok {
				t.Fatalf("%s is %T, want a float64 gauge", m.Name, m.Data)
			}
			for _, dp := range g.DataPoints {
				if dp.Value < 0 {
					t.Errorf("%s reports %v: a negative sentinel", m.Name, dp.Value)
				}
				out[m.Name] = dp.Value
			}
		}
	}
	return out
}

// While μ is unknown the replicas gauges are left out, never -1; once μ
// is known they report the count.
func TestMetricsOmitUnknownReplicas(t *testing.T) {
	e := NewEstimator(Params{Instances: 2})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	if _, err := RegisterMetrics(mp.Meter(MeterName), NamedEstimator{Stream: "S", Consumer: "C", Estimator: e}); err != nil {
		t.Fatal(err)
	}
	// Keeping up, μ unknown (not saturated, no local timing).
	var samples []Sample
	for s := 0; s <= 5; s++ {
		d := uint64(100 + 20*s)
		samples = append(samples, Sample{At: simT0.Add(time.Duration(s) * time.Second), NumAckPending: 1, MaxAckPending: 1000, NumWaiting: 1,
			Delivered: jetstream.SequenceInfo{Consumer: d, Stream: d}, AckFloor: jetstream.SequenceInfo{Consumer: d, Stream: d}})
	}
	est, err := e.Estimate("S", "C", samples)
	if err != nil {
		t.Fatal(err)
	}
	if est.ReplicasNeeded != -1 {
		t.Fatalf("replicas %d, want unknown (-1) with μ unknown", est.ReplicasNeeded)
	}
	got := gaugeValues(t, reader)
	for _, name := range []string{MetricReplicasNeeded, MetricReplicasSteady, MetricServiceRate, MetricUtilisation} {
		if v, ok := got[name]; ok {
			t.Errorf("%s observed as %v while unknown; want it left out", name, v)
		}
	}
	if got[MetricArrivalRate] != 20 {
		t.Errorf("arrival rate gauge %v, want 20 (the known gauges still report)", got[MetricArrivalRate])
	}

	// μ known: the count is reported.
	e2 := NewEstimator(Params{Instances: 2, ServiceRate: 10})
	reader2 := sdkmetric.NewManualReader()
	mp2 := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader2))
	defer func() { _ = mp2.Shutdown(context.Background()) }()
	if _, err := RegisterMetrics(mp2.Meter(MeterName), NamedEstimator{Stream: "S", Consumer: "C", Estimator: e2}); err != nil {
		t.Fatal(err)
	}
	if _, err := e2.Estimate("S", "C", samples); err != nil {
		t.Fatal(err)
	}
	if v, ok := gaugeValues(t, reader2)[MetricReplicasNeeded]; !ok || v != 3 {
		t.Errorf("replicas_needed gauge %v (observed %v), want 3 = ⌈20/(10·0.8)⌉", v, ok)
	}
}
