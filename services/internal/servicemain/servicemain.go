// Package servicemain runs a sample service's command: the framework
// service with telemetry and the default middleware, the service's HTTP
// API, and a graceful shutdown when the context ends.
//
// The command itself loads the configuration (framework.LoadConfig and
// envconfig for its own variables) and builds the logger, so what it reads
// from its environment stays visible in its main package.
package servicemain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/health"
	"github.com/jetkit/jetkit/framework/middleware"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/internal/httpserver"
)

// telemetryFlushTimeout bounds the flush of traces and metrics at exit.
const telemetryFlushTimeout = 5 * time.Second

// Spec is one service command.
type Spec struct {
	// Name is the service's name: the default of Config.ServiceName (when
	// <EnvPrefix>_SERVICE_NAME is not set) and the subject of log lines.
	Name string
	// EnvPrefix is the prefix Config was loaded with, e.g. "ORDER".
	EnvPrefix string
	// Config is the framework configuration, from framework.LoadConfig.
	Config framework.Config
	// HTTPAddr is where the HTTP API listens, e.g. ":8081".
	HTTPAddr string
	// Logger receives the framework's and the command's logs.
	Logger *slog.Logger
	// Start builds the service on svc and returns its HTTP API, which must
	// serve probes (they include health.WithMetrics for /metrics). svc is
	// shut down by Run, also when Start fails.
	Start func(ctx context.Context, svc *framework.Service, probes ...health.Option) (http.Handler, error)
}

// Run runs the service until ctx ends (e.g. on SIGTERM) or the HTTP server
// fails, with framework.Service.Run. Traces and metrics follow the OTEL_* variables; with
// OTEL_METRICS_EXPORTER=prometheus the metrics are served at /metrics. The
// framework service gets logging, in-process retries and panic recovery in
// jetkit's fixed order, and no idempotency middleware: the sample handlers
// are idempotent by design. On the way out it stops taking requests first,
// then drains the event handlers, within Config.ShutdownTimeout.
func Run(ctx context.Context, spec Spec) error {
	cfg, log := spec.Config, spec.Logger
	if _, set := os.LookupEnv(spec.EnvPrefix + "_SERVICE_NAME"); !set {
		cfg.ServiceName = spec.Name
	}
	tel, err := telemetry.Setup(ctx, telemetry.SetupOptions{ServiceName: cfg.ServiceName})
	if err != nil {
		return err
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), telemetryFlushTimeout)
		defer cancel()
		if err := tel.Shutdown(flushCtx); err != nil {
			log.Warn("telemetry not flushed", "error", err)
		}
	}()

	svc, err := framework.New(ctx, cfg, framework.WithLogger(log), framework.WithObserver(tel.Observer()))
	if err != nil {
		return err
	}
	svc.Use(middleware.Defaults(middleware.Options{Logger: log})...)
	handler, err := spec.Start(ctx, svc, health.WithMetrics(tel.MetricsHandler()))
	if err != nil {
		return errors.Join(err, svc.Shutdown(context.Background()))
	}

	ln, err := net.Listen("tcp", spec.HTTPAddr)
	if err != nil {
		_ = svc.Shutdown(context.Background())
		return fmt.Errorf("HTTP server on %s: %w", spec.HTTPAddr, err)
	}
	srv := httpserver.New(handler, httpserver.Options{})
	// The HTTP API stops taking requests before the event handlers drain;
	// if it fails, the service stops.
	svc.OnShutdown(srv.Shutdown)
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			stop(fmt.Errorf("HTTP server on %s: %w", spec.HTTPAddr, err))
		}
	}()
	log.Info(spec.Name+" listening", "http", spec.HTTPAddr)
	err = svc.Run(runCtx)
	if cause := context.Cause(runCtx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = errors.Join(cause, err)
	}
	return err
}
