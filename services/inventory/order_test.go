package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/testenv"
)

// TestOrderEventsAreHandledInOrder publishes each order's created and,
// right behind it, its cancelled, for many orders at once, to an inventory
// with many workers. Handled in order, every order is reserved and then
// released; none takes the cancel-first path (a cancelled record, nothing
// reserved), which is what two unordered subscriptions produced when a
// cancel overtook its order. The stock ends where it started.
func TestOrderEventsAreHandledInOrder(t *testing.T) {
	const orders, stock = 150, 1000
	srv := testenv.Start(t)
	svc := testenv.NewService(t, srv.Config("inventory"))
	inv, err := New(context.Background(), svc, &framework.SubscribeOptions{Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := inv.SeedStock(ctx, map[string]int{"apple": stock}); err != nil {
		t.Fatal(err)
	}
	var acks []jetstream.PubAckFuture
	for i := range orders {
		id := fmt.Sprintf("o-%d", i)
		f, err := events.OrderCreatedTopic.PublishAsync(ctx, svc, events.OrderCreated{OrderID: id, Items: []events.Line{{SKU: "apple", Qty: 2}}}, framework.WithKey(id))
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, f)
		g, err := events.OrderCancelledTopic.PublishAsync(ctx, svc, events.OrderCancelled{OrderID: id}, framework.WithKey(id))
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, g)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("publish: %v", err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	testenv.WaitConsumerIdle(t, svc.Conn().JS, events.OrdersStream.Name, Durable, 30*time.Second)

	states := map[string]int{}
	for i := range orders {
		e, err := inv.reservations.Get(ctx, fmt.Sprintf("o-%d", i))
		if err != nil {
			t.Fatalf("reservation o-%d: %v", i, err)
		}
		var r reservation
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			t.Fatalf("reservation o-%d: %v", i, err)
		}
		states[r.State]++
	}
	if states[stateReleased] != orders {
		t.Errorf("final reservation states %v, want all %d %s: an order's events were handled out of order", states, orders, stateReleased)
	}
	level, err := inv.Stock(ctx, "apple")
	if err != nil {
		t.Fatal(err)
	}
	if level.Available != stock {
		t.Errorf("apple: %d available after every order was released, want %d", level.Available, stock)
	}
}
