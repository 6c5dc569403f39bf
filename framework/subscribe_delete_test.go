package framework_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// A service deletes a durable of its own once no subscription uses it; the
// next subscription with that name starts from the beginning again.
func TestDeleteConsumerRemovesOwnDurable(t *testing.T) {
	const n = 20
	srv := testenv.Start(t)
	svc := newService(t, srv, "inventory")
	js := svc.Conn().JS
	done := &effects{n: map[int]int{}}
	h := func(ctx context.Context, ev orderCreated, m *framework.Message) error { done.add(ev.Index); return nil }
	sub, err := framework.Subscribe(t.Context(), svc, created, "reserve", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc, n)
	testenv.Eventually(t, 10*time.Second, "every event handled", func() bool { return done.distinct() == n })
	testenv.WaitConsumerIdle(t, js, "ORDERS", "reserve", 10*time.Second)

	err = svc.DeleteConsumer(t.Context(), "ORDERS", "reserve")
	if err == nil || !strings.Contains(err.Error(), "Stop it first") {
		t.Fatalf("delete while subscribed: %v, want a refusal saying to stop the subscription first", err)
	}
	if consumerGone(t, js, "ORDERS", "reserve") {
		t.Fatal("the refused delete deleted the consumer")
	}
	sub.Stop(t.Context())
	if err := svc.DeleteConsumer(t.Context(), "ORDERS", "reserve"); err != nil {
		t.Fatal(err)
	}
	if !consumerGone(t, js, "ORDERS", "reserve") {
		t.Fatal("consumer reserve still on ORDERS after DeleteConsumer")
	}

	// Its position went with it: a new durable of that name reads everything again.
	again := &effects{n: map[int]int{}}
	if _, err := framework.Subscribe(t.Context(), svc, created, "reserve", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		again.add(ev.Index)
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the new durable read the stream from the start", func() bool { return again.distinct() == n })
	again.check(t, n)
	done.check(t, n)
}

// A service does not delete another service's durable, nor one that
// records no owner; a durable another service subscribes to keeps its
// first owner.
func TestDeleteConsumerRefusesAnotherServicesDurable(t *testing.T) {
	srv := testenv.Start(t)
	inventory := newService(t, srv, "inventory")
	billing := newService(t, srv, "billing")
	h := func(ctx context.Context, ev orderCreated, m *framework.Message) error { return nil }
	sub, err := framework.Subscribe(t.Context(), inventory, created, "reserve", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	// billing subscribes with the same durable name (a misconfiguration):
	// it shares the consumer but does not become its owner.
	sub2, err := framework.Subscribe(t.Context(), billing, created, "reserve", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub2.Stop(t.Context())
	err = billing.DeleteConsumer(t.Context(), "ORDERS", "reserve")
	if err == nil || !strings.Contains(err.Error(), `belongs to service "inventory"`) {
		t.Fatalf("billing deleting inventory's durable: %v, want a refusal naming the owner", err)
	}
	js := inventory.Conn().JS
	if consumerGone(t, js, "ORDERS", "reserve") {
		t.Fatal("billing deleted inventory's consumer")
	}
	sub.Stop(t.Context())

	// A consumer made outside jetkit records no owner: nobody deletes it.
	if _, err := js.CreateOrUpdateConsumer(t.Context(), "ORDERS", jetstream.ConsumerConfig{Durable: "ops", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	err = inventory.DeleteConsumer(t.Context(), "ORDERS", "ops")
	if err == nil || !strings.Contains(err.Error(), "records no owner") {
		t.Fatalf("deleting a consumer made outside jetkit: %v, want a refusal", err)
	}
	if consumerGone(t, js, "ORDERS", "ops") {
		t.Fatal("the consumer made outside jetkit was deleted")
	}
	if err := inventory.DeleteConsumer(t.Context(), "ORDERS", "reserve"); err != nil {
		t.Fatalf("the owner deleting its durable: %v", err)
	}
}

// Errors name the stream and consumer and match with errors.Is: no such
// consumer, no such stream, a bad name, and ErrClosed after Shutdown.
func TestDeleteConsumerErrors(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "inventory")
	err := svc.DeleteConsumer(t.Context(), "ORDERS", "nobody")
	if !errors.Is(err, jetstream.ErrConsumerNotFound) || !strings.Contains(err.Error(), "nobody") || !strings.Contains(err.Error(), "ORDERS") {
		t.Fatalf("missing consumer: %v, want ErrConsumerNotFound naming ORDERS and nobody", err)
	}
	err = svc.DeleteConsumer(t.Context(), "NOPE", "reserve")
	if !errors.Is(err, jetstream.ErrStreamNotFound) || !strings.Contains(err.Error(), "NOPE") {
		t.Fatalf("missing stream: %v, want ErrStreamNotFound naming NOPE", err)
	}
	err = svc.DeleteConsumer(t.Context(), "ORDERS", "a.b")
	if !errors.Is(err, framework.ErrInvalidSubject) || !strings.Contains(err.Error(), "durable name") {
		t.Fatalf("bad durable name: %v, want ErrInvalidSubject naming the durable name", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteConsumer(t.Context(), "ORDERS", "reserve"); !errors.Is(err, framework.ErrClosed) {
		t.Fatalf("after Shutdown: %v, want ErrClosed", err)
	}
}

// A delete the server's permissions refuse fails at once with a
// *PermissionError naming the API subject, and the consumer stays.
func TestDeleteConsumerRefusedByPermissions(t *testing.T) {
	srv, user, admin := leastPrivilegeServer(t, servicePermissions())
	svc := newService(t, srv, "order", func(c *framework.Config) { *c = slowTimeoutConfig(srv, user) })
	sub, err := framework.Subscribe(t.Context(), svc, created, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error { return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub.Stop(t.Context())
	start := time.Now()
	err = svc.DeleteConsumer(t.Context(), "ORDERS", "inventory")
	assertPermissionError(t, err, start, "publish", "$JS.API.CONSUMER.DELETE.ORDERS.inventory")
	adminSvc := newService(t, srv, "admin", func(c *framework.Config) { *c = admin.Credentials().Apply(srv.Config("admin")) })
	if consumerGone(t, adminSvc.Conn().JS, "ORDERS", "inventory") {
		t.Fatal("the refused delete deleted the consumer")
	}
}
