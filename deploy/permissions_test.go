package deploy_test

// These tests prove nats-permissions.conf: its least-privilege users run
// the sample services, and cannot do more.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/inventory"
	"github.com/jetkit/jetkit/services/order"
	"github.com/jetkit/jetkit/testenv"
)

var passwords = map[string]string{
	"order":     "order-test-pw-1",
	"inventory": "inventory-test-pw-2",
	"ops":       "ops-test-pw-3",
}

// permissionsServer starts an embedded server with the users and
// permissions of nats-permissions.conf.
func permissionsServer(t *testing.T) *testenv.Server {
	t.Setenv("ORDER_NATS_PASSWORD", passwords["order"])
	t.Setenv("INVENTORY_NATS_PASSWORD", passwords["inventory"])
	t.Setenv("OPS_NATS_PASSWORD", passwords["ops"])
	return testenv.Start(t, testenv.Options{Configure: testenv.AuthFromConfigFile(t, "nats-permissions.conf")})
}

// connectAs starts a framework service as user. The request timeout is
// long on purpose: a missing permission must fail fast, by itself.
func connectAs(t *testing.T, srv *testenv.Server, user string) *framework.Service {
	t.Helper()
	cfg := testenv.Credentials{User: user, Password: passwords[user]}.Apply(srv.Config(user))
	cfg.RequestTimeout = time.Minute
	cfg.RetryInitial, cfg.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	svc, err := framework.New(context.Background(), cfg, framework.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatalf("framework.New as %s: %v", user, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	return svc
}

// startSampleServices starts inventory and order as their users, at once:
// each owns its stream and waits for the other's. The ops user has
// created DEADLETTER, which no service may create or change.
func startSampleServices(t *testing.T, srv *testenv.Server) (invSvc, ordSvc *framework.Service, inv *inventory.Service, orders *order.Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	invSvc, ordSvc = connectAs(t, srv, "inventory"), connectAs(t, srv, "order")
	invErr := make(chan error, 1)
	go func() {
		var err error
		inv, err = inventory.New(ctx, invSvc, nil)
		invErr <- err
	}()
	orders, err := order.New(ctx, ordSvc, nil)
	if err != nil {
		t.Fatalf("order.New with the order user's permissions: %v", err)
	}
	if err := <-invErr; err != nil {
		t.Fatalf("inventory.New with the inventory user's permissions: %v", err)
	}
	return invSvc, ordSvc, inv, orders
}

func TestSampleServicesRunWithLeastPrivilege(t *testing.T) {
	srv := permissionsServer(t)
	ctx := context.Background()

	ops := connectAs(t, srv, "ops") // declares DEADLETTER
	invSvc, ordSvc, inv, orders := startSampleServices(t, srv)
	if err := inv.SeedStock(ctx, map[string]int{"apple": 5}); err != nil {
		t.Fatalf("SeedStock: %v", err)
	}
	if _, err := inv.StockLevels(ctx); err != nil {
		t.Fatalf("StockLevels (KV keys): %v", err)
	}
	for _, s := range []*framework.Service{invSvc, ordSvc} {
		if err := s.Ready(ctx); err != nil {
			t.Fatalf("Ready: %v", err)
		}
	}
	// /readyz, the stores' checks included, passes with these permissions.
	for name, h := range map[string]http.Handler{"inventory": inv.Handler(), "order": orders.Handler()} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s /readyz with its user's permissions: %d %s", name, rec.Code, rec.Body.String())
		}
	}

	// Each service registers its consumers' instances for the capacity
	// estimator, under its own permissions.
	testenv.Eventually(t, 20*time.Second, "instance registrations of both services", func() bool {
		kv, err := ops.Conn().JS.KeyValue(ctx, wire.InstanceBucket)
		if err != nil {
			return false
		}
		for _, prefix := range []string{wire.InstanceKeyPrefix("ORDERS", inventory.Durable), wire.InstanceKeyPrefix("INVENTORY", order.ReservedDurable)} {
			keys, err := kv.ListKeysFiltered(ctx, prefix+"*")
			if err != nil {
				return false
			}
			n := 0
			for range keys.Keys() {
				n++
			}
			if n != 1 {
				return false
			}
		}
		return true
	})

	// The saga end to end: confirmed, rejected, then cancelled (release).
	waitStatus := func(id, want string) {
		t.Helper()
		testenv.Eventually(t, 20*time.Second, "order "+id+" "+want, func() bool {
			o, err := orders.Get(ctx, id)
			return err == nil && o.Status == want
		})
	}
	ok, err := orders.Place(ctx, "c-1", []events.Line{{SKU: "apple", Qty: 2}})
	if err != nil {
		t.Fatalf("Place: %v", err)
	}
	waitStatus(ok.ID, order.StatusConfirmed)
	short, err := orders.Place(ctx, "c-2", []events.Line{{SKU: "apple", Qty: 99}})
	if err != nil {
		t.Fatalf("Place: %v", err)
	}
	waitStatus(short.ID, order.StatusRejected)
	if _, err := orders.Cancel(ctx, ok.ID); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	waitStatus(ok.ID, order.StatusCancelled)
	testenv.Eventually(t, 20*time.Second, "stock released", func() bool {
		l, err := inv.Stock(ctx, "apple")
		return err == nil && l.Available == 5 && l.InFlight == 0
	})

	// Poison messages make both services dead-letter (their dead-letter
	// subjects are part of their permissions).
	js := ops.Conn().JS
	for _, subject := range []string{"orders.created.v1.poison", "inventory.rejected.v1.poison"} {
		poison := &nats.Msg{Subject: subject, Data: []byte("{not json"), Header: nats.Header{
			"ce-specversion": {"1.0"}, "ce-id": {subject}, "ce-source": {"test"}, "ce-type": {strings.TrimSuffix(subject, ".poison")},
		}}
		if _, err := js.PublishMsg(ctx, poison); err != nil {
			t.Fatal(err)
		}
	}
	deadLettered := map[string]uint64{inventory.Durable: 1, order.RejectedDurable: 1}

	// Reconcile with the ops user: every event published was handled by
	// each consumer: acked or dead-lettered.
	type consumer struct{ stream, durable, subject string }
	for _, c := range []consumer{
		{"ORDERS", inventory.Durable, "orders"}, // orders.created.v1 and orders.cancelled.v1
		{"INVENTORY", order.ReservedDurable, "inventory.reserved.v1"},
		{"INVENTORY", order.RejectedDurable, "inventory.rejected.v1"},
	} {
		// The handled count reaching what was published is the condition;
		// an idle consumer alone is not (it may not count the poison yet).
		published := subjectCount(t, js, c.stream, c.subject)
		var handled uint64
		var st framework.SubscriptionStats
		_ = testenv.WaitFor(ctx, 15*time.Second, func() bool {
			for _, s := range append(invSvc.Subscriptions(), ordSvc.Subscriptions()...) {
				if s.Stream() == c.stream && s.Durable() == c.durable {
					st = s.Stats()
					handled = st.Acked + st.DeadLettered
				}
			}
			return handled >= published
		})
		testenv.WaitConsumerIdle(t, js, c.stream, c.durable, 15*time.Second)
		if st.DeadLettered != deadLettered[c.durable] || st.DeadLetterFailed != 0 {
			t.Errorf("%s: dead-lettered %d (failed %d), want %d", c.durable, st.DeadLettered, st.DeadLetterFailed, deadLettered[c.durable])
		}
		if published == 0 || published != handled {
			t.Errorf("%s/%s: published %d on %s, handled %d", c.stream, c.durable, published, c.subject, handled)
		}
	}
	dlq, err := js.Stream(ctx, "DEADLETTER")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := dlq.Info(ctx); err != nil || info.State.Msgs != 2 {
		t.Fatalf("dead letters: want 2, got %v %v", info, err)
	}
}

