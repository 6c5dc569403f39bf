package framework_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

type orderCreated struct {
	ID    string `json:"id"`
	Qty   int    `json:"qty"`
	Note  string `json:"note,omitempty"`
	Index int    `json:"index"`
}

var ordersStream = framework.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}

var created = framework.MustNewTopic[orderCreated]("orders.created.v1")

// createdByOrder is the same event keyed by order id:
// orders.created.v1.<id>.
var createdByOrder = framework.MustNewTopic[orderCreated]("orders.created.v1", framework.Keyed())

// newService starts a service on srv with the ORDERS stream declared and
// test-sized retry delays; it is shut down at cleanup.
func newService(t *testing.T, srv *testenv.Server, name string, edit ...func(*framework.Config)) *framework.Service {
	t.Helper()
	return newServiceLogging(t, srv, name, slog.New(slog.DiscardHandler), edit...)
}

// newServiceLogging is newService logging to log.
func newServiceLogging(t *testing.T, srv *testenv.Server, name string, log *slog.Logger, edit ...func(*framework.Config)) *framework.Service {
	t.Helper()
	cfg := srv.Config(name)
	cfg.RetryInitial = 20 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	for _, e := range edit {
		e(&cfg)
	}
	ctx := context.Background()
	svc := testenv.NewService(t, cfg, framework.WithLogger(log))
	if _, err := svc.EnsureStream(ctx, ordersStream); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	return svc
}

func publishN(t *testing.T, svc *framework.Service, n int) {
	t.Helper()
	publishFrom(t, svc, 0, n)
}

// publishFrom publishes n events with indexes from, from+1, ... and waits
// for their acks.
func publishFrom(t *testing.T, svc *framework.Service, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := created.PublishAsync(context.Background(), svc, orderCreated{ID: "o", Qty: 1, Index: i}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Conn().FlushAsync(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
}
