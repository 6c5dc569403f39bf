package capacity

import (
	"context"
	"time"
)

// Watch samples every interval and estimates after each sample until ctx
// ends, so that e.Last (and the gauges RegisterMetrics exports) stay
// current. fn, if not nil, receives each estimate. A failed sample is
// skipped (Sampler.Err says why); Watch returns ctx's error.
//
//	s, _ := capacity.NewSampler(svc.Conn().JS, "ORDERS", "inventory", capacity.Local(sub))
//	e := capacity.NewEstimator(capacity.Params{TargetDrain: time.Minute, StartupDelay: 15 * time.Second})
//	_, _ = capacity.RegisterMetrics(otel.Meter(capacity.MeterName),
//		capacity.NamedEstimator{Stream: "ORDERS", Consumer: "inventory", Estimator: e})
//	go capacity.Watch(ctx, s, e, nil)
func Watch(ctx context.Context, s *Sampler, e *Estimator, fn func(Estimate)) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if _, err := s.Sample(ctx); err == nil {
			if est, err := e.Estimate(s.stream, s.consumer, s.Samples()); err == nil && fn != nil {
				fn(est)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
