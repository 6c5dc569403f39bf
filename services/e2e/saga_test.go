package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/order"
	"github.com/jetkit/jetkit/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

const waitLong = 30 * time.Second

func TestOrderForAvailableStockIsConfirmedAndStockGoesDown(t *testing.T) {
	t.Parallel()
	s := newSystem(t, sysOptions{})
	s.setStock("apple", 10)
	s.setStock("pear", 5)

	id := s.place("c-1", events.Line{SKU: "apple", Qty: 3}, events.Line{SKU: "pear", Qty: 2}, events.Line{SKU: "apple", Qty: 1})
	o := s.waitStatus(id, waitLong, order.StatusConfirmed)
	s.settle(waitLong)

	if got := s.stock("apple"); got.Available != 6 || got.InFlight != 0 {
		t.Errorf("apple: %+v, want available 6 and nothing in flight", got)
	}
	if got := s.stock("pear"); got.Available != 3 || got.InFlight != 0 {
		t.Errorf("pear: %+v, want available 3 and nothing in flight", got)
	}
	if len(o.History) != 2 || o.History[0].Status != order.StatusPending || o.History[1].Status != order.StatusConfirmed {
		t.Errorf("history %+v, want pending then confirmed", o.History)
	}
	if len(o.Items) != 2 || o.Items[0] != (events.Line{SKU: "apple", Qty: 4}) {
		t.Errorf("items %+v, want repeated SKUs merged: apple 4, pear 2", o.Items)
	}
	if n := s.streamMsgs(events.InventoryStream.Name); n != 1 {
		t.Errorf("INVENTORY stream holds %d events, want 1 (the reservation)", n)
	}
}

func TestOrderForMissingStockIsRejectedAndStockUnchanged(t *testing.T) {
	t.Parallel()
	s := newSystem(t, sysOptions{})
	s.setStock("apple", 10)
	s.setStock("pear", 1)

	short := s.place("c-1", events.Line{SKU: "apple", Qty: 3}, events.Line{SKU: "pear", Qty: 2})
	unknown := s.place("c-1", events.Line{SKU: "apple", Qty: 3}, events.Line{SKU: "plum", Qty: 1})

	o := s.waitStatus(short, waitLong, order.StatusRejected)
	if want := "insufficient_stock: pear (requested 2, available 1)"; o.Reason != want {
		t.Errorf("reason %q, want %q", o.Reason, want)
	}
	o = s.waitStatus(unknown, waitLong, order.StatusRejected)
	if want := "unknown_sku: plum"; o.Reason != want {
		t.Errorf("reason %q, want %q", o.Reason, want)
	}
	s.settle(waitLong)
	// apple was held for both orders before the failing line; all-or-nothing
	// gives it back.
	if got := s.stock("apple"); got.Available != 10 || got.InFlight != 0 {
		t.Errorf("apple: %+v, want 10 and nothing in flight", got)
	}
	if got := s.stock("pear"); got.Available != 1 {
		t.Errorf("pear: %+v, want 1", got)
	}
}

func TestCancelReleasesStockOnce(t *testing.T) {
	t.Parallel()
	s := newSystem(t, sysOptions{})
	s.setStock("apple", 10)
	id := s.place("c-1", events.Line{SKU: "apple", Qty: 4})
	s.waitStatus(id, waitLong, order.StatusConfirmed)
	s.settle(waitLong)
	if got := s.stock("apple").Available; got != 6 {
		t.Fatalf("apple after the order: %d, want 6", got)
	}

	var o order.Order
	if code := do(t, "POST", s.orderHTTP.URL+"/orders/"+id+"/cancel", nil, &o); code != http.StatusOK || o.Status != order.StatusCancelled {
		t.Fatalf("cancel: %d %+v", code, o)
	}
	// A repeated cancel answers 200 and re-publishes the same event id.
	if code := do(t, "POST", s.orderHTTP.URL+"/orders/"+id+"/cancel", nil, &o); code != http.StatusOK {
		t.Fatalf("second cancel: %d", code)
	}
	// Re-publish both events with fresh ids, defeating the server's
	// de-duplication: the handlers themselves must not apply them again.
	ctx := context.Background()
	if _, err := events.OrderCancelledTopic.Publish(ctx, s.orderSvc, events.OrderCancelled{OrderID: id}, framework.WithKey(id)); err != nil {
		t.Fatal(err)
	}
	if _, err := events.OrderCreatedTopic.Publish(ctx, s.orderSvc, events.OrderCreated{OrderID: id, CustomerID: "c-1",
		Items: []events.Line{{SKU: "apple", Qty: 4}}}, framework.WithKey(id)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "stock released", func() bool { return s.stock("apple").Available == 10 })
	s.settle(waitLong)
	if got := s.stock("apple"); got.Available != 10 || got.InFlight != 0 {
		t.Errorf("apple after cancel and replays: %+v, want 10 (released once) and nothing in flight", got)
	}
	if n := s.streamMsgs(events.OrdersStream.Name); n != 4 {
		t.Errorf("ORDERS stream: %d events, want 4 (created, cancelled once despite two cancels, two replays)", n)
	}
	if got := s.order(id); got.Status != order.StatusCancelled {
		t.Errorf("order %+v, want cancelled", got)
	}
}

