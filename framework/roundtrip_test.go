package framework_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

func TestRoundTripCarriesEnvelopeAndHeaders(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")

	got := make(chan *framework.Message, 1)
	var gotEv orderCreated
	_, err := framework.Subscribe(t.Context(), svc, createdByOrder, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		gotEv = ev
		got <- m
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	ack, err := createdByOrder.Publish(context.Background(), svc, orderCreated{ID: "o-1", Qty: 3},
		framework.WithEventID("evt-1"), framework.WithKey("o-1"), framework.WithTime(at), framework.WithHeader("x-tenant", "acme"))
	if err != nil {
		t.Fatal(err)
	}
	if ack.Stream != "ORDERS" || ack.Sequence != 1 || ack.Duplicate || ack.Subject != "orders.created.v1.o-1" {
		t.Fatalf("unexpected ack %+v", ack)
	}
	var m *framework.Message
	select {
	case m = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	if gotEv != (orderCreated{ID: "o-1", Qty: 3}) {
		t.Fatalf("decoded %+v", gotEv)
	}
	env := m.Envelope
	if env.ID != "evt-1" || env.Type != "orders.created.v1" || env.Source != "order" || env.SpecVersion != "1.0" ||
		env.ContentType != "application/json" || !env.Time.Equal(at) {
		t.Fatalf("envelope %+v", env)
	}
	for k, want := range map[string]string{"ce-id": "evt-1", "Nats-Msg-Id": "evt-1", "x-tenant": "acme", "ce-type": "orders.created.v1",
		"ce-datacontenttype": "application/json"} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if m.Subject != "orders.created.v1.o-1" || m.StreamSeq != 1 || m.NumDelivered != 1 || m.Stream != "ORDERS" || m.Consumer != "inventory" {
		t.Fatalf("metadata %+v", m)
	}
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "inventory", 5*time.Second)
}

func TestSameEventIDIsStoredOnce(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	ctx := context.Background()
	first, err := created.Publish(ctx, svc, orderCreated{ID: "a"}, framework.WithEventID("same"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := created.Publish(ctx, svc, orderCreated{ID: "a"}, framework.WithEventID("same"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || !second.Duplicate || second.Sequence != first.Sequence {
		t.Fatalf("first %+v second %+v", first, second)
	}
	st, _ := svc.Conn().JS.Stream(ctx, "ORDERS")
	info, _ := st.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
	// Consumed once as well.
	var mu sync.Mutex
	count := 0
	sub, err := framework.Subscribe(ctx, svc, created, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		mu.Lock()
		count++
		mu.Unlock()
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "one event acked", func() bool { return sub.Stats().Acked == 1 })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "inventory", 5*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if count != 1 {
		t.Fatalf("handled %d times", count)
	}
}
