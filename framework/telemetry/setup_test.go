package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/testenv"
)

// resetGlobals puts back "nothing configured" after a test that ran Setup.
func resetGlobals(t *testing.T) {
	t.Cleanup(func() {
		otel.SetTracerProvider(tracenoop.NewTracerProvider())
		otel.SetMeterProvider(metricnoop.NewMeterProvider())
	})
}

func TestSetupOff(t *testing.T) {
	resetGlobals(t)
	for name, env := range map[string]map[string]string{
		"sdk disabled":   {"OTEL_SDK_DISABLED": "true"},
		"both exporters": {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"},
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range env {
				t.Setenv(k, v)
			}
			tel, err := telemetry.Setup(context.Background(), telemetry.SetupOptions{ServiceName: "order"})
			if err != nil {
				t.Fatal(err)
			}
			if tel.Observer() != nil || tel.MetricsHandler() != nil || tel.Tracing() {
				t.Fatalf("everything off, got observer %v, metrics handler %v, tracing %v", tel.Observer(), tel.MetricsHandler(), tel.Tracing())
			}
			if err := tel.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// With NoExportByDefault (a local run) an unset exporter variable means
// none rather than otlp, so nothing tries localhost:4318; a set one still
// applies.
func TestSetupNoExportByDefault(t *testing.T) {
	resetGlobals(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_METRICS_EXPORTER", "")
	local := telemetry.SetupOptions{ServiceName: "order", NoExportByDefault: true}
	tel, err := telemetry.Setup(context.Background(), local)
	if err != nil {
		t.Fatal(err)
	}
	if tel.Observer() != nil || tel.Tracing() {
		t.Errorf("local run with no OTEL_* exporter: observer %v, tracing %v; want nothing exported", tel.Observer(), tel.Tracing())
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	t.Setenv("OTEL_METRICS_EXPORTER", "prometheus")
	tel, err = telemetry.Setup(context.Background(), local)
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	if !tel.Tracing() || tel.MetricsHandler() == nil {
		t.Errorf("local run with OTEL_TRACES_EXPORTER=console, OTEL_METRICS_EXPORTER=prometheus: tracing %v, metrics handler %v; want both", tel.Tracing(), tel.MetricsHandler())
	}
}

func TestSetupRejectsUnknownExporter(t *testing.T) {
	resetGlobals(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin-please")
	_, err := telemetry.Setup(context.Background(), telemetry.SetupOptions{ServiceName: "order"})
	if err == nil || !strings.Contains(err.Error(), "OTEL_TRACES_EXPORTER") {
		t.Fatalf("want an error naming OTEL_TRACES_EXPORTER, got %v", err)
	}
}

// otlpSink is a fake OTLP/HTTP collector that keeps what it receives.
type otlpSink struct {
	mu      sync.Mutex
	spans   []string // span names
	metrics []string // metric names
	service []string // service.name of each resource
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.URL.Path {
	case "/v1/traces":
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.Resource.Attributes {
				if kv.Key == "service.name" {
					s.service = append(s.service, kv.Value.GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					s.spans = append(s.spans, sp.Name)
				}
			}
		}
		b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	case "/v1/metrics":
		var req colmetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					s.metrics = append(s.metrics, m.Name)
				}
			}
		}
		b, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	default:
		http.NotFound(w, r)
	}
}

// With no exporter variable set Setup exports OTLP over HTTP: spans and
// metrics of a publish and a delivery reach the collector, with the
// service name from OTEL_SERVICE_NAME.
func TestSetupExportsOTLPByDefault(t *testing.T) {
	resetGlobals(t)
	sink := &otlpSink{}
	col := httptest.NewServer(sink)
	defer col.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	t.Setenv("OTEL_SERVICE_NAME", "order-from-env")
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_METRICS_EXPORTER", "")
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.SetupOptions{ServiceName: "order"})
	if err != nil {
		t.Fatal(err)
	}
	if tel.Observer() == nil || !tel.Tracing() || tel.MetricsHandler() != nil {
		t.Fatalf("OTLP default: observer %v tracing %v metrics handler %v", tel.Observer(), tel.Tracing(), tel.MetricsHandler())
	}
	srv := testenv.Start(t)
	svc := newService(t, srv, "order", []framework.Option{framework.WithObserver(tel.Observer())})
	done := make(chan struct{})
	if _, err := framework.Subscribe(ctx, svc, orderTopic, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		close(done)
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := orderTopic.Publish(ctx, svc, orderCreated{ID: "o-1"}, framework.WithKey("o-1")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("not handled")
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := svc.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := tel.Shutdown(sctx); err != nil { // flushes spans and metrics
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, want := range []string{"publish orders.created.v1", "process orders.created.v1"} {
		if !contains(sink.spans, want) {
			t.Errorf("collector got spans %v, want %q", sink.spans, want)
		}
	}
	for _, want := range []string{telemetry.MetricProcessed, telemetry.MetricProcessTime, telemetry.MetricPublished} {
		if !contains(sink.metrics, want) {
			t.Errorf("collector got metrics %v, want %q", sink.metrics, want)
		}
	}
	if len(sink.service) == 0 || sink.service[0] != "order-from-env" {
		t.Errorf("service.name %v, want order-from-env (OTEL_SERVICE_NAME wins over the config)", sink.service)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A nil *Observer (e.g. from a failed set-up) in WithObserver observes
// nothing instead of crashing the hot path.
func TestTypedNilObserverIsHarmless(t *testing.T) {
	srv := testenv.Start(t)
	var obs *telemetry.Observer
	svc := newService(t, srv, "order", []framework.Option{framework.WithObserver(obs)})
	done := make(chan struct{})
	if _, err := framework.Subscribe(t.Context(), svc, orderTopic, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		close(done)
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := orderTopic.Publish(context.Background(), svc, orderCreated{ID: "o-1"}, framework.WithKey("o-1")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("not handled")
	}
}
