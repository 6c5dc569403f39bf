// Package health serves the probes every jetkit service mounts:
//
//	/livez    200 while the process runs (it never checks NATS: a broker
//	          outage must not get healthy pods restarted)
//	/readyz   200 when connected, JetStream answers, every subscription's
//	          consumer exists and the service is not shutting down;
//	          503 with the reasons otherwise; either way the partitions
//	          this instance owns, for each Partitioned subscription
//	/metrics  the Prometheus exposition, when a metrics handler is given
//	          (telemetry.Setup with OTEL_METRICS_EXPORTER=prometheus)
//
// Typical use:
//
//	h := health.New(svc, health.WithMetrics(tel.MetricsHandler()))
//	go health.ListenAndServe(ctx, ":8081", h)
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/httpserver"
)

// DefaultTimeout bounds one readiness check.
const DefaultTimeout = 2 * time.Second

// Check is an extra readiness check (a database, a downstream service): a
// non-nil error makes /readyz answer 503 with the error as the reason.
type Check func(ctx context.Context) error

// Handler is the http.Handler with /livez, /readyz and /metrics.
type Handler struct {
	svc     *framework.Service
	metrics http.Handler
	timeout time.Duration
	mu      sync.Mutex
	checks  []namedCheck
	mux     *http.ServeMux
}

type namedCheck struct {
	name  string
	check Check
}

// Option configures a Handler.
type Option func(*Handler)

// WithMetrics serves h at /metrics (nil: /metrics answers 404).
func WithMetrics(h http.Handler) Option { return func(x *Handler) { x.metrics = h } }

// WithTimeout bounds each readiness check (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(x *Handler) { x.timeout = d } }

// WithCheck adds a readiness check named name.
func WithCheck(name string, c Check) Option {
	return func(x *Handler) { x.checks = append(x.checks, namedCheck{name, c}) }
}

// New returns the probe handler for svc.
func New(svc *framework.Service, opts ...Option) *Handler {
	h := &Handler{svc: svc, timeout: DefaultTimeout}
	for _, o := range opts {
		o(h)
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /livez", h.live)
	h.mux.HandleFunc("GET /readyz", h.ready)
	if h.metrics != nil {
		h.mux.Handle("GET /metrics", h.metrics)
	}
	return h
}

// AddCheck adds a readiness check after construction.
func (h *Handler) AddCheck(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = append(h.checks, namedCheck{name, c})
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Status is the /readyz (and /livez) response body.
type Status struct {
	// Status is "ok", "ready" or "not ready".
	Status string `json:"status"`
	// Problems says why not, one entry per failed check.
	Problems []string `json:"problems,omitempty"`
	// Partitions lists, for each Partitioned subscription, the partitions
	// this instance consumes now. An instance owning none (a group with
	// more instances than partitions) is ready: it is a standby.
	Partitions []Partitions `json:"partitions,omitempty"`
}

// Partitions is one partitioned consumer group as /readyz shows it.
type Partitions struct {
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	Owned    []int  `json:"owned"`
}

// partitions lists the partitions this instance owns, per group.
func (h *Handler) partitions() []Partitions {
	var out []Partitions
	for _, sub := range h.svc.Subscriptions() {
		if owned := sub.Partitions(); owned != nil {
			out = append(out, Partitions{Stream: sub.Stream(), Consumer: sub.Durable(), Owned: owned})
		}
	}
	return out
}

func (h *Handler) live(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, Status{Status: "ok"})
}

func (h *Handler) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	if problems := h.Check(ctx); len(problems) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, Status{Status: "not ready", Problems: problems, Partitions: h.partitions()})
		return
	}
	writeJSON(w, http.StatusOK, Status{Status: "ready", Partitions: h.partitions()})
}

// Check runs the readiness checks and returns what is wrong (nil when
// ready): shutting down, not connected, JetStream unreachable, a
// subscription's consumer missing, or a failed extra check.
func (h *Handler) Check(ctx context.Context) []string {
	if err := h.svc.Ready(ctx); err != nil {
		// Connection or draining: the consumer checks would only repeat it.
		return []string{err.Error()}
	}
	var problems []string
	for _, sub := range h.svc.Subscriptions() {
		cons := sub.Consumer()
		if cons == nil { // Partitioned: its partitions come and go
			continue
		}
		if _, err := cons.Info(ctx); err != nil {
			problems = append(problems, fmt.Sprintf("consumer %s/%s not bound: %v", sub.Stream(), sub.Durable(), err))
		}
	}
	h.mu.Lock()
	checks := append([]namedCheck(nil), h.checks...)
	h.mu.Unlock()
	for _, c := range checks {
		if err := c.check(ctx); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.name, err))
		}
	}
	return problems
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// ListenAndServe serves h on addr until ctx ends, then shuts the server
// down gracefully (5 s at most). It returns nil after a shutdown caused by
// ctx, or the error that stopped the server.
func ListenAndServe(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("health: listen on %s: %w", addr, err)
	}
	return Serve(ctx, ln, h)
}

// Serve is ListenAndServe on an existing listener. Clients get 5 s to send
// the headers and 15 s for the whole request, idle connections close after
// 60 s, and at most half the open-files limit (1024 at most) are served at
// once: further clients wait for a free slot.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := httpserver.New(h, httpserver.Options{})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("health: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("health: shut down server on %s: %w", ln.Addr(), err)
	}
	return nil
}