// A cancel that races the reservation: the order is cancelled while
// pending, and the inventory reserves anyway. The stock must come back.
func TestCancelWhilePendingReleasesLateReservation(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	hold := func(next framework.Handler) framework.Handler {
		return framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			if m.Consumer == order.ReservedDurable {
				select { // the order service has not yet seen the reservation
				case <-gate:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return next.Handle(ctx, m)
		})
	}
	s := newSystem(t, sysOptions{middleware: []framework.Middleware{hold}})
	s.setStock("apple", 10)
	id := s.place("c-1", events.Line{SKU: "apple", Qty: 4})
	eventually(t, "reserved in the inventory", func() bool { return s.stock("apple").Available == 6 })

	var o order.Order
	if code := do(t, "POST", s.orderHTTP.URL+"/orders/"+id+"/cancel", nil, &o); code != http.StatusOK || o.Status != order.StatusCancelled {
		t.Fatalf("cancel while pending: %d %+v", code, o)
	}
	close(gate)
	s.settle(waitLong)
	if got := s.stock("apple"); got.Available != 10 || got.InFlight != 0 {
		t.Errorf("apple: %+v, want 10: the late reservation must be released", got)
	}
	if got := s.order(id); got.Status != order.StatusCancelled || len(got.History) != 2 {
		t.Errorf("order %+v, want cancelled with history pending, cancelled", got)
	}
}

// The cancel reaches the inventory before (or while) the order does: the
// order must never hold stock.
func TestCancelBeforeInventorySeesOrder(t *testing.T) {
	t.Parallel()
	s := newSystem(t, sysOptions{})
	s.setStock("apple", 10)
	s.stopInventory()
	id := s.place("c-1", events.Line{SKU: "apple", Qty: 4})
	if code := do(t, "POST", s.orderHTTP.URL+"/orders/"+id+"/cancel", nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	s.startInventory()
	s.settle(waitLong)
	if got := s.stock("apple"); got.Available != 10 || got.InFlight != 0 {
		t.Errorf("apple: %+v, want 10", got)
	}
	if got := s.order(id); got.Status != order.StatusCancelled {
		t.Errorf("order %+v, want cancelled", got)
	}
}

// An orders.created event that the order API would never have sent (no
// lines, qty 0, a bad SKU) is answered with a rejection, not dead-lettered,
// and holds nothing.
func TestMalformedOrderEventIsRejected(t *testing.T) {
	t.Parallel()
	s := newSystem(t, sysOptions{})
	s.setStock("apple", 10)
	ctx := context.Background()
	bad := map[string][]events.Line{
		"no-lines":  nil,
		"zero-qty":  {{SKU: "apple", Qty: 0}},
		"bad-sku":   {{SKU: "apple", Qty: 1}, {SKU: "a.b", Qty: 1}},
		"too-large": {{SKU: "apple", Qty: events.MaxQty + 1}},
	}
	for id, lines := range bad {
		if _, err := events.OrderCreatedTopic.Publish(ctx, s.orderSvc, events.OrderCreated{OrderID: id, Items: lines}, framework.WithKey(id)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.orderSvc.Conn().JS.Stream(ctx, events.InventoryStream.Name)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the effect itself: right after a publish the consumer may
	// not count the message as pending yet, so an idle consumer proves
	// nothing on its own.
	for id := range bad {
		var m *jetstream.RawStreamMsg
		if err := testenv.WaitFor(ctx, waitLong, func() bool {
			m, err = st.GetLastMsgForSubject(ctx, events.InventoryRejectedTopic.Subject()+"."+id)
			return err == nil
		}); err != nil {
			t.Errorf("%s: no rejection published: %v", id, err)
			continue
		}
		var rej events.InventoryRejected
		if err := json.Unmarshal(m.Data, &rej); err != nil || rej.Reason != events.ReasonInvalidOrder {
			t.Errorf("%s: rejection %+v (%v), want reason %s", id, rej, err, events.ReasonInvalidOrder)
		}
	}
	s.settle(waitLong)
	if got := s.stock("apple"); got.Available != 10 || got.InFlight != 0 {
		t.Errorf("apple: %+v, want 10", got)
	}
	if n := s.streamMsgs(framework.DefaultConfig().DeadLetterStream); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}
