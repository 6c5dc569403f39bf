package faults_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/inventory"
	"github.com/jetkit/jetkit/services/order"
	"github.com/jetkit/jetkit/testenv"
)

// TestSampleSystemSurvivesNodeLoss is docs/local-cluster.md's "stop a NATS node" on
// the in-process cluster: the order and inventory services run with their
// streams and KV buckets replicated 3 times while clients place orders,
// and the node leading the ORDERS stream crashes (testenv's Crash). Every order placed
// must be confirmed, the stock must reconcile with the confirmed orders,
// and no reservation marker may be left behind.
func TestSampleSystemSurvivesNodeLoss(t *testing.T) {
	cl := testenv.StartCluster(t, 3)
	w := newWorld(t) // for its logger and resend count
	ctx := context.Background()
	start := func(name string) *framework.Service {
		t.Helper()
		svc, err := framework.New(ctx, faultConfig(cl.Config(name)), framework.WithLogger(w.logger()))
		if err != nil {
			t.Fatalf("framework.New(%s): %v", name, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = svc.Shutdown(ctx)
		})
		return svc
	}
	orderSvc := start("order")
	orders, err := order.New(ctx, orderSvc, &framework.SubscribeOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.New(ctx, start("inventory"), &framework.SubscribeOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	const initial = 100000
	if err := inv.SeedStock(ctx, map[string]int{"apple": initial}); err != nil {
		t.Fatal(err)
	}
	leader, err := cl.WaitStreamLeader(settleTimeout, events.OrdersStream.Name)
	if err != nil {
		t.Fatal(err)
	}

	// Three clients place orders; like an HTTP client on a 503, a client
	// retries a Place that failed (each try is a new order).
	const clients, perClient = 3, 40
	var (
		mu        sync.Mutex
		placed    []string
		failures  atomic.Int64
		firstErr  atomic.Value
		placedNow atomic.Int64
	)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				for try := 1; ; try++ {
					o, err := orders.Place(ctx, fmt.Sprintf("c-%d", c), []events.Line{{SKU: "apple", Qty: 1 + i%3}})
					if err == nil {
						mu.Lock()
						placed = append(placed, o.ID)
						mu.Unlock()
						placedNow.Add(1)
						break
					}
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					if try == 5 {
						t.Errorf("client %d: order %d failed 5 times: %v", c, i, err)
						return
					}
				}
			}
		}()
	}
	testenv.Eventually(t, settleTimeout, "orders are being placed", func() bool { return placedNow.Load() >= clients*perClient/3 })
	cl.Crash(leader)
	if _, err := cl.WaitStreamLeader(settleTimeout, events.OrdersStream.Name); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	// Every placed order is decided, and confirmed: the stock is ample.
	js := orderSvc.Conn().JS
	testenv.Eventually(t, settleTimeout, "every placed order is confirmed", func() bool {
		for _, id := range placed {
			o, err := orders.Get(ctx, id)
			if err != nil || o.Status != order.StatusConfirmed {
				return false
			}
		}
		return true
	})
	// The stock reconciles with every order in the bucket, including
	// orders of failed Place calls: confirmed quantity + available = initial.
	var (
		confirmedQty int
		statuses     map[string]int
		level        inventory.StockLevel
		lastErr      error
	)
	err = testenv.WaitFor(ctx, settleTimeout, func() bool {
		confirmedQty, statuses, lastErr = orderTotals(ctx, js)
		if lastErr != nil {
			return false
		}
		level, lastErr = inv.Stock(ctx, "apple")
		return lastErr == nil && level.Available+confirmedQty == initial
	})
	if err != nil {
		t.Fatalf("stock does not reconcile after %s: initial %d, available %d, confirmed quantity %d, orders by status %v, last error %v; %d failed Place calls, first: %v",
			settleTimeout, initial, level.Available, confirmedQty, statuses, lastErr, failures.Load(), firstErr.Load())
	}
	// Every reservation marker is cleared once the system is idle, even
	// though reads may have come from a lagging replica during failover.
	if err := testenv.WaitFor(ctx, settleTimeout, func() bool {
		level, lastErr = inv.Stock(ctx, "apple")
		return lastErr == nil && level.InFlight == 0
	}); err != nil {
		t.Fatalf("stock record of apple still holds %d reservation marker(s) when idle (last error %v); on the stream leader: %s",
			level.InFlight, lastErr, leaderStockRecord(ctx, js, "apple"))
	}
	t.Logf("placed %d orders (%d failed Place calls retried by the clients, first: %v), confirmed quantity %d, available %d, publish resends %d",
		len(placed), failures.Load(), firstErr.Load(), confirmedQty, level.Available, w.resends.Load())
	if level.Available < 0 {
		t.Fatalf("stock went negative: %+v", level)
	}
}

// orderTotals sums the quantity of every confirmed order in the orders
// bucket and counts the orders by status.
func orderTotals(ctx context.Context, js jetstream.JetStream) (confirmed int, statuses map[string]int, err error) {
	statuses = map[string]int{}
	kv, err := js.KeyValue(ctx, order.Bucket)
	if err != nil {
		return 0, nil, err
	}
	keys, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return 0, statuses, nil
	}
	if err != nil {
		return 0, nil, err
	}
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if err != nil {
			return 0, nil, err
		}
		var o order.Order
		if err := json.Unmarshal(e.Value(), &o); err != nil {
			return 0, nil, err
		}
		statuses[o.Status]++
		if o.Status == order.StatusConfirmed {
			for _, l := range o.Items {
				confirmed += l.Qty
			}
		}
	}
	return confirmed, statuses, nil
}

// leaderStockRecord reads a stock record from the KV stream's leader (the
// non-direct API), which is never stale, for diagnostics.
func leaderStockRecord(ctx context.Context, js jetstream.JetStream, sku string) string {
	st, err := js.Stream(ctx, "KV_"+inventory.StockBucket)
	if err != nil {
		return err.Error()
	}
	m, err := st.GetLastMsgForSubject(ctx, "$KV."+inventory.StockBucket+"."+sku)
	if err != nil {
		return err.Error()
	}
	return string(m.Data)
}
