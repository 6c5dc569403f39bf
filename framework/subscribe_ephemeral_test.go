package framework_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv"
)

// consumerGone reports whether stream has no consumer name (any other
// answer, an error included, is not "gone").
func consumerGone(t *testing.T, js jetstream.JetStream, stream, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := js.Consumer(ctx, stream, name)
	return errors.Is(err, jetstream.ErrConsumerNotFound)
}

// Two ephemeral subscriptions on one subject each get every event (fan
// out), each on a consumer of its own that is not durable and that the
// server would remove when inactive; Stop deletes one's consumer while the
// other runs on, and Shutdown deletes the other's.
func TestEphemeralSubscriptionsFanOutAndAreDeletedWhenStopped(t *testing.T) {
	const n = 200
	srv := testenv.Start(t)
	svc := newService(t, srv, "push")
	js := svc.Conn().JS
	var subs [2]*framework.Subscription
	var seen [2]*effects
	for i := range subs {
		seen[i] = &effects{n: map[int]int{}}
		sub, err := framework.Subscribe(t.Context(), svc, created, "", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
			seen[i].add(ev.Index)
			return nil
		}, &framework.SubscribeOptions{Ephemeral: true, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = sub
	}
	if subs[0].Durable() == subs[1].Durable() {
		t.Fatalf("both ephemeral subscriptions use consumer %q", subs[0].Durable())
	}
	for _, sub := range subs {
		if !strings.HasPrefix(sub.Durable(), "push-") {
			t.Errorf("ephemeral consumer %q: want it named after the service (push-...)", sub.Durable())
		}
		info, err := sub.Consumer().Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if c := info.Config; c.Durable != "" || c.InactiveThreshold <= 0 || c.Metadata["jetkit.owner"] != "push" {
			t.Errorf("consumer %s: durable %q, inactive threshold %s, owner %q: want not durable, removed once inactive, owned by push",
				info.Name, c.Durable, c.InactiveThreshold, c.Metadata["jetkit.owner"])
		}
	}

	publishN(t, svc, n)
	for i, sub := range subs {
		testenv.Eventually(t, 20*time.Second, fmt.Sprintf("subscription %d got every event", i), func() bool { return seen[i].distinct() == n })
		testenv.WaitConsumerIdle(t, js, "ORDERS", sub.Durable(), 10*time.Second)
		seen[i].check(t, n)
		if st := sub.Stats(); st.Acked != n || st.DeadLettered != 0 || st.HandedBack != 0 {
			t.Errorf("subscription %d: %+v, want all %d acked", i, st, n)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	subs[0].Stop(ctx)
	if !consumerGone(t, js, "ORDERS", subs[0].Durable()) {
		t.Fatalf("consumer %s still on the stream after Stop", subs[0].Durable())
	}
	if consumerGone(t, js, "ORDERS", subs[1].Durable()) {
		t.Fatalf("Stop of one ephemeral subscription deleted the other's consumer %s", subs[1].Durable())
	}

	// The other one runs on and gets what is published next.
	publishFrom(t, svc, n, 10)
	testenv.Eventually(t, 10*time.Second, "the remaining subscription got the later events", func() bool { return seen[1].distinct() == n+10 })
	if got := seen[0].distinct(); got != n {
		t.Fatalf("the stopped subscription handled %d events, want %d", got, n)
	}

	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The service's connection is drained: look with a fresh one.
	other := newService(t, srv, "observer")
	if !consumerGone(t, other.Conn().JS, "ORDERS", subs[1].Durable()) {
		t.Fatalf("consumer %s still on the stream after Shutdown", subs[1].Durable())
	}
}

// Retries and dead letters work on an ephemeral consumer as on a durable
// one: a transient failure is redelivered and then succeeds, a permanent
// one is dead-lettered naming the consumer, and the counts reconcile.
func TestEphemeralSubscriptionRetriesAndDeadLetters(t *testing.T) {
	const n = 40
	srv := testenv.Start(t)
	svc := newService(t, srv, "push")
	var calls atomic.Int64
	failedOnce := &effects{n: map[int]int{}}
	done := &effects{n: map[int]int{}}
	sub, err := framework.Subscribe(t.Context(), svc, created, "", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		calls.Add(1)
		switch {
		case ev.Index%10 == 0:
			return framework.Permanent(fmt.Errorf("event %d is poison", ev.Index))
		case ev.Index%3 == 0 && m.NumDelivered == 1:
			failedOnce.add(ev.Index)
			return errors.New("transient")
		}
		done.add(ev.Index)
		return nil
	}, &framework.SubscribeOptions{Ephemeral: true, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc, n)
	const poison = n / 10
	testenv.Eventually(t, 20*time.Second, "every event settled", func() bool {
		st := sub.Stats()
		return st.Acked+st.DeadLettered == n
	})
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", sub.Durable(), 10*time.Second)
	st := sub.Stats()
	wantRetried := 0
	for i := range n {
		if i%10 != 0 && i%3 == 0 {
			wantRetried++
		}
	}
	if st.Acked != n-poison || st.DeadLettered != poison || st.Retried != uint64(wantRetried) || st.HandedBack != 0 {
		t.Fatalf("stats %+v: want %d acked, %d dead-lettered, %d retried", st, n-poison, poison, wantRetried)
	}
	if done.distinct() != n-poison || failedOnce.distinct() != wantRetried {
		t.Fatalf("handled %d, failed once %d: want %d and %d", done.distinct(), failedOnce.distinct(), n-poison, wantRetried)
	}
	dl := deadLetters(t, svc)
	if len(dl) != poison {
		t.Fatalf("%d dead letters, want %d", len(dl), poison)
	}
	for _, m := range dl {
		if got := m.Header.Get(wire.HeaderDLQConsumer); got != sub.Durable() {
			t.Fatalf("dead letter names consumer %q, want %q", got, sub.Durable())
		}
	}
}

// The durable name and Ephemeral say one thing: Ephemeral takes "", and ""
// without Ephemeral is refused with a hint naming it. Partitioned
// subscriptions cannot be ephemeral.
func TestEphemeralNeedsAnEmptyDurableName(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "push")
	h := func(ctx context.Context, ev orderCreated, m *framework.Message) error { return nil }
	for _, tc := range []struct {
		durable string
		opts    *framework.SubscribeOptions
		want    string
	}{
		{"inventory", &framework.SubscribeOptions{Ephemeral: true}, `durable name "inventory" with Ephemeral`},
		{"", nil, "SubscribeOptions.Ephemeral"},
		{"", &framework.SubscribeOptions{Ephemeral: true, Partitioned: true}, "Ephemeral with Partitioned"},
	} {
		sub, err := framework.Subscribe(t.Context(), svc, createdByOrder, tc.durable, h, tc.opts)
		if err == nil {
			sub.Stop(t.Context())
			t.Fatalf("durable %q with options %+v: subscribed, want an error", tc.durable, tc.opts)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("durable %q: error %q does not say %q", tc.durable, err, tc.want)
		}
	}
	if n := consumerCount(t, svc.Conn().JS, "ORDERS"); n != 0 {
		t.Fatalf("%d consumers left on ORDERS by refused subscriptions", n)
	}
}

// consumerCount is the number of consumers of stream.
func consumerCount(t *testing.T, js jetstream.JetStream, stream string) int {
	t.Helper()
	st, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Consumers
}

// ephemeralPermissions are servicePermissions plus what an ephemeral
// subscription on ORDERS needs (docs/subscribing.md), without or with
// deleting its consumer.
func ephemeralPermissions(canDelete bool) *testenv.Permissions {
	p := *servicePermissions()
	p.Publish = append(append([]string{}, p.Publish...),
		"$JS.API.CONSUMER.CREATE.ORDERS.>", "$JS.API.CONSUMER.INFO.ORDERS.*", "$JS.API.CONSUMER.MSG.NEXT.ORDERS.*",
		"$JS.ACK.ORDERS.>", "jetkit.deadletter.ORDERS.*")
	if canDelete {
		p.Publish = append(p.Publish, "$JS.API.CONSUMER.DELETE.ORDERS.*")
	}
	return &p
}

// With the permissions docs/subscribing.md lists, an ephemeral
// subscription works and Stop deletes its consumer; without the delete
// permission Stop still returns at once (not after the request timeout),
// and the consumer is left for the server's inactivity threshold.
func TestEphemeralSubscriptionWithLeastPrivilege(t *testing.T) {
	for _, canDelete := range []bool{true, false} {
		t.Run(fmt.Sprintf("delete=%v", canDelete), func(t *testing.T) {
			srv, user, admin := leastPrivilegeServer(t, ephemeralPermissions(canDelete))
			svc := newService(t, srv, "order", func(c *framework.Config) { *c = slowTimeoutConfig(srv, user) })
			adminSvc := newService(t, srv, "admin", func(c *framework.Config) { *c = admin.Credentials().Apply(srv.Config("admin")) })
			got := &effects{n: map[int]int{}}
			sub, err := framework.Subscribe(t.Context(), svc, created, "", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
				got.add(ev.Index)
				return nil
			}, &framework.SubscribeOptions{Ephemeral: true})
			if err != nil {
				t.Fatal(err)
			}
			publishN(t, adminSvc, 5)
			testenv.Eventually(t, 10*time.Second, "every event handled", func() bool { return got.distinct() == 5 })
			testenv.WaitConsumerIdle(t, adminSvc.Conn().JS, "ORDERS", sub.Durable(), 10*time.Second)
			start := time.Now()
			sub.Stop(t.Context())
			if el := time.Since(start); el > 20*time.Second {
				t.Fatalf("Stop took %s: it waited for a timeout", el)
			}
			if gone := consumerGone(t, adminSvc.Conn().JS, "ORDERS", sub.Durable()); gone != canDelete {
				t.Fatalf("consumer gone after Stop: %v, want %v", gone, canDelete)
			}
		})
	}
}
