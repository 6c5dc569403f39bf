package testenv

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
)

// NewService starts a framework service with cfg for the test and shuts it
// down at cleanup (within 10 s; a second Shutdown is a no-op). It logs
// nowhere unless opts set a logger (framework.WithLogger).
//
//	srv := testenv.Start(t)
//	svc := testenv.NewService(t, srv.Config("order"))
func NewService(t testing.TB, cfg framework.Config, opts ...framework.Option) *framework.Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := framework.New(ctx, cfg, append([]framework.Option{framework.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatalf("testenv.NewService(%s): %v", cfg.ServiceName, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	return svc
}
