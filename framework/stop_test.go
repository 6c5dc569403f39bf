package framework_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// One subscription stops on its own, with what it held handed back: the
// other instance of the durable handles everything, the service keeps
// running, and the counts reconcile.
func TestSubscriptionStopHandsBackAndLeavesTheServiceRunning(t *testing.T) {
	const n = 300
	srv := testenv.Start(t)
	svc := newService(t, srv, "stopper")
	release := make(chan struct{})
	var first atomic.Int64
	sub1, err := framework.Subscribe(t.Context(), svc, created, "worker", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		first.Add(1)
		select { // hangs until released or abandoned
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, &framework.SubscribeOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc, n)
	testenv.Eventually(t, 10*time.Second, "four handlers running", func() bool { return first.Load() >= 4 })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	sub1.Stop(ctx)
	sub1.Stop(ctx) // a second Stop is harmless
	close(release)
	if got := svc.Subscriptions(); len(got) != 0 {
		t.Fatalf("the service still lists %d subscriptions after Stop", len(got))
	}
	st1 := sub1.Stats()
	if st1.HandedBack == 0 || st1.Acked != 0 {
		t.Fatalf("stopped subscription %+v: want what it held handed back, nothing acked", st1)
	}

	done := &effects{n: map[int]int{}}
	sub2, err := framework.Subscribe(t.Context(), svc, created, "worker", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		done.add(ev.Index)
		return nil
	}, &framework.SubscribeOptions{Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "every event handled and acked by the next subscription", func() bool {
		return done.distinct() == n && sub2.Stats().Acked >= n
	})
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "worker", 10*time.Second)
	done.check(t, n)
	if st := sub2.Stats(); st.Acked != n || st.DeadLettered != 0 {
		t.Fatalf("next subscription %+v: want all %d acked", st, n)
	}
}
