package framework_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/rawperm"
	"github.com/jetkit/jetkit/testenv"
)

// servicePermissions are the least privileges of a jetkit service that
// declares stream ORDERS, publishes to orders.created.v1(.key), consumes
// it with durable consumer "inventory" and dead-letters into DEADLETTER.
// docs/security.md and deploy/nats-permissions.conf list the same.
func servicePermissions() *testenv.Permissions {
	return &testenv.Permissions{
		Publish: []string{
			"orders.created.v1", "orders.created.v1.>", // its events
			"$JS.API.INFO",                 // readiness (account info)
			"$JS.API.STREAM.INFO.ORDERS",   // EnsureStream: look up
			"$JS.API.STREAM.CREATE.ORDERS", // EnsureStream: create
			"$JS.API.STREAM.UPDATE.ORDERS", // EnsureStream: update
			"$JS.API.STREAM.NAMES",         // Subscribe: which stream stores the topic
			"$JS.API.CONSUMER.INFO.ORDERS.inventory",
			"$JS.API.CONSUMER.CREATE.ORDERS.inventory", "$JS.API.CONSUMER.CREATE.ORDERS.inventory.>",
			"$JS.API.CONSUMER.MSG.NEXT.ORDERS.inventory", // pull
			"$JS.ACK.ORDERS.inventory.>",                 // ack, nak, term, in-progress
			"$JS.API.STREAM.INFO.DEADLETTER", "$JS.API.STREAM.CREATE.DEADLETTER", "$JS.API.STREAM.UPDATE.DEADLETTER",
			"jetkit.deadletter.ORDERS.inventory", // its dead letters
		},
		Subscribe: []string{"_INBOX_order.>"}, // API replies and pulled messages (the inbox prefix _INBOX_<service>)
	}
}

func without(p *testenv.Permissions, subject string) *testenv.Permissions {
	q := *p
	q.DenyPublish = append(append([]string{}, p.DenyPublish...), subject)
	return &q
}

// leastPrivilegeServer starts a server where "svc" has perms and "admin"
// may do anything (to inspect the outcome).
func leastPrivilegeServer(t *testing.T, perms *testenv.Permissions) (*testenv.Server, testenv.User, testenv.User) {
	svc := testenv.User{Name: "svc", Password: "svc-secret-1", Permissions: perms}
	admin := testenv.User{Name: "admin", Password: "admin-secret-1"}
	return testenv.Start(t, testenv.Options{Configure: testenv.Users(svc, admin)}), svc, admin
}

// slowTimeoutConfig has a request timeout far longer than the test's
// deadlines, so that passing proves the error came from the permission
// violation and not from a timeout.
func slowTimeoutConfig(srv *testenv.Server, u testenv.User) framework.Config {
	cfg := u.Credentials().Apply(srv.Config("order"))
	cfg.RequestTimeout = time.Minute
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

func assertPermissionError(t *testing.T, err error, start time.Time, op, subject string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a permission error for %s %s, got nil", op, subject)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("permission error took %s: it waited for a timeout", el)
	}
	var pe *framework.PermissionError
	if !errors.Is(err, framework.ErrPermissionDenied) || !errors.As(err, &pe) || !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("error does not wrap ErrPermissionDenied/*PermissionError: %v", err)
	}
	t.Logf("error: %v", err)
	if pe.Operation != op || pe.Subject != subject {
		t.Fatalf("PermissionError{%s %s}, want {%s %s}: %v", pe.Operation, pe.Subject, op, subject, err)
	}
	if !strings.Contains(err.Error(), `"`+subject+`"`) || !strings.Contains(err.Error(), op) {
		t.Fatalf("message does not name %s %q: %v", op, subject, err)
	}
}

