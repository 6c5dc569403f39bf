package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/jetkit/jetkit/framework/internal/observe"
)

// SetupOptions are what Setup cannot read from OTEL_* variables.
type SetupOptions struct {
	// ServiceName is the service.name resource attribute when
	// OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) is
	// unset; pass the service's Config.ServiceName.
	ServiceName string
	// ServiceVersion is the service.version resource attribute, if known.
	ServiceVersion string
	// NoExportByDefault turns off traces and metrics whose
	// OTEL_TRACES_EXPORTER or OTEL_METRICS_EXPORTER is unset, instead of
	// OpenTelemetry's default, otlp: for local runs, where no collector
	// listens and every flush would fail. Set variables still apply.
	NoExportByDefault bool
}

// Telemetry is what Setup configured. Pass Observer to the service, mount
// MetricsHandler (the health package does), and call Shutdown last.
type Telemetry struct {
	observer       *Observer
	metricsHandler http.Handler
	tracing        bool
	metrics        string
	shutdown       []func(context.Context) error
}

// Setup configures the global OpenTelemetry tracer provider, meter provider
// and propagator from the standard environment variables, with
// go.opentelemetry.io/contrib/exporters/autoexport choosing exporters:
//
//	OTEL_TRACES_EXPORTER   otlp (default; none with NoExportByDefault), console, none
//	OTEL_METRICS_EXPORTER  otlp (default; none with NoExportByDefault), console, none, prometheus
//	OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf default, grpc), ...
//	OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG)
//	OTEL_SDK_DISABLED=true turns everything off
//
// With OTEL_METRICS_EXPORTER=prometheus the metrics are served by
// MetricsHandler (mounted at /metrics by framework/health) instead of a
// separate port. The propagator is always W3C trace context plus baggage.
// When both signals are off, Observer returns nil and jetkit does no
// instrumentation work at all.
//
//	tel, err := telemetry.Setup(ctx, telemetry.SetupOptions{ServiceName: cfg.ServiceName})
//	if err != nil { ... }
//	defer tel.Shutdown(context.Background())
//	svc, err := framework.New(ctx, cfg, framework.WithObserver(tel.Observer()))
func Setup(ctx context.Context, opts SetupOptions) (*Telemetry, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t := &Telemetry{metrics: "none"}
	if disabled, _ := strconv.ParseBool(os.Getenv("OTEL_SDK_DISABLED")); disabled {
		return t, nil
	}
	res, err := newResource(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := t.setupTracing(ctx, res, opts.NoExportByDefault); err != nil {
		return nil, err
	}
	if err := t.setupMetrics(ctx, res, opts.NoExportByDefault); err != nil {
		return nil, errors.Join(err, t.Shutdown(ctx))
	}
	if t.tracing || t.metrics != "none" {
		var opts []Option
		if !t.tracing {
			opts = append(opts, WithTracerProvider(tracenoop.NewTracerProvider()))
		}
		obs, err := NewObserver(opts...)
		if err != nil {
			return nil, errors.Join(err, t.Shutdown(ctx))
		}
		t.observer = obs
	}
	return t, nil
}

func newResource(ctx context.Context, opts SetupOptions) (*resource.Resource, error) {
	name := opts.ServiceName
	if name == "" { // the OpenTelemetry default: a service has no default name
		name = "unknown_service:" + filepath.Base(os.Args[0])
	}
	attrs := resource.WithAttributes(semconv.ServiceName(name))
	if opts.ServiceVersion != "" {
		attrs = resource.WithAttributes(semconv.ServiceName(name), semconv.ServiceVersion(opts.ServiceVersion))
	}
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the configured name.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), attrs, resource.WithFromEnv())
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry: build resource (check OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	return res, nil
}

// unset reports whether the exporter variable key is unset or blank.
func unset(key string) bool { return strings.TrimSpace(os.Getenv(key)) == "" }

func (t *Telemetry) setupTracing(ctx context.Context, res *resource.Resource, noExportByDefault bool) error {
	if noExportByDefault && unset("OTEL_TRACES_EXPORTER") {
		return nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return fmt.Errorf("telemetry: traces exporter from OTEL_TRACES_EXPORTER=%q (expected otlp, console or none): %w",
			os.Getenv("OTEL_TRACES_EXPORTER"), err)
	}
	if autoexport.IsNoneSpanExporter(exp) {
		return nil
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	t.tracing = true
	t.shutdown = append(t.shutdown, tp.Shutdown)
	return nil
}

func (t *Telemetry) setupMetrics(ctx context.Context, res *resource.Resource, noExportByDefault bool) error {
	if noExportByDefault && unset("OTEL_METRICS_EXPORTER") {
		return nil
	}
	var reader sdkmetric.Reader
	if strings.TrimSpace(os.Getenv("OTEL_METRICS_EXPORTER")) == "prometheus" {
		// Served by the health handler rather than autoexport's own port.
		reg := prometheus.NewRegistry()
		exp, err := promexporter.New(promexporter.WithRegisterer(reg))
		if err != nil {
			return fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		reader, t.metrics = exp, "prometheus"
		t.metricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	} else {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return fmt.Errorf("telemetry: metrics exporter from OTEL_METRICS_EXPORTER=%q (expected otlp, console, prometheus or none): %w",
				os.Getenv("OTEL_METRICS_EXPORTER"), err)
		}
		if autoexport.IsNoneMetricReader(r) {
			return nil
		}
		reader, t.metrics = r, "export"
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))
	otel.SetMeterProvider(mp)
	t.shutdown = append(t.shutdown, mp.Shutdown)
	return nil
}

// Observer is the instrumentation to pass to framework.WithObserver; nil
// when tracing and metrics are both off.
func (t *Telemetry) Observer() observe.Observer {
	if t == nil || t.observer == nil {
		return nil
	}
	return t.observer
}

// MetricsHandler serves the Prometheus exposition format when
// OTEL_METRICS_EXPORTER=prometheus; nil otherwise.
func (t *Telemetry) MetricsHandler() http.Handler {
	if t == nil {
		return nil
	}
	return t.metricsHandler
}

// Tracing reports whether spans are exported.
func (t *Telemetry) Tracing() bool { return t != nil && t.tracing }

// Shutdown flushes and stops the exporters, bounded by ctx. Call it after
// the service has shut down, so the last spans are exported.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	for i := len(t.shutdown) - 1; i >= 0; i-- {
		if err := t.shutdown[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	t.shutdown = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}
