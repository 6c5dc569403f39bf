package bench

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/middleware"
	"github.com/jetkit/jetkit/framework/telemetry"
)

// DefaultMiddleware is the middleware a jetkit service installs by
// default, middleware.Defaults (logging at Info, in-process retry,
// recover), with names for the report. Its logger discards records, like
// a service logging at Info while nothing fails.
func DefaultMiddleware() ([]framework.Middleware, []string) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return middleware.Defaults(middleware.Options{Logger: log}), []string{"logging", "retry (recovers panics)"}
}

// DefaultObserver is jetkit's telemetry observer over the global
// OpenTelemetry providers: tracing and metrics instrumented, no exporter
// configured, as a service runs until it sets one up.
func DefaultObserver() (*telemetry.Observer, string, error) {
	o, err := telemetry.NewObserver()
	if err != nil {
		return nil, "", fmt.Errorf("telemetry observer: %w", err)
	}
	return o, "telemetry (no exporter)", nil
}
