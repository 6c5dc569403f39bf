package framework_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/middleware"
	"github.com/jetkit/jetkit/testenv"
)

// A handler running 3× AckWait while a second instance of the same
// consumer is idle and pulling: the InProgress heartbeats must keep the
// message from being redelivered to it.
func TestLongHandlerWithCompetingInstanceIsDeliveredOnce(t *testing.T) {
	srv := testenv.Start(t)
	const ackWait = 400 * time.Millisecond
	var calls, redeliveries atomic.Int64
	handler := func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		calls.Add(1)
		if m.NumDelivered > 1 {
			redeliveries.Add(1)
		}
		select {
		case <-time.After(3 * ackWait):
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	var subs []*framework.Subscription
	var svcA *framework.Service
	for _, name := range []string{"a", "b"} {
		svc := newService(t, srv, "long-"+name)
		sub, err := framework.Subscribe(t.Context(), svc, created, "long", handler, &framework.SubscribeOptions{AckWait: ackWait, Prefetch: 1})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
		if name == "a" {
			svcA = svc
			publishN(t, svc, 1)
			testenv.Eventually(t, 10*time.Second, "instance a started the handler", func() bool { return calls.Load() == 1 })
		}
	}
	acked := func() uint64 { return subs[0].Stats().Acked + subs[1].Stats().Acked }
	testenv.Eventually(t, 15*time.Second, "acked", func() bool { return acked() == 1 })
	testenv.WaitConsumerIdle(t, svcA.Conn().JS, "ORDERS", "long", 5*time.Second)
	if calls.Load() != 1 || redeliveries.Load() != 0 || subs[0].Stats().InProgress < 2 {
		t.Fatalf("calls %d, redeliveries %d, stats %+v: want one delivery kept alive by InProgress", calls.Load(), redeliveries.Load(), subs[0].Stats())
	}
}

// In-process retries whose backoff adds up to several AckWaits stay one
// delivery: the heartbeats cover the waits between attempts too.
func TestInProcessRetriesOutlastAckWaitWithoutRedelivery(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "retrying")
	var calls atomic.Int64
	var deliveries []uint64
	retry := middleware.Retry(middleware.RetryPolicy{Backoff: framework.Backoff{Initial: 250 * time.Millisecond, Multiplier: 2, Jitter: -1}, MaxAttempts: 4, Logger: slog.New(slog.DiscardHandler)})
	sub, err := framework.Subscribe(t.Context(), svc, created, "retrying", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		deliveries = append(deliveries, m.NumDelivered)
		if calls.Add(1) < 4 {
			return errors.New("dependency down")
		}
		return nil
	}, &framework.SubscribeOptions{AckWait: 300 * time.Millisecond, Prefetch: 1, Middleware: []framework.Middleware{retry}})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc, 1)
	testenv.Eventually(t, 15*time.Second, "acked", func() bool { return sub.Stats().Acked == 1 })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "retrying", 5*time.Second)
	if calls.Load() != 4 || sub.Stats().Retried != 0 {
		t.Fatalf("calls %d, stats %+v", calls.Load(), sub.Stats())
	}
	for _, d := range deliveries {
		if d != 1 {
			t.Fatalf("deliveries %v: the message was redelivered while retrying in process", deliveries)
		}
	}
}

// A panic in about 10% of handler calls, through the default chain:
// every event is handled, none is lost, the counts reconcile.
func TestPanicsLoseNothing(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "panicky")
	const n = 400
	var panics atomic.Int64
	done := &effects{n: map[int]int{}}
	chain := middleware.Defaults(middleware.Options{Logger: slog.New(slog.DiscardHandler),
		Retry: middleware.RetryPolicy{Backoff: framework.Backoff{Initial: time.Millisecond}, MaxAttempts: 2}})
	sub, err := framework.Subscribe(t.Context(), svc, created, "panicky", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		if rand.IntN(10) == 0 {
			panics.Add(1)
			panic(fmt.Sprintf("bad luck for event %d", ev.Index))
		}
		done.add(ev.Index)
		return nil
	}, &framework.SubscribeOptions{Concurrency: 8, Middleware: chain})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc, n)
	testenv.Eventually(t, 30*time.Second, "every event settled", func() bool {
		st := sub.Stats()
		return st.Acked+st.DeadLettered == n
	})
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "panicky", 5*time.Second)
	st := sub.Stats()
	if panics.Load() == 0 {
		t.Fatal("no handler panicked; the test proved nothing")
	}
	// With 2 attempts × 5 deliveries an event dead-letters only if 10
	// calls in a row panic (p = 1e-10): every event must be done.
	if st.DeadLettered != 0 || st.Acked != n || done.distinct() != n {
		t.Fatalf("published %d: stats %+v, %d distinct events done, %d panics", n, st, done.distinct(), panics.Load())
	}
	t.Logf("%d events, %d panics recovered, stats %+v", n, panics.Load(), st)
}

// A handler that hangs and ignores its context is bounded by Timeout: the
// worker is freed, the message redelivered with backoff and handled.
func TestHungHandlerIsBoundedByTimeoutAndRedelivered(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "hung")
	release := make(chan struct{})
	defer close(release)
	var calls atomic.Int64
	sub, err := framework.Subscribe(t.Context(), svc, created, "hung", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		if calls.Add(1) == 1 {
			<-release // ignores ctx
		}
		return nil
	}, &framework.SubscribeOptions{Concurrency: 1, Middleware: []framework.Middleware{middleware.Retry(middleware.RetryPolicy{MaxAttempts: 1, AttemptTimeout: 200 * time.Millisecond})}})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc, 1)
	testenv.Eventually(t, 15*time.Second, "acked on the second delivery", func() bool { return sub.Stats().Acked == 1 })
	if calls.Load() != 2 || sub.Stats().Retried != 1 {
		t.Fatalf("calls %d, stats %+v", calls.Load(), sub.Stats())
	}
}
