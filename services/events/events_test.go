package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/testenv"
)

// TestEachStreamBelongsToItsPublisher: whichever service declares first,
// ORDERS belongs to the order service and INVENTORY to the inventory
// service; a third program cannot narrow ORDERS, and the inventory
// service's declaration does not reset what the order service set.
func TestEachStreamBelongsToItsPublisher(t *testing.T) {
	srv := testenv.Start(t)
	ctx := context.Background()
	inv := testenv.NewService(t, srv.Config("inventory"))
	if err := events.Declare(ctx, inv, events.InventoryStream); err != nil { // inventory starts first
		t.Fatal(err)
	}
	ord := testenv.NewService(t, srv.Config("order"))
	if err := events.Declare(ctx, ord, events.OrdersStream); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []framework.StreamSpec{events.OrdersStream, events.InventoryStream} {
		st, err := ord.Conn().JS.Stream(ctx, spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.Metadata["jetkit.owner"]; got != spec.Owner {
			t.Errorf("stream %s records owner %q, want %q", spec.Name, got, spec.Owner)
		}
	}
	// The order service tunes its stream; the inventory's declaration leaves it.
	aged := events.OrdersStream
	aged.MaxAge = 24 * time.Hour
	if _, err := ord.EnsureStream(ctx, aged); err != nil {
		t.Fatal(err)
	}
	if err := events.Declare(ctx, inv, events.InventoryStream); err != nil {
		t.Fatal(err)
	}
	other := testenv.NewService(t, srv.Config("analytics"))
	_, err := other.EnsureStream(ctx, framework.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.created.v1.>"}})
	if !errors.Is(err, framework.ErrIncompatibleChange) {
		t.Fatalf("a third program narrowing ORDERS: want ErrIncompatibleChange, got %v", err)
	}
	st, err := ord.Conn().JS.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := st.CachedInfo().Config; cfg.MaxAge != 24*time.Hour || len(cfg.Subjects) != 1 || cfg.Subjects[0] != "orders.>" {
		t.Fatalf("ORDERS changed by a service that does not own it: max age %s, subjects %v", cfg.MaxAge, cfg.Subjects)
	}
}