func startService(t *testing.T, cfg framework.Config) *framework.Service {
	t.Helper()
	svc, err := framework.New(context.Background(), cfg, framework.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("framework.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	return svc
}

func TestLeastPrivilegeServiceRunsEndToEnd(t *testing.T) {
	srv, user, admin := leastPrivilegeServer(t, servicePermissions())
	cfg := user.Credentials().Apply(srv.Config("order"))
	cfg.RetryInitial, cfg.RetryMax = 20*time.Millisecond, 100*time.Millisecond
	svc := startService(t, cfg)
	ctx := context.Background()
	if err := svc.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if _, err := svc.EnsureStream(ctx, ordersStream); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	// Declaring it again (the update path) needs no more than the above.
	if _, err := svc.EnsureStream(ctx, ordersStream); err != nil {
		t.Fatalf("EnsureStream again: %v", err)
	}
	sub, err := framework.Subscribe(ctx, svc, createdByOrder, "inventory", func(_ context.Context, ev orderCreated, _ *framework.Message) error {
		if ev.Qty <= 0 {
			return framework.Permanent(errors.New("qty must be positive"))
		}
		return nil
	}, &framework.SubscribeOptions{AckMode: framework.AckModeSync})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	const good, bad = 6, 2
	for i := range good + bad {
		qty := 1
		if i < bad {
			qty = 0
		}
		if _, err := createdByOrder.Publish(ctx, svc, orderCreated{ID: "o", Qty: qty, Index: i}, framework.WithKey("o-1")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	testenv.Eventually(t, 15*time.Second, "all settled", func() bool {
		st := sub.Stats()
		return st.Acked+st.DeadLettered == good+bad
	})
	if st := sub.Stats(); st.Acked != good || st.DeadLettered != bad || st.DeadLetterFailed != 0 {
		t.Fatalf("stats %+v", st)
	}
	adminSvc := startService(t, admin.Credentials().Apply(srv.Config("admin")))
	testenv.WaitConsumerIdle(t, adminSvc.Conn().JS, "ORDERS", "inventory", 10*time.Second)
	if n := len(deadLetters(t, adminSvc)); n != bad {
		t.Fatalf("dead-letter stream holds %d, want %d", n, bad)
	}
	// Still consuming after the dead letters.
	if _, err := createdByOrder.Publish(ctx, svc, orderCreated{ID: "late", Qty: 1}, framework.WithKey("late")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "late event acked", func() bool { return sub.Stats().Acked == good+1 })
}

func TestStreamCreateDeniedFailsAtOnceNamingTheSubject(t *testing.T) {
	srv, user, _ := leastPrivilegeServer(t, without(servicePermissions(), "$JS.API.STREAM.CREATE.ORDERS"))
	svc := startService(t, slowTimeoutConfig(srv, user))
	start := time.Now()
	_, err := svc.EnsureStream(context.Background(), ordersStream)
	assertPermissionError(t, err, start, "publish", "$JS.API.STREAM.CREATE.ORDERS")
	if !strings.Contains(err.Error(), "create stream ORDERS") {
		t.Fatalf("error does not say what failed: %v", err)
	}
	// The connection is still usable for what is allowed.
	if err := svc.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after a refused call: %v", err)
	}
}

func TestDeadLetterStreamDeniedFailsNew(t *testing.T) {
	srv, user, _ := leastPrivilegeServer(t, without(servicePermissions(), "$JS.API.STREAM.CREATE.DEADLETTER"))
	start := time.Now()
	_, err := framework.New(context.Background(), slowTimeoutConfig(srv, user), framework.WithLogger(slog.New(slog.DiscardHandler)))
	assertPermissionError(t, err, start, "publish", "$JS.API.STREAM.CREATE.DEADLETTER")
	if !strings.Contains(err.Error(), "create it once as an operator") {
		t.Errorf("the error does not say who creates the dead-letter stream: %v", err)
	}
}

func TestInboxDeniedFailsNew(t *testing.T) {
	perms := servicePermissions()
	perms.Subscribe = []string{"orders.>"}
	srv, user, _ := leastPrivilegeServer(t, perms)
	start := time.Now()
	_, err := framework.New(context.Background(), slowTimeoutConfig(srv, user), framework.WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil || !strings.Contains(err.Error(), "subscribe") || !strings.Contains(err.Error(), `"_INBOX_order.`) {
		t.Fatalf("want a subscribe permission error naming the inbox, got %v", err)
	}
	var pe *framework.PermissionError
	if !errors.As(err, &pe) || time.Since(start) > 20*time.Second {
		t.Fatalf("not a fast *PermissionError: %v after %s", err, time.Since(start))
	}
}

func TestConsumerCreateDeniedFailsSubscribe(t *testing.T) {
	srv, user, _ := leastPrivilegeServer(t, without(servicePermissions(), "$JS.API.CONSUMER.CREATE.ORDERS.inventory"))
	svc := startService(t, slowTimeoutConfig(srv, user))
	if _, err := svc.EnsureStream(context.Background(), ordersStream); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := framework.Subscribe(t.Context(), svc, created, "inventory", func(context.Context, orderCreated, *framework.Message) error { return nil }, nil)
	assertPermissionError(t, err, start, "publish", "$JS.API.CONSUMER.CREATE.ORDERS.inventory")
	if len(svc.Subscriptions()) != 0 {
		t.Fatalf("a failed subscription is still tracked")
	}
}

func TestPullDeniedFailsSubscribeAtStartUp(t *testing.T) {
	srv, user, _ := leastPrivilegeServer(t, without(servicePermissions(), "$JS.API.CONSUMER.MSG.NEXT.ORDERS.inventory"))
	svc := startService(t, slowTimeoutConfig(srv, user))
	if _, err := svc.EnsureStream(context.Background(), ordersStream); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := framework.Subscribe(t.Context(), svc, created, "inventory", func(context.Context, orderCreated, *framework.Message) error { return nil }, nil)
	assertPermissionError(t, err, start, "publish", "$JS.API.CONSUMER.MSG.NEXT.ORDERS.inventory")
	if len(svc.Subscriptions()) != 0 {
		t.Fatalf("a failed subscription is still tracked")
	}
}

func TestPublishDeniedFailsAtOnceNamingTheSubject(t *testing.T) {
	srv, user, _ := leastPrivilegeServer(t, without(servicePermissions(), "orders.created.v1.vip"))
	svc := startService(t, slowTimeoutConfig(srv, user))
	ctx := context.Background()
	if _, err := svc.EnsureStream(ctx, ordersStream); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := createdByOrder.Publish(ctx, svc, orderCreated{ID: "x", Qty: 1}, framework.WithKey("vip"))
	assertPermissionError(t, err, start, "publish", "orders.created.v1.vip")
	// Allowed subjects still work on the same connection, unaffected.
	if _, err := createdByOrder.Publish(ctx, svc, orderCreated{ID: "y", Qty: 1}, framework.WithKey("regular")); err != nil {
		t.Fatalf("allowed publish after a refused one: %v", err)
	}
}

func TestRawPermWatchForRawKVCalls(t *testing.T) {
	perms := servicePermissions()
	perms.Publish = append(perms.Publish, "$JS.API.STREAM.CREATE.KV_orders", "$JS.API.STREAM.UPDATE.KV_orders",
		"$JS.API.DIRECT.GET.KV_orders.>") // but not $KV.orders.> (writes)
	srv, user, _ := leastPrivilegeServer(t, perms)
	svc := startService(t, slowTimeoutConfig(srv, user))
	conn := svc.Conn()
	ctx := context.Background()

	wctx, done := rawperm.Watch(ctx, conn)
	kv, err := conn.JS.CreateOrUpdateKeyValue(wctx, jetstream.KeyValueConfig{Bucket: "orders"})
	if err = done(err); err != nil {
		t.Fatalf("allowed bucket: %v", err)
	}
	start := time.Now()
	wctx, done = rawperm.Watch(ctx, conn)
	_, err = kv.Put(wctx, "o-1", []byte("{}"))
	assertPermissionError(t, done(err), start, "publish", "$KV.orders.o-1")

	start = time.Now()
	wctx, done = rawperm.Watch(ctx, conn)
	_, err = conn.JS.CreateOrUpdateKeyValue(wctx, jetstream.KeyValueConfig{Bucket: "stock"})
	assertPermissionError(t, done(err), start, "publish", "$JS.API.STREAM.UPDATE.KV_stock") // CreateOrUpdate tries the update first
}

func TestReadinessNamesARefusedAccountInfo(t *testing.T) {
	srv, user, _ := leastPrivilegeServer(t, without(servicePermissions(), "$JS.API.INFO"))
	svc := startService(t, slowTimeoutConfig(srv, user))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := svc.Ready(ctx)
	if err == nil || !strings.Contains(err.Error(), `"$JS.API.INFO"`) || time.Since(start) > 15*time.Second {
		t.Fatalf("Ready: want a fast error naming $JS.API.INFO, got %v after %s", err, time.Since(start))
	}
}

// A service that may not register its instances (no jetkit_instances
// permissions) still subscribes: the registration's refusal, which comes
// while further Subscribe calls run, is the registration's alone. It is
// logged once.
func TestRefusedRegistrationFailsNoSubscribe(t *testing.T) {
	perms := servicePermissions()
	for _, d := range []string{"inventory-a", "inventory-b", "inventory-c", "inventory-d"} {
		perms.Publish = append(perms.Publish, "$JS.API.CONSUMER.INFO.ORDERS."+d, "$JS.API.CONSUMER.CREATE.ORDERS."+d,
			"$JS.API.CONSUMER.MSG.NEXT.ORDERS."+d, "$JS.ACK.ORDERS."+d+".>")
	}
	srv, user, admin := leastPrivilegeServer(t, perms)
	newService(t, srv, "order", func(c *framework.Config) { *c = admin.Credentials().Apply(*c) }) // declares ORDERS
	logs := &syncBuffer{}
	svc := testenv.NewService(t, slowTimeoutConfig(srv, user), framework.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	for _, d := range []string{"inventory", "inventory-a", "inventory-b", "inventory-c", "inventory-d"} {
		if _, err := framework.Subscribe(t.Context(), svc, createdByOrder, d, func(context.Context, orderCreated, *framework.Message) error { return nil }, nil); err != nil {
			t.Fatalf("Subscribe %s beside the refused registration: %v", d, err)
		}
	}
	testenv.Eventually(t, 20*time.Second, "the refusal logged", func() bool {
		return strings.Contains(logs.String(), "instance registration refused by permissions")
	})
	if n := strings.Count(logs.String(), "instance registration refused"); n != 1 {
		t.Errorf("refusal logged %d times, want once:\n%s", n, logs.String())
	}
}
