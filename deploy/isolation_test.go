package deploy_test

// These tests prove what a compromised service cannot do under
// nats-permissions.conf: read another service's replies, reconfigure
// another service's stream or the shared DEADLETTER stream; and that a
// dead-letter copy that keeps failing is visible, not a silent loop.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/health"
	"github.com/jetkit/jetkit/internal/rawperm"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/inventory"
	"github.com/jetkit/jetkit/services/order"
	"github.com/jetkit/jetkit/testenv"
)

// TestServiceCannotReadAnotherServicesReplies: connected as inventory, a
// subscription on every inbox (_INBOX.>) or on order's inbox prefix is
// refused, and none of the replies of an order's life (JetStream API, KV
// reads of the order record, pulled messages) reaches it.
func TestServiceCannotReadAnotherServicesReplies(t *testing.T) {
	srv := permissionsServer(t)
	ctx := context.Background()
	connectAs(t, srv, "ops") // declares DEADLETTER

	var mu sync.Mutex
	refused := map[string]bool{}
	spy, err := nats.Connect(srv.URL(), nats.UserInfo("inventory", passwords["inventory"]),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			defer mu.Unlock()
			for _, subj := range []string{"_INBOX.>", "_INBOX_order.>", "_INBOX_inventory.>"} {
				if strings.Contains(err.Error(), `"`+subj+`"`) {
					refused[subj] = true
				}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	var seen atomic.Int64
	for _, subj := range []string{"_INBOX.>", "_INBOX_order.>", "_INBOX_inventory.>"} {
		if _, err := spy.Subscribe(subj, func(m *nats.Msg) {
			if m.Sub.Subject != "_INBOX_inventory.>" { // its own replies and pulled messages are its business
				seen.Add(1)
				t.Logf("read %s: %.200s", m.Subject, m.Data)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "inbox subscriptions refused", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return refused["_INBOX.>"] && refused["_INBOX_order.>"]
	})

	_, _, _, orders := startSampleServices(t, srv)
	placed, err := orders.Place(ctx, "customer-secret-42", []events.Line{{SKU: "apple", Qty: 1}})
	if err != nil {
		t.Fatalf("Place: %v", err)
	}
	testenv.Eventually(t, 20*time.Second, "order settled", func() bool {
		o, err := orders.Get(ctx, placed.ID)
		return err == nil && o.Status != order.StatusPending
	})
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	ownRefused := refused["_INBOX_inventory.>"]
	mu.Unlock()
	if ownRefused {
		t.Error("inventory may not subscribe to its own inbox prefix")
	}
	if n := seen.Load(); n != 0 {
		t.Fatalf("inventory read %d replies addressed to the order service", n)
	}
}

// TestServiceCannotReconfigureOthersStreams: as order, INVENTORY and
// DEADLETTER cannot be limited, sealed, re-created differently or deleted;
// order may still reconfigure its own ORDERS.
func TestServiceCannotReconfigureOthersStreams(t *testing.T) {
	srv := permissionsServer(t)
	ctx := context.Background()
	ops := connectAs(t, srv, "ops")
	for _, own := range []framework.StreamSpec{events.OrdersStream, events.InventoryStream} {
		if err := events.Declare(ctx, ops, own); err != nil {
			t.Fatal(err)
		}
	}
	ordSvc := connectAs(t, srv, "order")
	conn := ordSvc.Conn()
	refused := func(what string, call func(ctx context.Context) error) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		wctx, done := rawperm.Watch(cctx, conn)
		err := done(call(wctx))
		if !errors.Is(err, framework.ErrPermissionDenied) {
			t.Errorf("order %s: want a permission error, got %v", what, err)
		}
	}
	for _, name := range []string{"INVENTORY", "DEADLETTER"} {
		st, err := ops.Conn().JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		limited, sealed := cfg, cfg
		limited.MaxMsgs = 1
		sealed.Sealed = true
		refused("limiting "+name, func(ctx context.Context) error { _, err := conn.JS.UpdateStream(ctx, limited); return err })
		refused("sealing "+name, func(ctx context.Context) error { _, err := conn.JS.UpdateStream(ctx, sealed); return err })
		refused("re-creating "+name, func(ctx context.Context) error { _, err := conn.JS.CreateStream(ctx, limited); return err })
		refused("deleting "+name, func(ctx context.Context) error { return conn.JS.DeleteStream(ctx, name) })
		after, err := ops.Conn().JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if c := after.CachedInfo().Config; c.MaxMsgs != cfg.MaxMsgs || c.Sealed {
			t.Errorf("%s changed: max_msgs %d, sealed %v", name, c.MaxMsgs, c.Sealed)
		}
	}
	own := events.OrdersStream
	own.MaxAge = time.Hour
	if _, err := ordSvc.EnsureStream(ctx, own); err != nil {
		t.Fatalf("order updating its own stream: %v", err)
	}
}

// TestFailingDeadLetterCopyIsVisible: with DEADLETTER sealed by an
// operator mistake, a poison message is kept and retried (never dropped),
// and the failure shows in the stats, in an error log naming the reason,
// and in /readyz; once DEADLETTER is usable again the copy is stored and
// the service is ready. Reconciled: published = acked + dead-lettered.
func TestFailingDeadLetterCopyIsVisible(t *testing.T) {
	srv := permissionsServer(t)
	ctx := context.Background()
	ops := connectAs(t, srv, "ops")
	js := ops.Conn().JS
	for _, own := range []framework.StreamSpec{events.OrdersStream, events.InventoryStream} {
		if err := events.Declare(ctx, ops, own); err != nil {
			t.Fatal(err)
		}
	}
	dl, err := js.Stream(ctx, "DEADLETTER")
	if err != nil {
		t.Fatal(err)
	}
	sealed := dl.CachedInfo().Config
	sealed.Sealed = true
	if _, err := js.UpdateStream(ctx, sealed); err != nil {
		t.Fatal(err)
	}

	var logs lockedBuffer
	cfg := testenv.Credentials{User: "inventory", Password: passwords["inventory"]}.Apply(srv.Config("inventory"))
	cfg.RetryInitial, cfg.RetryMax = 20*time.Millisecond, 100*time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	invSvc, err := framework.New(ctx, cfg, framework.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = invSvc.Shutdown(sctx)
	}()
	if _, err := inventory.New(ctx, invSvc, nil); err != nil {
		t.Fatal(err)
	}
	probes := health.New(invSvc)
	readyz := func() (int, string) {
		rec := httptest.NewRecorder()
		probes.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := readyz(); code != 200 {
		t.Fatalf("/readyz before: %d %s", code, body)
	}
	poison := &nats.Msg{Subject: "orders.created.v1.poison", Data: []byte("{not json"), Header: nats.Header{
		"ce-specversion": {"1.0"}, "ce-id": {"poison-1"}, "ce-source": {"test"}, "ce-type": {"orders.created.v1"}}}
	if _, err := js.PublishMsg(ctx, poison); err != nil {
		t.Fatal(err)
	}
	reserve := func() *framework.Subscription {
		for _, s := range invSvc.Subscriptions() {
			if s.Durable() == inventory.Durable {
				return s
			}
		}
		t.Fatal("no reserve subscription")
		return nil
	}()
	testenv.Eventually(t, 15*time.Second, "dead-letter copy failing", func() bool { return reserve.Stats().DeadLetterFailed >= 2 })
	code, body := readyz()
	if code != 503 || !strings.Contains(body, "dead-letter") || !strings.Contains(body, "ORDERS."+inventory.Durable) {
		t.Fatalf("/readyz while dead-letter copies fail: %d %s", code, body)
	}
	if out := logs.String(); !strings.Contains(out, "dead-letter copy failed") || !strings.Contains(out, `"reason":"decode"`) {
		t.Fatalf("no error log naming the reason:\n%s", out)
	}

	// The operator replaces the sealed stream: the retried copy is stored.
	if err := js.DeleteStream(ctx, "DEADLETTER"); err != nil {
		t.Fatal(err)
	}
	sealed.Sealed = false
	if _, err := js.CreateStream(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "dead-lettered", func() bool { return reserve.Stats().DeadLettered == 1 })
	testenv.WaitConsumerIdle(t, js, "ORDERS", inventory.Durable, 10*time.Second)
	if code, body := readyz(); code != 200 {
		t.Fatalf("/readyz after the copy was stored: %d %s", code, body)
	}
	st := reserve.Stats()
	published := subjectCount(t, js, "ORDERS", "orders.created.v1")
	if published != 1 || st.Acked+st.DeadLettered != published {
		t.Fatalf("reconciliation: published %d, stats %+v", published, st)
	}
	if info, err := mustStream(t, js, "DEADLETTER").Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("dead letters: want 1, got %v %v", info, err)
	}
}

func mustStream(t *testing.T, js jetstream.JetStream, name string) jetstream.Stream {
	t.Helper()
	st, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
