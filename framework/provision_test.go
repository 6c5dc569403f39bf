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

func TestEnsureStreamReconciles(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	ctx := context.Background()

	// Compatible change: subjects and max age are updated in place.
	spec := ordersStream
	spec.Subjects = []string{"orders.>", "refunds.>"}
	spec.MaxAge = time.Hour
	st, err := svc.EnsureStream(ctx, spec)
	if err != nil {
		t.Fatalf("compatible update refused: %v", err)
	}
	info, _ := st.Info(ctx)
	if len(info.Config.Subjects) != 2 || info.Config.MaxAge != time.Hour {
		t.Fatalf("stream not updated: %+v", info.Config)
	}
	// Same declaration again is a no-op.
	if _, err := svc.EnsureStream(ctx, spec); err != nil {
		t.Fatal(err)
	}

	// Incompatible: storage and retention cannot change in place.
	bad := spec
	bad.Storage = jetstream.MemoryStorage
	bad.Retention = jetstream.WorkQueuePolicy
	_, err = svc.EnsureStream(ctx, bad)
	if !errors.Is(err, framework.ErrIncompatibleChange) {
		t.Fatalf("want ErrIncompatibleChange, got %v", err)
	}
	for _, want := range []string{"stream ORDERS", "field Storage", "field Retention", `"File"`, `"Memory"`, "WorkQueue"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}

	// Invalid declarations are refused before any API call.
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "BAD.NAME"}); err == nil || !strings.Contains(err.Error(), "no subjects") {
		t.Fatalf("invalid spec: %v", err)
	}
}

