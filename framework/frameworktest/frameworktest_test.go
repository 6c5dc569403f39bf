package frameworktest_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/frameworktest"
	"github.com/jetkit/jetkit/testenv"
)

type orderPlaced struct {
	ID  string `json:"id"`
	Qty int    `json:"qty"`
}

type stockReserved struct {
	OrderID string `json:"order_id"`
}

var (
	placed   = framework.MustNewTopic[orderPlaced]("orders.placed.v1", framework.Keyed())
	reserved = framework.MustNewTopic[stockReserved]("stock.reserved.v1")
)

// reserver is a handler under test: it publishes through a Publisher it is
// given, so a test gives it a Recorder's.
type reserver struct{ pub framework.Publisher }

func (r reserver) handle(ctx context.Context, ev orderPlaced, m *framework.Message) error {
	if ev.Qty <= 0 {
		return framework.Permanent(errors.New("quantity must be positive"))
	}
	_, err := reserved.Publish(ctx, r.pub, stockReserved{OrderID: ev.ID}, framework.WithEventID("reserved-"+m.Envelope.ID))
	return err
}

func TestDeliverRunsTheHandlerAndRecordsItsPublishes(t *testing.T) {
	rec := frameworktest.NewRecorder()
	h := reserver{pub: rec.Publisher()}
	m, err := frameworktest.NewMessage(placed, orderPlaced{ID: "o-1", Qty: 2}, framework.WithKey("o-1"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "orders.placed.v1.o-1" || m.Envelope.Type != "orders.placed.v1" || m.NumDelivered != 1 || m.Attempt != 1 {
		t.Fatalf("message: subject %q type %q delivery %d attempt %d", m.Subject, m.Envelope.Type, m.NumDelivered, m.Attempt)
	}
	if err := m.InProgress(); err != nil {
		t.Fatalf("InProgress: %v", err)
	}
	if err := m.Raw().Ack(); err == nil {
		t.Fatal("a handler acking a made-up message got no error; the framework settles messages")
	}
	if err := frameworktest.Deliver(t.Context(), placed, h.handle, m); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	got, err := frameworktest.Events(rec, reserved)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].OrderID != "o-1" {
		t.Fatalf("recorded events %+v, want one for o-1", got)
	}
	if p := rec.Published()[0]; p.Envelope.ID != "reserved-"+m.Envelope.ID || p.Msg.Subject != "stock.reserved.v1" {
		t.Fatalf("recorded %q with id %q", p.Msg.Subject, p.Envelope.ID)
	}

	bad, err := frameworktest.NewMessage(placed, orderPlaced{ID: "o-2"}, framework.WithKey("o-2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := frameworktest.Deliver(t.Context(), placed, h.handle, bad); !framework.IsPermanent(err) {
		t.Fatalf("a zero quantity: %v, want a permanent error", err)
	}
	rec.Fail(errors.New("stream unavailable"))
	if err := frameworktest.Deliver(t.Context(), placed, h.handle, m); err == nil || framework.IsPermanent(err) {
		t.Fatalf("a failing publish: %v, want a transient error", err)
	}
	if n := len(rec.Published()); n != 1 {
		t.Fatalf("%d messages recorded, want 1 (failed publishes are not recorded)", n)
	}
}

// What Deliver refuses is what a subscription dead-letters: another
// topic's event, a missing envelope, and what Publish itself refuses.
func TestDeliverDecodesLikeASubscription(t *testing.T) {
	other, err := frameworktest.NewMessage(reserved, stockReserved{OrderID: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	called := false
	h := func(context.Context, orderPlaced, *framework.Message) error { called = true; return nil }
	if err := frameworktest.Deliver(t.Context(), placed, h, other); !errors.Is(err, framework.ErrDecode) || !framework.IsPermanent(err) || called {
		t.Fatalf("another topic's event: %v (handler called: %v), want a permanent ErrDecode without calling the handler", err, called)
	}
	if _, err := frameworktest.FromNATS(&nats.Msg{Subject: "orders.placed.v1.o-1", Data: []byte(`{}`)}); !errors.Is(err, framework.ErrDecode) {
		t.Fatalf("a message without an envelope: %v, want ErrDecode", err)
	}
	if _, err := frameworktest.NewMessage(placed, orderPlaced{ID: "o-1"}); !errors.Is(err, framework.ErrInvalidSubject) {
		t.Fatalf("a keyed topic without a key: %v, want ErrInvalidSubject", err)
	}
}

// NewMessage builds what a real subscription hands its handler: same
// subject, envelope, payload and header names.
func TestNewMessageMatchesARealDelivery(t *testing.T) {
	srv := testenv.Start(t)
	cfg := srv.Config(frameworktest.Source)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc, err := framework.New(ctx, cfg, framework.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Shutdown(context.Background()) }()
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	got := make(chan *framework.Message, 1)
	_, err = framework.Subscribe(ctx, svc, placed, "parity", func(_ context.Context, _ orderPlaced, m *framework.Message) error {
		got <- m
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := orderPlaced{ID: "o-9", Qty: 3}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	opts := []framework.PublishOption{framework.WithKey("o-9"), framework.WithEventID("e-9"), framework.WithTime(at), framework.WithHeader("x-tenant", "t1")}
	if _, err := placed.Publish(ctx, svc, ev, opts...); err != nil {
		t.Fatal(err)
	}
	var real *framework.Message
	select {
	case real = <-got:
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
	made, err := frameworktest.NewMessage(placed, ev, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if made.Subject != real.Subject || string(made.Data) != string(real.Data) {
		t.Errorf("made %q %s, real %q %s", made.Subject, made.Data, real.Subject, real.Data)
	}
	if made.Envelope.ID != real.Envelope.ID || made.Envelope.Type != real.Envelope.Type || !made.Envelope.Time.Equal(real.Envelope.Time) ||
		made.Envelope.ContentType != real.Envelope.ContentType || made.Envelope.SpecVersion != real.Envelope.SpecVersion {
		t.Errorf("made envelope %+v, real %+v", made.Envelope, real.Envelope)
	}
	keys := func(h nats.Header) []string {
		var ks []string
		for k := range h {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	if mk, rk := keys(made.Header), keys(real.Header); !slices.Equal(mk, rk) {
		t.Errorf("made headers %v, real %v", mk, rk)
	}
}
