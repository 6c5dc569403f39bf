// Command order runs the sample order service. It is configured only by
// environment variables (its one flag, -healthcheck, probes a running
// instance's /readyz for container health checks): the framework's with the prefix ORDER_ (ORDER_NATS_URL,
// ORDER_CONCURRENCY, ... see services/README.md), OpenTelemetry's OTEL_* (e.g.
// OTEL_METRICS_EXPORTER=prometheus serves /metrics), and its own:
//
//	ORDER_HTTP_ADDR   address of the HTTP API (default :8081)
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/kelseyhightower/envconfig"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/health"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/services/internal/servicemain"
	"github.com/jetkit/jetkit/services/order"
)

// config is the service's own configuration, next to framework.Config.
type config struct {
	// HTTPAddr is where the HTTP API listens.
	HTTPAddr string `envconfig:"HTTP_ADDR" default:":8081"`
}

const envPrefix = "ORDER"

func main() { servicemain.Main("order", run, healthcheck) }

// healthcheck is the -healthcheck mode: is the service running with this
// environment ready?
func healthcheck(ctx context.Context) error {
	own, err := loadOwn()
	if err != nil {
		return err
	}
	return servicemain.CheckReady(ctx, own.HTTPAddr)
}

// loadOwn reads the service's own variables.
func loadOwn() (config, error) {
	var own config
	if err := envconfig.Process(envPrefix, &own); err != nil {
		return own, fmt.Errorf("%s_HTTP_ADDR: %w", envPrefix, err)
	}
	return own, nil
}

func run(ctx context.Context) error {
	cfg := framework.DefaultConfig()
	cfg.ServiceName = "order"
	cfg, err := cfg.FromEnv(envPrefix) // ORDER_SERVICE_NAME overrides it
	if err != nil {
		return err
	}
	own, err := loadOwn()
	if err != nil {
		return err
	}
	return servicemain.Run(ctx, servicemain.Spec{
		Name: "order", EnvPrefix: envPrefix, Config: cfg, HTTPAddr: own.HTTPAddr,
		// Log records carry the trace and span ids of the handler's context;
		// durations read "20s", not nanoseconds.
		Logger: slog.New(telemetry.LogHandler(slog.NewJSONHandler(os.Stderr,
			&slog.HandlerOptions{ReplaceAttr: telemetry.ReplaceDurations}))),
		Start: func(ctx context.Context, svc *framework.Service, probes ...health.Option) (http.Handler, error) {
			orders, err := order.New(ctx, svc, nil)
			if err != nil {
				return nil, err
			}
			return orders.Handler(probes...), nil
		},
	})
}