func TestConsumerIncompatibleChangeIsNamed(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	noop := func(ctx context.Context, ev orderCreated, m *framework.Message) error { return nil }
	sub, err := framework.Subscribe(t.Context(), svc, created, "inv", noop, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = sub
	other := newService(t, srv, "order2")
	_, err = framework.Subscribe(t.Context(), other, created, "inv", noop, &framework.SubscribeOptions{DeliverNew: true})
	if !errors.Is(err, framework.ErrIncompatibleChange) || !strings.Contains(err.Error(), "DeliverPolicy") {
		t.Fatalf("want an incompatible DeliverPolicy error, got %v", err)
	}
	// A compatible change (AckWait) updates the consumer.
	third := newService(t, srv, "order3")
	s3, err := framework.Subscribe(t.Context(), third, created, "inv", noop, &framework.SubscribeOptions{AckWait: 7 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s3.Consumer().Info(context.Background())
	if info.Config.AckWait != 7*time.Second {
		t.Fatalf("AckWait not updated: %s", info.Config.AckWait)
	}
}

func TestSubscribeWithoutStreamNamesTheFix(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	topic := framework.MustNewTopic[orderCreated]("payments.settled.v1")
	_, err := framework.Subscribe(t.Context(), svc, topic, "x", func(ctx context.Context, ev orderCreated, m *framework.Message) error { return nil }, nil)
	if err == nil || !strings.Contains(err.Error(), "EnsureStream") {
		t.Fatalf("want an error pointing at EnsureStream, got %v", err)
	}
	if _, err := framework.Subscribe(t.Context(), svc, created, "bad.durable", func(ctx context.Context, ev orderCreated, m *framework.Message) error { return nil }, nil); !errors.Is(err, framework.ErrInvalidSubject) {
		t.Fatalf("invalid durable accepted: %v", err)
	}
	if _, err := framework.Subscribe(t.Context(), svc, created, "ok", func(ctx context.Context, ev orderCreated, m *framework.Message) error { return nil }, &framework.SubscribeOptions{Concurrency: -1}); err == nil || !strings.Contains(err.Error(), "Concurrency -1") {
		t.Fatalf("invalid option accepted: %v", err)
	}
}

func TestPublishRejectsBadInputAndPublishesNothing(t *testing.T) {
	srv := testenv.Start(t, testenv.Options{MaxPayload: 4096})
	svc := newService(t, srv, "order")
	ctx := context.Background()
	for _, key := range []string{"", "a.b", "x*", "a b", "ctl\x01"} {
		if _, err := createdByOrder.Publish(ctx, svc, orderCreated{ID: "k"}, framework.WithKey(key)); !errors.Is(err, framework.ErrInvalidSubject) {
			t.Errorf("key %q: want ErrInvalidSubject, got %v", key, err)
		}
	}
	// A key on an unkeyed topic, or none on a keyed one, would put the
	// event where its subscribers' filter does not look.
	if _, err := created.Publish(ctx, svc, orderCreated{ID: "k"}, framework.WithKey("o-1")); !errors.Is(err, framework.ErrInvalidSubject) ||
		!strings.Contains(err.Error(), "framework.Keyed()") {
		t.Errorf("key on an unkeyed topic: want ErrInvalidSubject naming framework.Keyed(), got %v", err)
	}
	if _, err := createdByOrder.PublishAsync(ctx, svc, orderCreated{ID: "k"}); !errors.Is(err, framework.ErrInvalidSubject) ||
		!strings.Contains(err.Error(), "WithKey") {
		t.Errorf("no key on a keyed topic: want ErrInvalidSubject naming WithKey, got %v", err)
	}
	if _, err := created.Publish(ctx, svc, orderCreated{ID: "k"}, framework.WithEventID("has space")); err == nil {
		t.Error("event id with a space accepted")
	}
	_, err := created.Publish(ctx, svc, orderCreated{ID: "big", Note: strings.Repeat("x", 5000)})
	if !errors.Is(err, framework.ErrMessageTooLarge) || !strings.Contains(err.Error(), "4096") {
		t.Errorf("oversized event: want ErrMessageTooLarge naming the limit, got %v", err)
	}
	if _, err := created.PublishAsync(ctx, svc, orderCreated{ID: "big", Note: strings.Repeat("x", 5000)}); !errors.Is(err, framework.ErrMessageTooLarge) {
		t.Errorf("oversized async event: %v", err)
	}
	st, _ := svc.Conn().JS.Stream(ctx, "ORDERS")
	info, _ := st.Info(ctx)
	if info.State.Msgs != 0 {
		t.Fatalf("%d messages stored after rejected publishes", info.State.Msgs)
	}
}

func TestPublishAsyncFlushReportsFailures(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	ctx := context.Background()
	orphan := framework.MustNewTopic[orderCreated]("nostream.created.v1")
	for range 3 {
		if _, err := orphan.PublishAsync(ctx, svc, orderCreated{ID: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := svc.Conn().FlushAsync(fctx)
	if err == nil || strings.Count(err.Error(), "nostream.created.v1 event") != 3 || !strings.Contains(err.Error(), "no response from stream") {
		t.Fatalf("want the 3 failures reported, got %v", err)
	}
	// Reported once: a clean batch afterwards flushes without error.
	publishN(t, svc, 5)
}

// A stream name the server would refuse, or a service name longer than a
// subscriber accepts in ce-source, is refused where it is declared.
func TestNamesRefusedWhereDeclared(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "names")
	for _, name := range []string{"dead/letters", `back\slash`, strings.Repeat("S", 256), ""} {
		_, err := svc.EnsureStream(t.Context(), framework.StreamSpec{Name: name, Subjects: []string{"names.>"}})
		if err == nil {
			t.Errorf("EnsureStream accepted the stream name %q", name)
		}
	}
	t.Setenv("LONG_SERVICE_NAME", strings.Repeat("s", 1025))
	if _, err := framework.LoadConfig("LONG"); err == nil || !strings.Contains(err.Error(), "LONG_SERVICE_NAME") {
		t.Errorf("a 1025-byte service name: %v, want an error naming LONG_SERVICE_NAME", err)
	}
}
