// Command inventory runs the sample inventory service. It is configured only by
// environment variables (its one flag, -healthcheck, probes a running
// instance's /readyz for container health checks): the framework's with the prefix INVENTORY_ (INVENTORY_NATS_URL,
// INVENTORY_CONCURRENCY, ... see services/README.md), OpenTelemetry's OTEL_* (e.g.
// OTEL_METRICS_EXPORTER=prometheus serves /metrics), and its own:
//
//	INVENTORY_HTTP_ADDR   address of the HTTP API (default :8082)
//	INVENTORY_SEED        stock to create if missing, e.g. apple:100,pear:20
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

func main() { servicemain.Main("inventory", run, healthcheck) }

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
		return own, fmt.Errorf("%s_HTTP_ADDR / %s_SEED: %w", envPrefix, envPrefix, err)
	}
	return own, nil
}

func run(ctx context.Context) error {
	cfg := framework.DefaultConfig()
	cfg.ServiceName = "inventory"
	cfg, err := cfg.FromEnv(envPrefix) // INVENTORY_SERVICE_NAME overrides it
	if err != nil {
		return err
	}
	own, err := loadOwn()
	if err != nil {
		return err
	}
	return servicemain.Run(ctx, servicemain.Spec{
		Name: "inventory", EnvPrefix: envPrefix, Config: cfg, HTTPAddr: own.HTTPAddr,
		// Log records carry the trace and span ids of the handler's context;
		// durations read "20s", not nanoseconds.
		Logger: slog.New(telemetry.LogHandler(slog.NewJSONHandler(os.Stderr,
			&slog.HandlerOptions{ReplaceAttr: telemetry.ReplaceDurations}))),
		Start: func(ctx context.Context, svc *framework.Service, probes ...health.Option) (http.Handler, error) {
			inv, err := inventory.New(ctx, svc, nil)
			if err != nil {
				return nil, err
			}
			if err := inv.SeedStock(ctx, own.Seed); err != nil {
				return nil, err
			}
			return inv.Handler(probes...), nil
		},
	})
}
