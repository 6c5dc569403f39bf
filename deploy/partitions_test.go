package deploy_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/inventory"
	"github.com/jetkit/jetkit/services/order"
	"github.com/jetkit/jetkit/testenv"
)

// TestPartitionedInventoryMovesWithLeastPrivilege runs two inventory
// instances as the inventory user of nats-permissions.conf: they share
// ORDERS's partitions (membership bucket, partition consumers), orders
// are decided, and when one shuts down the other takes its partitions
// over at once (the unpin is allowed too: without it the move would wait
// for the pin to expire, and say so in a warning). No permission is
// refused along the way.
func TestPartitionedInventoryMovesWithLeastPrivilege(t *testing.T) {
	srv := permissionsServer(t)
	ctx := context.Background()
	connectAs(t, srv, "ops") // declares DEADLETTER
	_, _, first, orders := startSampleServices(t, srv)

	var logs lockedBuffer
	cfg := testenv.Credentials{User: "inventory", Password: passwords["inventory"]}.Apply(srv.Config("inventory"))
	cfg.ShutdownTimeout = 5 * time.Second
	svc := testenv.NewService(t, cfg, framework.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if _, err := inventory.New(ctx, svc, nil); err != nil {
		t.Fatalf("second inventory.New with the inventory user's permissions: %v", err)
	}
	sub := func(svc *framework.Service) *framework.Subscription {
		for _, s := range svc.Subscriptions() {
			if s.Durable() == inventory.Durable {
				return s
			}
		}
		t.Fatal("no inventory subscription")
		return nil
	}
	a, b := sub(first.Framework()), sub(svc)
	owned := func(subs ...*framework.Subscription) []int {
		var all []int
		for _, s := range subs {
			all = append(all, s.Partitions()...)
		}
		slices.Sort(all)
		return all
	}
	every := make([]int, events.OrderPartitions)
	for p := range every {
		every[p] = p
	}
	testenv.Eventually(t, 20*time.Second, "both instances own partitions", func() bool {
		return len(a.Partitions()) > 0 && len(b.Partitions()) > 0 && slices.Equal(owned(a, b), every)
	})

	if err := first.SeedStock(ctx, map[string]int{"apple": 100}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 12 {
		o, err := orders.Place(ctx, fmt.Sprintf("c-%d", i), []events.Line{{SKU: "apple", Qty: 1}})
		if err != nil {
			t.Fatalf("Place: %v", err)
		}
		ids = append(ids, o.ID)
	}
	testenv.Eventually(t, 20*time.Second, "every order confirmed", func() bool {
		for _, id := range ids {
			if o, err := orders.Get(ctx, id); err != nil || o.Status != order.StatusConfirmed {
				return false
			}
		}
		return true
	})
	if a.Stats().Acked == 0 || b.Stats().Acked == 0 {
		t.Errorf("acked: first %d, second %d; both instances should have handled orders", a.Stats().Acked, b.Stats().Acked)
	}

	left := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := svc.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	// Within the membership beats, far less than the pin's expiry
	// (AckWait 30 s + margins) that a refused unpin would leave to wait.
	testenv.Eventually(t, 10*time.Second, "the first instance owns every partition", func() bool {
		return slices.Equal(owned(a), every)
	})
	t.Logf("partitions moved %v after the second instance's Shutdown began", time.Since(left).Round(time.Millisecond))
	if out := logs.String(); strings.Contains(strings.ToLower(out), "permission") {
		t.Errorf("the second instance logged a permission problem:\n%s", out)
	}
}
