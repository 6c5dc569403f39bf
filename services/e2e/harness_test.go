package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

// system is the sample system on an embedded server: the order service
// and the inventory service, each on its own connection with its HTTP API
// on an httptest server, like two processes.
type system struct {
	t       *testing.T
	srv     *testenv.Server
	mws     []framework.Middleware
	ackWait time.Duration

	orderSvc  *framework.Service
	orders    *order.Service
	orderHTTP *httptest.Server

	invSvc  *framework.Service
	inv     *inventory.Service
	invHTTP *httptest.Server
	invGen  int

	// cancelEvery, if > 0, makes loadRun cancel every n-th order right
	// after placing it; cancels counts those cancels.
	cancelEvery int
	cancels     atomic.Int64
}

// sysOptions adjust a test system.
type sysOptions struct {
	// middleware wraps every handler of both services.
	middleware []framework.Middleware
	// ackWait overrides the 2 s AckWait of the tests.
	ackWait time.Duration
}

func newSystem(t *testing.T, o sysOptions) *system {
	t.Helper()
	s := &system{t: t, srv: testenv.Start(t), mws: o.middleware, ackWait: o.ackWait}
	s.orderSvc = s.framework("order")
	orders, err := order.New(context.Background(), s.orderSvc, &framework.SubscribeOptions{Concurrency: 8})
	if err != nil {
		t.Fatalf("order.New: %v", err)
	}
	s.orders = orders
	s.orderHTTP = httptest.NewServer(orders.Handler())
	t.Cleanup(s.orderHTTP.Close)
	s.startInventory()
	return s
}

// framework starts a jetkit service with test-sized retry delays; it is
// shut down at cleanup (a second Shutdown is a no-op).
func (s *system) framework(name string) *framework.Service {
	s.t.Helper()
	cfg := s.srv.Config(name)
	cfg.RetryInitial = 20 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.MaxDeliver = 20 // injected failures must not dead-letter anything
	// Short, so that what a crashed instance held comes back soon.
	cfg.AckWait = 2 * time.Second
	if s.ackWait > 0 {
		cfg.AckWait = s.ackWait
	}
	svc, err := framework.New(context.Background(), cfg, framework.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		s.t.Fatalf("framework.New(%s): %v", name, err)
	}
	svc.Use(s.mws...)
	s.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	return svc
}

// startInventory starts (or restarts) the inventory service on the same
// durable consumers.
func (s *system) startInventory() {
	s.t.Helper()
	s.invGen++
	s.invSvc = s.framework("inventory")
	inv, err := inventory.New(context.Background(), s.invSvc, &framework.SubscribeOptions{Concurrency: 8})
	if err != nil {
		s.t.Fatalf("inventory.New: %v", err)
	}
	s.inv = inv
	if s.invHTTP != nil {
		s.invHTTP.Close()
	}
	s.invHTTP = httptest.NewServer(inv.Handler())
	s.t.Cleanup(s.invHTTP.Close)
}

// addInventoryInstance starts one more inventory instance on the same
// durables: the instances split the work, and their writes to the same
// SKUs and orders meet only at the KV revision checks.
func (s *system) addInventoryInstance() *framework.Service {
	s.t.Helper()
	svc := s.framework("inventory")
	if _, err := inventory.New(context.Background(), svc, &framework.SubscribeOptions{Concurrency: 8}); err != nil {
		s.t.Fatalf("inventory.New: %v", err)
	}
	return svc
}

// stopInventory shuts the inventory service down gracefully.
func (s *system) stopInventory() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.invSvc.Shutdown(ctx); err != nil {
		s.t.Fatalf("inventory shutdown: %v", err)
	}
}

// crashInventory kills the inventory's connection without draining,
// mid-handler if it is busy: unacknowledged messages come back after
// AckWait, some writes are stored without their reply arriving.
func (s *system) crashInventory() {
	s.t.Helper()
	s.invSvc.Conn().NC.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.invSvc.Shutdown(ctx) // reap its goroutines; it cannot ack anything now
}

