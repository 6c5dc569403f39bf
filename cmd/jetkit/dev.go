package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/health"
	"github.com/jetkit/jetkit/framework/middleware"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/internal/httpserver"
	"github.com/jetkit/jetkit/internal/redact"
	"github.com/jetkit/jetkit/services/inventory"
	"github.com/jetkit/jetkit/services/order"
	"github.com/jetkit/jetkit/testenv/embedded"
)

// devOptions are the flags of jetkit dev.
type devOptions struct {
	dataDir       string
	fresh         bool
	demo          bool
	demoOrders    int
	demoRate      float64
	natsPort      int
	orderAddr     string
	inventoryAddr string
	verbose       bool
}

// seedStock is the inventory jetkit dev creates for SKUs that have none.
var seedStock = map[string]int{"apple": 40, "pear": 25, "plum": 15, "kiwi": 10, "fig": 5}

func newDevCmd() *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the sample order and inventory services on an embedded NATS server (Ctrl-C to stop)",
		Long: `dev starts an embedded NATS server with JetStream (data kept in --data, so a
restart keeps orders and stock; --fresh starts empty), seeds the inventory,
and runs the order and inventory services in this process with their HTTP
APIs. With --demo it places a stream of sample orders and prints each
order's journey. If JETKIT_NATS_URL is set, it uses that server instead of
the embedded one (configured by the JETKIT_* variables).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data", ".jetkit/data", "directory for the embedded server's JetStream store")
	f.BoolVar(&o.fresh, "fresh", false, "start empty: delete the data directory (or, with JETKIT_NATS_URL, the sample's streams and buckets)")
	f.BoolVar(&o.demo, "demo", false, "place sample orders and print each order's journey")
	f.IntVar(&o.demoOrders, "demo-orders", 0, "with --demo, stop after this many orders (0: until Ctrl-C)")
	f.Float64Var(&o.demoRate, "demo-rate", 2, "with --demo, orders per second")
	f.IntVar(&o.natsPort, "nats-port", 4222, "port of the embedded NATS server (0 picks a free one)")
	f.StringVar(&o.orderAddr, "order-addr", "127.0.0.1:8081", "listen address of the order service's HTTP API")
	f.StringVar(&o.inventoryAddr, "inventory-addr", "127.0.0.1:8082", "listen address of the inventory service's HTTP API")
	f.BoolVar(&o.verbose, "verbose", false, "log at info level (default: warnings only)")
	return cmd
}

// runDev runs the system until ctx ends; out gets the banner and the
// demo, logs gets the services' logs.
func runDev(ctx context.Context, out, logs io.Writer, o devOptions) error {
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))

	base, where, stopNATS, err := devNATS(ctx, out, o)
	if err != nil {
		return err
	}
	defer stopNATS()

	// Listen first, so a busy port fails before anything starts.
	orderLn, err := net.Listen("tcp", o.orderAddr)
	if err != nil {
		return fmt.Errorf("order API on %s: %w (pick another with --order-addr)", o.orderAddr, err)
	}
	defer orderLn.Close() // already closed once served and shut down; this covers early returns
	invLn, err := net.Listen("tcp", o.inventoryAddr)
	if err != nil {
		return fmt.Errorf("inventory API on %s: %w (pick another with --inventory-addr)", o.inventoryAddr, err)
	}
	defer invLn.Close()

	tel, err := devTelemetry(ctx)
	if err != nil {
		return err
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(flushCtx)
	}()
	observe := framework.WithObserver(tel.Observer())

	invSvc, err := devService(ctx, base, "inventory", log, observe)
	if err != nil {
		return err
	}
	orderSvc, err := devService(ctx, base, "order", log, observe)
	if err != nil {
		_ = invSvc.Shutdown(context.Background())
		return err
	}
	sys := &devSystem{invSvc: invSvc, orderSvc: orderSvc}
	defer sys.shutdown(base.ShutdownTimeout)

	if sys.inv, err = inventory.New(ctx, invSvc, &framework.SubscribeOptions{Concurrency: 8}); err != nil {
		return err
	}
	if sys.orders, err = order.New(ctx, orderSvc, &framework.SubscribeOptions{Concurrency: 8}); err != nil {
		return err
	}
	if err := sys.inv.SeedStock(ctx, seedStock); err != nil {
		return err
	}
	metrics := health.WithMetrics(tel.MetricsHandler())
	sys.serve(orderLn, sys.orders.Handler(metrics))
	sys.serve(invLn, sys.inv.Handler(metrics))
	orderURL, invURL := "http://"+orderLn.Addr().String(), "http://"+invLn.Addr().String()
	printBanner(out, where, orderURL, invURL)

	if o.demo {
		d := &demo{out: out, orderURL: orderURL, invURL: invURL, rate: o.demoRate, limit: o.demoOrders,
			client: &http.Client{Timeout: 10 * time.Second}}
		if err := d.run(ctx); err != nil {
			return err
		}
		if o.demoOrders > 0 {
			return nil
		}
	}
	select {
	case <-ctx.Done():
	case err := <-sys.served:
		return err
	}
	fmt.Fprintln(out, "\nstopping: draining HTTP requests and event handlers")
	return nil
}

// devNATS starts the embedded server, or picks the one JETKIT_NATS_URL
// names, and returns the base configuration to connect with.
func devNATS(ctx context.Context, out io.Writer, o devOptions) (framework.Config, string, func(), error) {
	if urls := os.Getenv("JETKIT_NATS_URL"); urls != "" {
		cfg := framework.DefaultConfig()
		cfg.ServiceName = "jetkit-dev" // each sample service gets its own name
		cfg, err := cfg.FromEnv("JETKIT")
		if err != nil {
			return cfg, "", nil, err
		}
		if o.fresh {
			if err := deleteSampleAssets(ctx, cfg, out); err != nil {
				return cfg, "", nil, err
			}
		}
		return cfg, fmt.Sprintf("%s (from JETKIT_NATS_URL)", redact.URLs(urls)), func() {}, nil
	}
	if o.fresh {
		if err := os.RemoveAll(o.dataDir); err != nil {
			return framework.Config{}, "", nil, fmt.Errorf("--fresh: remove %s: %w", o.dataDir, err)
		}
	}
	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return framework.Config{}, "", nil, fmt.Errorf("create data directory %s: %w", o.dataDir, err)
	}
	srv, err := embedded.Run(embedded.Options{Port: o.natsPort, StoreDir: o.dataDir, ServerName: "jetkit-dev"})
	if err != nil {
		return framework.Config{}, "", nil, fmt.Errorf("embedded NATS on port %d: %w (is another server using it? try --nats-port 0, or set JETKIT_NATS_URL)", o.natsPort, err)
	}
	cfg := srv.Config("dev")
	state := "kept between runs; --fresh starts empty"
	if o.fresh {
		state = "started empty"
	}
	return cfg, fmt.Sprintf("%s (embedded, data in %s, %s)", srv.URL(), o.dataDir, state), srv.Shutdown, nil
}

// devTelemetry sets up OpenTelemetry from the OTEL_* variables, defaulting
// to what suits a laptop: metrics served at /metrics of both APIs, no trace
// export (set OTEL_TRACES_EXPORTER=otlp to send traces to a collector).
func devTelemetry(ctx context.Context) (*telemetry.Telemetry, error) {
	for k, v := range map[string]string{"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_TRACES_EXPORTER": "none"} {
		if _, set := os.LookupEnv(k); !set {
			if err := os.Setenv(k, v); err != nil {
				return nil, fmt.Errorf("default %s: %w", k, err)
			}
		}
	}
	return telemetry.Setup(ctx, telemetry.SetupOptions{ServiceName: "jetkit-dev"})
}

// devService connects one of the sample services.
func devService(ctx context.Context, base framework.Config, name string, log *slog.Logger, opts ...framework.Option) (*framework.Service, error) {
	cfg := base
	cfg.ServiceName = name
	cfg.ClientName = ""
	opts = append([]framework.Option{framework.WithLogger(log)}, opts...)
	svc, err := framework.New(ctx, cfg, opts...)
	if err != nil {
		return nil, fmt.Errorf("start %s service: %w", name, err)
	}
	svc.Use(middleware.Defaults(middleware.Options{Logger: log})...)
	return svc, nil
}

// devSystem is the two services and their HTTP servers in this process.
type devSystem struct {
	invSvc, orderSvc *framework.Service
	inv              *inventory.Service
	orders           *order.Service
	servers          []*httpserver.Server
	served           chan error
}

func (s *devSystem) serve(ln net.Listener, h http.Handler) {
	if s.served == nil {
		s.served = make(chan error, 2)
	}
	srv := httpserver.New(h, httpserver.Options{})
	s.servers = append(s.servers, srv)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.served <- fmt.Errorf("HTTP server on %s: %w", ln.Addr(), err)
		}
	}()
}

// shutdown stops taking requests, then drains both services.
func (s *devSystem) shutdown(budget time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	for _, srv := range s.servers {
		_ = srv.Shutdown(ctx)
	}
	_ = s.orderSvc.Shutdown(ctx)
	_ = s.invSvc.Shutdown(ctx)
}

func printBanner(out io.Writer, where, orderURL, invURL string) {
	fmt.Fprintf(out, `jetkit dev: the sample system is running
  NATS       %s
  orders     %s   (POST /orders, GET /orders/{id}, POST /orders/{id}/cancel)
  inventory  %s   (GET /stock, GET|PUT /stock/{sku})
  probes     /livez, /readyz and /metrics on both

Try:
  curl -s %[3]s/stock
  curl -s -X POST %[2]s/orders -H 'Content-Type: application/json' -d '{"customer_id":"c-1","items":[{"sku":"apple","qty":2},{"sku":"pear","qty":1}]}'
  curl -s %[2]s/orders/<id>
  curl -s -X POST %[2]s/orders/<id>/cancel
  curl -s -X PUT %[3]s/stock/apple -H 'Content-Type: application/json' -d '{"available":100}'

Ctrl-C to stop.
`, where, orderURL, invURL)
}
