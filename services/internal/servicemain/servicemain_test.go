package servicemain_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/health"
	"github.com/jetkit/jetkit/services/internal/servicemain"
	"github.com/jetkit/jetkit/testenv"
)

func spec(t *testing.T, addr string, start func(context.Context, *framework.Service, ...health.Option) (http.Handler, error)) servicemain.Spec {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	cfg := testenv.Start(t).Config("")
	cfg.ShutdownTimeout = 10 * time.Second
	return servicemain.Spec{
		Name: "sample", EnvPrefix: "SERVICEMAIN_TEST", Config: cfg, HTTPAddr: addr,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Start: start,
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// Run serves the handler Start returns, with the probes wired to the
// framework service (named after Spec.Name), until the context ends.
func TestRunServesUntilCancelled(t *testing.T) {
	addr := freeAddr(t)
	var named string
	s := spec(t, addr, func(_ context.Context, svc *framework.Service, probes ...health.Option) (http.Handler, error) {
		named = svc.Config().ServiceName
		return health.New(svc, probes...), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- servicemain.Run(ctx, s) }()
	testenv.Eventually(t, 20*time.Second, "GET /readyz answers 200", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if named != "sample" {
		t.Errorf("service name %q, want the Spec's name when SERVICEMAIN_TEST_SERVICE_NAME is unset", named)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := http.Get("http://" + addr + "/livez"); err == nil {
		t.Error("HTTP server still answers after Run returned")
	}
}

func TestRunReportsStartAndListenFailures(t *testing.T) {
	boom := errors.New("boom")
	s := spec(t, freeAddr(t), func(context.Context, *framework.Service, ...health.Option) (http.Handler, error) {
		return nil, boom
	})
	if err := servicemain.Run(context.Background(), s); !errors.Is(err, boom) {
		t.Errorf("Run with a failing Start: %v, want %v", err, boom)
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s.HTTPAddr = busy.Addr().String()
	s.Start = func(_ context.Context, svc *framework.Service, _ ...health.Option) (http.Handler, error) {
		return http.NotFoundHandler(), nil
	}
	err = servicemain.Run(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "HTTP server on "+s.HTTPAddr) {
		t.Errorf("Run on a busy address: %v, want the HTTP server's error", err)
	}
}