// do sends a JSON request and decodes the JSON answer into out (if not nil).
func do(t testing.TB, method, url string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Errorf("%s %s: %d, undecodable body %q: %v", method, url, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

func (s *system) setStock(sku string, n int) {
	s.t.Helper()
	if code := do(s.t, "PUT", s.invHTTP.URL+"/stock/"+sku, map[string]int{"available": n}, nil); code != http.StatusOK {
		s.t.Fatalf("PUT /stock/%s: %d", sku, code)
	}
}

func (s *system) stock(sku string) inventory.StockLevel {
	s.t.Helper()
	var l inventory.StockLevel
	if code := do(s.t, "GET", s.invHTTP.URL+"/stock/"+sku, nil, &l); code != http.StatusOK {
		s.t.Fatalf("GET /stock/%s: %d", sku, code)
	}
	return l
}

// place posts an order and returns its id; it fails the test unless 202.
func (s *system) place(customer string, items ...events.Line) string {
	s.t.Helper()
	var resp order.PlaceResponse
	code := do(s.t, "POST", s.orderHTTP.URL+"/orders", order.PlaceRequest{CustomerID: customer, Items: items}, &resp)
	if code != http.StatusAccepted || resp.Status != order.StatusPending || resp.ID == "" {
		s.t.Fatalf("POST /orders: %d %+v", code, resp)
	}
	return resp.ID
}

func (s *system) order(id string) order.Order {
	s.t.Helper()
	var o order.Order
	if code := do(s.t, "GET", s.orderHTTP.URL+"/orders/"+id, nil, &o); code != http.StatusOK {
		s.t.Fatalf("GET /orders/%s: %d", id, code)
	}
	return o
}

// waitStatus waits until the order has one of the statuses and returns it.
func (s *system) waitStatus(id string, timeout time.Duration, want ...string) order.Order {
	s.t.Helper()
	var last order.Order
	err := testenv.WaitFor(context.Background(), timeout, func() bool {
		o, err := s.orders.Get(context.Background(), id)
		if err != nil {
			return false
		}
		last = o
		for _, w := range want {
			if o.Status == w {
				return true
			}
		}
		return false
	})
	if err != nil {
		s.t.Fatalf("order %s: status %q after %s, want one of %v (history %+v)", id, last.Status, timeout, want, last.History)
	}
	return last
}

// settle waits until every consumer of the system has nothing pending.
func (s *system) settle(timeout time.Duration) {
	s.t.Helper()
	js := s.orderSvc.Conn().JS
	for _, c := range []struct{ stream, durable string }{
		{events.OrdersStream.Name, inventory.Durable},
		{events.InventoryStream.Name, order.ReservedDurable},
		{events.InventoryStream.Name, order.RejectedDurable},
	} {
		testenv.WaitConsumerIdle(s.t, js, c.stream, c.durable, timeout)
	}
}

// streamMsgs counts the messages stored in a stream.
func (s *system) streamMsgs(name string) uint64 {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.orderSvc.Conn().JS.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		s.t.Fatalf("stream %s: %v", name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		s.t.Fatalf("stream %s info: %v", name, err)
	}
	return info.State.Msgs
}

// flaky fails the first delivery of about one event in five, chosen by a
// hash of the event id so a run is reproducible, forcing redeliveries:
// half of them before the handler runs, half after it has done its work
// (as if the ack was lost), which is what tests idempotency.
func flaky(before, after *atomic.Int64) framework.Middleware {
	return func(next framework.Handler) framework.Handler {
		return framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			h := fnv.New32a()
			_, _ = h.Write([]byte(m.Consumer + "/" + m.Envelope.ID))
			if m.NumDelivered != 1 {
				return next.Handle(ctx, m)
			}
			switch h.Sum32() % 10 {
			case 0:
				before.Add(1)
				return errors.New("injected failure before handling a first delivery")
			case 1:
				if err := next.Handle(ctx, m); err != nil {
					return err
				}
				after.Add(1)
				return errors.New("injected failure after handling a first delivery")
			}
			return next.Handle(ctx, m)
		})
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, waitLong, what, cond)
}
