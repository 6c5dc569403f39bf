package order_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/internal/apitest"
	"github.com/jetkit/jetkit/services/order"
	"github.com/jetkit/jetkit/testenv"
)

type rig struct {
	svc    *framework.Service
	orders *order.Service
	http   *httptest.Server
}

// newRig runs the order service alone: nothing answers its orders.
func newRig(t *testing.T) *rig {
	t.Helper()
	srv := testenv.Start(t)
	cfg := srv.Config("order")
	cfg.RetryInitial = 20 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	svc := testenv.NewService(t, cfg)
	orders, err := order.New(context.Background(), svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{svc: svc, orders: orders, http: apitest.Serve(t, orders.Handler())}
}

func (r *rig) streamMsgs(t *testing.T, name string) uint64 {
	t.Helper()
	st, err := r.svc.Conn().JS.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestBadInputIs4xxWithJSONErrorAndPublishesNothing(t *testing.T) {
	r := newRig(t)
	huge := `{"customer_id":"c-1","items":[` + strings.Repeat(`{"sku":"apple","qty":1},`, 5000) + `{"sku":"apple","qty":1}]}`
	cases := []struct {
		name, method, path, body string
		want                     int
	}{
		{"malformed JSON", "POST", "/orders", `{"customer_id":"c-1",`, 400},
		{"not an object", "POST", "/orders", `[1,2]`, 400},
		{"empty body", "POST", "/orders", ``, 415}, // nothing sent, no Content-Type either
		{"two values", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"a","qty":1}]} {}`, 400},
		{"unknown field", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"a","qty":1}],"coupon":"x"}`, 400},
		{"unknown item field", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"a","qty":1,"price":3}]}`, 400},
		{"wrong type", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"a","qty":"1"}]}`, 400},
		{"no items", "POST", "/orders", `{"customer_id":"c-1","items":[]}`, 400},
		{"missing items", "POST", "/orders", `{"customer_id":"c-1"}`, 400},
		{"zero qty", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"a","qty":0}]}`, 400},
		{"negative qty", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"a","qty":-2}]}`, 400},
		{"qty overflow", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"a","qty":99999999999999999999}]}`, 400},
		{"too much qty", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"a","qty":1000001}]}`, 400},
		{"sku with a dot", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"a.b","qty":1}]}`, 400},
		{"sku wildcard", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":">","qty":1}]}`, 400},
		{"sku with space", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"a b","qty":1}]}`, 400},
		{"empty sku", "POST", "/orders", `{"customer_id":"c-1","items":[{"sku":"","qty":1}]}`, 400},
		{"missing customer", "POST", "/orders", `{"items":[{"sku":"a","qty":1}]}`, 400},
		{"customer with a dot", "POST", "/orders", `{"customer_id":"c.1","items":[{"sku":"a","qty":1}]}`, 400},
		{"huge body", "POST", "/orders", huge, 413},
		{"unknown order", "GET", "/orders/nosuchorder", ``, 404},
		{"invalid order id", "GET", "/orders/a.b", ``, 400},
		{"cancel unknown order", "POST", "/orders/nosuchorder/cancel", ``, 404},
		{"cancel with a body", "POST", "/orders/nosuchorder/cancel", `{}`, 400},
		{"wrong method", "DELETE", "/orders/x", ``, 405},
		{"wrong method on list", "GET", "/orders", ``, 405},
		{"unknown route", "GET", "/nowhere", ``, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := apitest.Send(t, c.method, r.http.URL+c.path, c.body)
			if code != c.want {
				t.Errorf("status %d, want %d (body %v)", code, c.want, body)
			}
			if msg, _ := body["error"].(string); msg == "" {
				t.Errorf("body %v has no error message", body)
			}
		})
	}
	if n := r.streamMsgs(t, events.OrdersStream.Name); n != 0 {
		t.Errorf("ORDERS stream holds %d events after bad requests, want 0", n)
	}
}

func TestCancelRejectedOrderConflicts(t *testing.T) {
	r := newRig(t)
	code, body := apitest.Send(t, "POST", r.http.URL+"/orders", `{"customer_id":"c-1","items":[{"sku":"apple","qty":1}]}`)
	if code != 202 || body["status"] != "pending" {
		t.Fatalf("place: %d %v", code, body)
	}
	id := body["id"].(string)
	if _, err := events.InventoryRejectedTopic.Publish(context.Background(), r.svc,
		events.InventoryRejected{OrderID: id, Reason: events.ReasonUnknownSKU, SKU: "apple"}, framework.WithKey(id)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "order rejected", func() bool {
		o, err := r.orders.Get(context.Background(), id)
		return err == nil && o.Status == order.StatusRejected
	})
	if code, body := apitest.Send(t, "POST", r.http.URL+"/orders/"+id+"/cancel", ""); code != 409 {
		t.Errorf("cancel a rejected order: %d %v, want 409", code, body)
	}
	if n := r.streamMsgs(t, events.OrdersStream.Name); n != 1 {
		t.Errorf("ORDERS stream: %d events, want only the orders.created", n)
	}
}

// A reservation for an order the service does not know (or no longer
// wants) is handed back: the service publishes orders.cancelled.v1.
func TestUnwantedReservationIsReleased(t *testing.T) {
	r := newRig(t)
	if _, err := events.InventoryReservedTopic.Publish(context.Background(), r.svc,
		events.InventoryReserved{OrderID: "ghost", Items: []events.Line{{SKU: "apple", Qty: 1}}}, framework.WithKey("ghost")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "orders.cancelled.v1.ghost published", func() bool {
		st, err := r.svc.Conn().JS.Stream(context.Background(), events.OrdersStream.Name)
		if err != nil {
			return false
		}
		// ORDERS is partitioned: the stored subject has the partition before the key.
		m, err := st.GetLastMsgForSubject(context.Background(), "orders.cancelled.v1.*.ghost")
		return err == nil && wire.HeaderValue(m.Header, wire.HeaderID) == events.CancelledID("ghost")
	})
}

// When the orders.created event cannot be published the client gets
// ErrUnavailable (HTTP 503), and the stored order is rejected rather than left pending forever.
func TestPlaceWhenThePublishFails(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if err := r.svc.Conn().JS.DeleteStream(ctx, events.OrdersStream.Name); err != nil {
		t.Fatal(err)
	}
	// Publish retries for several seconds by default; a short deadline
	// keeps the test quick and takes the same path.
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := r.orders.Place(pctx, "c-1", []events.Line{{SKU: "apple", Qty: 1}}); !errors.Is(err, order.ErrUnavailable) {
		t.Fatalf("place with no stream for orders.created: %v, want ErrUnavailable (HTTP 503)", err)
	}
	kv, err := r.svc.Conn().JS.KeyValue(ctx, order.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("orders stored: %v %v, want one", keys, err)
	}
	o, err := r.orders.Get(ctx, keys[0])
	if err != nil || o.Status != order.StatusRejected || o.Reason == "" {
		t.Errorf("order after a failed publish: %+v %v, want rejected with a reason", o, err)
	}
}

// Only a JSON body places an order: what a cross-site page can send
// without CORS (a form, a multipart upload, text/plain) is refused with
// 415, a browser's cross-origin POST with 403, and a cancel carrying a
// body (chunked too) with 400. Only the one JSON order is published.
func TestWritesTakeJSONOnlyAndNotCrossSite(t *testing.T) {
	r := newRig(t)
	const place = `{"customer_id":"c-1","items":[{"sku":"apple","qty":1}]}`
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		code, body := apitest.SendAs(t, "POST", r.http.URL+"/orders", ct, place)
		if msg, _ := body["error"].(string); code != http.StatusUnsupportedMediaType || !strings.Contains(msg, "Content-Type") {
			t.Errorf("POST /orders as %q: %d %v, want 415 naming Content-Type", ct, code, body)
		}
	}
	req, err := http.NewRequest("POST", r.http.URL+"/orders", strings.NewReader(place))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST /orders: %v %v, want 403", resp, err)
	} else {
		_ = resp.Body.Close()
	}

	code, body := apitest.Send(t, "POST", r.http.URL+"/orders", place)
	if code != http.StatusAccepted {
		t.Fatalf("place: %d %v", code, body)
	}
	id := body["id"].(string)
	// A body of unknown length goes out chunked (ContentLength -1 on the server).
	req, err = http.NewRequest("POST", r.http.URL+"/orders/"+id+"/cancel", io.MultiReader(strings.NewReader("x=1")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("cancel with a chunked body: %d, want 400", resp.StatusCode)
	}
	if o, err := r.orders.Get(context.Background(), id); err != nil || o.Status != order.StatusPending {
		t.Errorf("order after refused cancels: %+v %v, want pending", o, err)
	}
	if n := r.streamMsgs(t, events.OrdersStream.Name); n != 1 {
		t.Errorf("ORDERS stream holds %d events, want only the one JSON order", n)
	}
}
