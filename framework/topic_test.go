package framework_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// A typed subscription filters exactly one subject: the topic's own for an
// unkeyed topic, every key below it for a keyed one. A durable left with
// the older two-filter layout is updated in place, and each subscription
// gets its own events and no others.
func TestTopicSubscriptionsFilterOneSubject(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "inventory")
	ctx := context.Background()

	// The layout earlier versions created: base subject and keys in one consumer.
	if _, err := svc.Conn().JS.CreateOrUpdateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{
		Durable: "plain", AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubjects: []string{"orders.created.v1", "orders.created.v1.>"},
	}); err != nil {
		t.Fatal(err)
	}

	var plain, byOrder atomic.Int64
	count := func(n *atomic.Int64, keyed bool) func(context.Context, orderCreated, *framework.Message) error {
		return func(_ context.Context, _ orderCreated, m *framework.Message) error {
			if isKeyed := m.Subject != "orders.created.v1"; isKeyed != keyed {
				t.Errorf("subscription keyed=%v got subject %s", keyed, m.Subject)
			}
			n.Add(1)
			return nil
		}
	}
	plainSub, err := framework.Subscribe(ctx, svc, created, "plain", count(&plain, false), nil)
	if err != nil {
		t.Fatal(err)
	}
	keyedSub, err := framework.Subscribe(ctx, svc, createdByOrder, "by-order", count(&byOrder, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	for sub, want := range map[*framework.Subscription][]string{plainSub: {"orders.created.v1"}, keyedSub: {"orders.created.v1.>"}} {
		info, err := sub.Consumer().Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		filters := slices.DeleteFunc(append([]string{info.Config.FilterSubject}, info.Config.FilterSubjects...),
			func(s string) bool { return s == "" })
		if !slices.Equal(filters, want) {
			t.Errorf("consumer %s filters %v, want exactly %v", sub.Durable(), filters, want)
		}
	}

	const unkeyed, keyed = 5, 3
	publishN(t, svc, unkeyed)
	for i := range keyed {
		if _, err := createdByOrder.Publish(ctx, svc, orderCreated{ID: "o", Qty: 1, Index: i}, framework.WithKey(fmt.Sprintf("o-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "each subscription handled its own events", func() bool {
		return plainSub.Stats().Acked == unkeyed && keyedSub.Stats().Acked == keyed
	})
	// Nothing else arrives: both consumers have nothing left.
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "plain", 10*time.Second)
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "by-order", 10*time.Second)
	if plain.Load() != unkeyed || byOrder.Load() != keyed {
		t.Fatalf("handled %d unkeyed and %d keyed events, want %d and %d", plain.Load(), byOrder.Load(), unkeyed, keyed)
	}
}
