package e2e_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jetkit/jetkit/services/inventory"
	"github.com/jetkit/jetkit/services/order"
)

// diagnose logs, after a failed invariant, every order whose status
// disagrees with its reservation in the inventory, and the quantities the
// inventory holds as reserved per SKU.
func diagnose(t *testing.T, s *system, ids []string) {
	t.Helper()
	ctx := context.Background()
	kv, err := s.orderSvc.Conn().JS.KeyValue(ctx, inventory.ReservationBucket)
	if err != nil {
		t.Log(err)
		return
	}
	held := map[string]int{}
	for _, id := range ids {
		o, _ := s.orders.Get(ctx, id)
		e, err := kv.Get(ctx, id)
		if err != nil {
			t.Logf("order %s: %s, no reservation: %v", id, o.Status, err)
			continue
		}
		var r struct {
			State string
			Lines []struct {
				SKU string
				Qty int
			}
		}
		_ = json.Unmarshal(e.Value(), &r)
		if (r.State == "reserved") != (o.Status == order.StatusConfirmed) {
			t.Logf("MISMATCH order %s: order %s, reservation %s", id, o.Status, string(e.Value()))
		}
		if r.State == "reserved" {
			for _, l := range r.Lines {
				held[l.SKU] += l.Qty
			}
		}
	}
	t.Logf("reserved per sku per inventory: %v", held)
}
