package capacity

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// syntheticSampler holds 11 samples, 1s apart, of an unfiltered consumer
// receiving 100/s and processing 50/s with 1000 waiting at the start.
// Hand-computed: λ = 100, processed = μ = 50 (saturated, 1 instance),
// backlog 1500, B(15s) = 2250, replicas (100 + 2250/45)/50 = 3, drain
// 15s + 2250/(150−100) = 60s.
func syntheticSampler(t *testing.T) *Sampler {
	t.Helper()
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s := &Sampler{stream: "ORDERS", consumer: "billing", interval: time.Second, window: 100}
	for i := range 11 {
		s.samples = append(s.samples, Sample{
			At:             t0.Add(time.Duration(i) * time.Second),
			NumPending:     uint64(1000 + 50*i),
			Delivered:      jetstream.SequenceInfo{Consumer: uint64(50 * i), Stream: uint64(50 * i)},
			AckFloor:       jetstream.SequenceInfo{Consumer: uint64(50 * i), Stream: uint64(50 * i)},
			MaxAckPending:  1000,
			OldestSeq:      uint64(50*i + 1),
			StreamFirstSeq: 1, StreamFirstTime: t0.Add(-10 * time.Second),
			StreamLastSeq: uint64(1050 + 100*i), StreamLastTime: t0.Add(time.Duration(i) * time.Second),
		})
	}
	return s
}

func TestEstimateSynthetic(t *testing.T) {
	s := syntheticSampler(t)
	e := NewEstimator(Params{StartupDelay: 15 * time.Second})
	est, err := e.Estimate("ORDERS", "billing", s.Samples())
	if err != nil {
		t.Fatal(err)
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if got < want-1e-6 || got > want+1e-6 {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	near("λ", est.Arrival.PerSecond, 100)
	// 1000 arrivals in 10 s, evenly (φ = 1): standard error √(100/10).
	if se := est.Arrival.StdErr; se < 3.16 || se > 3.17 {
		t.Errorf("λ standard error %v, want √10 ≈ 3.162", se)
	}
	near("processed", est.Processed.PerSecond, 50)
	near("μ", est.ServiceRate.PerSecond, 50)
	near("ρ", est.Utilisation, 2)
	if est.ServiceSource != SourceSaturated || est.Status != StatusWarn || est.Drains {
		t.Errorf("source %s status %s drains %v; want saturated, WARN, never drains", est.ServiceSource, est.Status, est.Drains)
	}
	if est.Plan.Total != 3 || est.Plan.Add != 2 || time.Duration(est.Plan.Drain).Round(time.Millisecond) != time.Minute {
		t.Errorf("plan %+v, want 3 instances draining in 60s", est.Plan)
	}
	// What if: nothing added never drains; 3 more drain in 15s + 2250/(200−100) = 37.5s.
	if pr, ok := est.Predict(0); !ok || pr.Drains {
		t.Errorf("Predict(0) = %+v, want never drains", pr)
	}
	if pr, ok := est.Predict(3); !ok || !pr.Drains || absDur(time.Duration(pr.Drain)-37500*time.Millisecond) > time.Millisecond || len(pr.Curve) < 2 {
		t.Errorf("Predict(3) drains %v in %s, want 37.5s", pr.Drains, time.Duration(pr.Drain))
	}
	if est.SteadyReplicas != 3 { // ⌈100 / (50·0.8)⌉ = ⌈2.5⌉
		t.Errorf("steady replicas %d, want 3", est.SteadyReplicas)
	}
	// Time lag by interpolation: no timestamps were read. The oldest
	// unprocessed is seq 501; the table has (1, t0−10s) and (1050+100i, t0+i).
	// 501 lies between seq 1 and seq 1050: t0 − 10s + 500/1049·10s.
	wantLag := 10*time.Second + 10*time.Second - time.Duration(500*int64(10*time.Second)/1049)
	if est.TimeLagSource != "interpolated" || absDur(time.Duration(est.TimeLag)-wantLag) > 10*time.Millisecond {
		t.Fatalf("time lag %s from %q, want %s interpolated", time.Duration(est.TimeLag), est.TimeLagSource, wantLag)
	}
	// Once spare capacity appears, μ stays the earlier saturated one.
	idle := append(s.Samples(), Sample{At: s.samples[10].At.Add(time.Second), Delivered: jetstream.SequenceInfo{Consumer: 2100, Stream: 2100}, AckFloor: jetstream.SequenceInfo{Stream: 2100}})
	est2, _ := e.Estimate("ORDERS", "billing", idle)
	if est2.ServiceSource != SourceEarlierSaturated || est2.ServiceRate.PerSecond != 50 || est2.Status != StatusOK {
		t.Errorf("after draining: μ %v from %s, status %s; want 50 from %s, OK", est2.ServiceRate.PerSecond, est2.ServiceSource, est2.Status, SourceEarlierSaturated)
	}
}
