package capacity

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// MeterName is the instrumentation scope of the capacity gauges.
const MeterName = "github.com/jetkit/jetkit/framework/capacity"

// Gauge names. The OpenTelemetry Prometheus exporter adds unit suffixes:
// jetkit_capacity_replicas_needed, jetkit_capacity_backlog,
// jetkit_capacity_status, jetkit_capacity_arrival_rate_per_second (also
// processed_rate, service_rate), jetkit_capacity_time_lag_seconds,
// jetkit_capacity_drain_time_seconds, jetkit_capacity_utilisation_ratio;
// each labelled stream and consumer.
const (
	MetricArrivalRate    = "jetkit.capacity.arrival_rate"
	MetricProcessedRate  = "jetkit.capacity.processed_rate"
	MetricServiceRate    = "jetkit.capacity.service_rate"
	MetricBacklog        = "jetkit.capacity.backlog"
	MetricTimeLag        = "jetkit.capacity.time_lag"
	MetricUtilisation    = "jetkit.capacity.utilisation"
	MetricDrainTime      = "jetkit.capacity.drain_time"
	MetricReplicasNeeded = "jetkit.capacity.replicas_needed"
	MetricReplicasSteady = "jetkit.capacity.replicas_steady"
	MetricStatus         = "jetkit.capacity.status"
)

// RegisterMetrics reports the newest estimate of each estimator as
// observable gauges on meter, labelled with stream and consumer. A gauge
// whose value is unknown (μ not measured yet, a backlog that never drains)
// is left out rather than reported as 0, so an autoscaler does not read a
// missing estimate as "no replicas needed". Unregister the returned
// registration when the estimators go away.
//
// replicas_needed is Estimate.ReplicasNeeded: the fewest instances that
// drain the backlog within the target drain time, new ones counted only
// after the start-up delay, and at least the steady-state count for the
// utilisation target. It goes down as well as up, so an autoscaler can
// follow it directly instead of raw lag (see the KEDA example in docs/capacity.md).
func RegisterMetrics(meter metric.Meter, streams ...NamedEstimator) (metric.Registration, error) {
	type gauge struct {
		name, unit, desc string
		value            func(e *Estimate) (float64, bool)
	}
	known := func(v float64) (float64, bool) { return v, v >= 0 }
	gauges := []gauge{
		{MetricArrivalRate, "{message}/s", "Arrival rate λ of messages matching the consumer's filter",
			func(e *Estimate) (float64, bool) { return e.Arrival.PerSecond, e.Arrival.Samples >= 2 }},
		{MetricProcessedRate, "{message}/s", "Rate messages are acknowledged",
			func(e *Estimate) (float64, bool) { return e.Processed.PerSecond, e.Processed.Samples >= 2 }},
		{MetricServiceRate, "{message}/s", "Service rate μ of one consumer instance",
			func(e *Estimate) (float64, bool) { return e.ServiceRate.PerSecond, e.ServiceRate.PerSecond > 0 }},
		{MetricBacklog, "{message}", "Messages pending or awaiting an ack",
			func(e *Estimate) (float64, bool) { return e.Backlog, true }},
		{MetricTimeLag, "s", "Age of the oldest unprocessed message",
			func(e *Estimate) (float64, bool) {
				return durationSeconds(e.TimeLag), e.TimeLagSource != "none" || e.Backlog == 0
			}},
		{MetricUtilisation, "1", "Utilisation ρ = λ / (instances · μ)",
			func(e *Estimate) (float64, bool) { return known(e.Utilisation) }},
		{MetricDrainTime, "s", "Time to drain the backlog at the current capacity",
			func(e *Estimate) (float64, bool) { return durationSeconds(e.Drain), e.Drains }},
		{MetricReplicasNeeded, "{instance}", "Instances to run: the fewest that drain the backlog within the target drain time (start-up delay included), and at least the steady-state count",
			func(e *Estimate) (float64, bool) { return known(float64(e.ReplicasNeeded)) }},
		{MetricReplicasSteady, "{instance}", "Instances that keep utilisation at the target in steady state",
			func(e *Estimate) (float64, bool) { return known(float64(e.SteadyReplicas)) }},
		{MetricStatus, "", "Consumer status: 0 OK, 1 WARN, 2 STALL, 3 STOP",
			func(e *Estimate) (float64, bool) { return float64(e.Status.Severity()), true }},
	}
	insts := make([]metric.Observable, len(gauges))
	byInst := make(map[metric.Float64ObservableGauge]gauge, len(gauges))
	for i, g := range gauges {
		gi, err := meter.Float64ObservableGauge(g.name, metric.WithUnit(g.unit), metric.WithDescription(g.desc))
		if err != nil {
			return nil, fmt.Errorf("capacity metrics: create gauge %s: %w", g.name, err)
		}
		insts[i] = gi
		byInst[gi] = g
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, s := range streams {
			e := s.Estimator.Last()
			if e == nil {
				continue
			}
			attrs := metric.WithAttributes(attribute.String("stream", s.Stream), attribute.String("consumer", s.Consumer))
			for gi, g := range byInst {
				if v, ok := g.value(e); ok {
					o.ObserveFloat64(gi, v, attrs)
				}
			}
		}
		return nil
	}, insts...)
	if err != nil {
		return nil, fmt.Errorf("capacity metrics: register callback: %w", err)
	}
	return reg, nil
}

// NamedEstimator is an estimator and the consumer it estimates.
type NamedEstimator struct {
	// Stream and Consumer label the gauges.
	Stream, Consumer string
	// Estimator supplies the newest estimate.
	Estimator *Estimator
}

func durationSeconds(s Seconds) float64 { return float64(s) / 1e9 }

// PrometheusHandler serves the capacity gauges of streams in the Prometheus
// exposition format, with its own meter provider (independent of the
// global one), for a standalone process such as `jetkit capacity --web`.
// Call shutdown when done.
func PrometheusHandler(streams ...NamedEstimator) (h http.Handler, shutdown func(context.Context) error, err error) {
	reg := prometheus.NewRegistry()
	exp, err := promexporter.New(promexporter.WithRegisterer(reg))
	if err != nil {
		return nil, nil, fmt.Errorf("capacity metrics: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	if _, err := RegisterMetrics(mp.Meter(MeterName), streams...); err != nil {
		return nil, nil, errors.Join(err, mp.Shutdown(context.Background()))
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}), mp.Shutdown, nil
}
