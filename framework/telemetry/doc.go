// Package telemetry is jetkit's OpenTelemetry instrumentation: traces and
// metrics for every publish and delivery, following the OpenTelemetry
// messaging semantic conventions, a set-up helper that configures exporters
// from the standard OTEL_* environment variables, and a slog handler that
// stamps log records with the active trace and span ids.
//
//	tel, err := telemetry.Setup(ctx, telemetry.SetupOptions{ServiceName: cfg.ServiceName})
//	...
//	defer tel.Shutdown(context.Background())
//	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(os.Stderr, nil)))
//	svc, err := framework.New(ctx, cfg, framework.WithObserver(tel.Observer()), framework.WithLogger(log))
//
// Spans: "publish <subject>" (PRODUCER) around each publish, whose context
// travels in the W3C traceparent header, and "process <subject>" (CONSUMER)
// around the whole handler chain of each delivery, a child of the
// producer's span with a link to it. Retries, dead-letters, hand-backs and
// failed acks are span events; failures set error.type and the span status.
// <subject> is the topic's base subject (or the subscription filter), never
// the per-message key, so span names and metric labels stay bounded.
//
// The framework package does not import this one: it calls internal
// hooks that Observer implements; framework.WithObserver takes it.
package telemetry
