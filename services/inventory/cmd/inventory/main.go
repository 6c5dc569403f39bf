// Command inventory runs the sample inventory service. It is configured only by
// environment variables: the framework's with the prefix INVENTORY_ (INVENTORY_NATS_URL,
// INVENTORY_CONCURRENCY, ... see the README), OpenTelemetry's OTEL_* (e.g.
// OTEL_METRICS_EXPORTER=prometheus serves /metrics), and its own:
//
//	INVENTORY_HTTP_ADDR   address of the HTTP API (default :8082)
//	INVENTORY_SEED        stock to create if missing, e.g. apple:100,pear:20
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/health"
	"github.com/jetkit/jetkit/framework/middleware"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/services/inventory"
)

// config is the service's own configuration, next to framework.Config.
type config struct {
	// HTTPAddr is where the HTTP API listens.
	HTTPAddr string `envconfig:"HTTP_ADDR" default:":8082"`
	// Seed is stock created at start for SKUs that have none: sku:qty,...
	Seed map[string]int `envconfig:"SEED"`
}

const envPrefix = "INVENTORY"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "inventory:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Log records carry the trace and span ids of the handler's context.
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(os.Stderr, nil)))

	cfg, err := framework.LoadConfig(envPrefix)
	if err != nil {
		return err
	}
	if _, set := os.LookupEnv(envPrefix + "_SERVICE_NAME"); !set {
		cfg.ServiceName = "inventory"
	}
	var own config
	if err := envconfig.Process(envPrefix, &own); err != nil {
		return fmt.Errorf("%s_HTTP_ADDR / %s_SEED: %w", envPrefix, envPrefix, err)
	}

	// Traces and metrics per the OTEL_* variables; with
	// OTEL_METRICS_EXPORTER=prometheus the metrics are served at /metrics.
	tel, err := telemetry.Setup(ctx, telemetry.SetupOptions{ServiceName: cfg.ServiceName})
	if err != nil {
		return err
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(flushCtx); err != nil {
			log.Warn("telemetry not flushed", "error", err)
		}
	}()

	// Logging, in-process retries and panic recovery in jetkit's fixed
	// order. No idempotency middleware: the handlers are idempotent by
	// design (see the package doc).
	svc, err := framework.New(ctx, cfg, framework.WithLogger(log), framework.WithObserver(tel.Observer()),
		framework.WithMiddleware(middleware.Defaults(middleware.Options{Logger: log})...))
	if err != nil {
		return err
	}
	inv, err := inventory.New(ctx, svc)
	if err != nil {
		return errors.Join(err, svc.Shutdown(context.Background()))
	}
	if err := inv.SeedStock(ctx, own.Seed); err != nil {
		return errors.Join(err, svc.Shutdown(context.Background()))
	}

	srv := &http.Server{Addr: own.HTTPAddr, Handler: inv.Handler(health.WithMetrics(tel.MetricsHandler())), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	log.Info("inventory listening", "http", own.HTTPAddr)

	select {
	case <-ctx.Done():
	case err := <-served:
		_ = svc.Shutdown(context.Background())
		return fmt.Errorf("HTTP server on %s: %w", own.HTTPAddr, err)
	}
	// Stop taking requests first, then drain the event handlers.
	budget, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return errors.Join(srv.Shutdown(budget), svc.Shutdown(budget))
}