// subjectCount counts the messages in stream on subject and below it.
func subjectCount(t *testing.T, js jetstream.JetStream, stream, subject string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for s, c := range info.State.Subjects {
		if s == subject || strings.HasPrefix(s, subject+".") {
			n += c
		}
	}
	return n
}

// TestServiceUsersAreRestricted checks the other side of least privilege:
// a service cannot publish another service's events or read its buckets,
// and says so at once, naming the subject.
func TestServiceUsersAreRestricted(t *testing.T) {
	srv := permissionsServer(t)
	ctx := context.Background()
	ops := connectAs(t, srv, "ops")
	for _, own := range []framework.StreamSpec{events.OrdersStream, events.InventoryStream} {
		if err := events.Declare(ctx, ops, own); err != nil {
			t.Fatal(err)
		}
	}
	ordSvc := connectAs(t, srv, "order")
	start := time.Now()
	_, err := events.InventoryReservedTopic.Publish(ctx, ordSvc, events.InventoryReserved{OrderID: "forged"}, framework.WithKey("forged"))
	var pe *framework.PermissionError
	if !errors.As(err, &pe) || pe.Subject != "inventory.reserved.v1.forged" || time.Since(start) > 20*time.Second {
		t.Fatalf("order user publishing inventory's event: want a fast PermissionError naming the subject, got %v", err)
	}
	// A raw JetStream call is not watched by jetkit: it times out.
	kvCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = ordSvc.Conn().JS.CreateOrUpdateKeyValue(kvCtx, jetstream.KeyValueConfig{Bucket: inventory.StockBucket})
	if err == nil {
		t.Fatalf("order user could declare inventory's KV bucket")
	}
	if _, err := ordSvc.EnsureStream(ctx, framework.StreamSpec{Name: "ROGUE", Subjects: []string{"rogue.>"}}); !errors.Is(err, framework.ErrPermissionDenied) {
		t.Fatalf("order user creating an undeclared stream: want ErrPermissionDenied, got %v", err)
	}
	if len(ordSvc.Subscriptions()) != 0 {
		t.Fatal("unexpected subscriptions")
	}
	// Registrations: a service may write only its own consumers'.
	if _, err := ops.Conn().JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: wire.InstanceBucket, History: 1}); err != nil {
		t.Fatal(err)
	}
	regCtx, regCancel := context.WithTimeout(ctx, 2*time.Second)
	defer regCancel()
	kv, err := ordSvc.Conn().JS.KeyValue(regCtx, wire.InstanceBucket)
	if err != nil {
		t.Fatalf("order user binding the registrations bucket: %v", err)
	}
	if _, err := kv.Put(regCtx, wire.InstanceKeyPrefix("ORDERS", inventory.Durable)+"forged", []byte(`{"concurrency":1000}`)); err == nil {
		t.Fatal("order user registered an instance of inventory's consumer")
	}
}
