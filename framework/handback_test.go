package framework_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// Messages handed back at shutdown were never failed: a later instance must
// handle them even though the hand-back used up their deliveries
// (MaxDeliver 1 here), instead of dead-lettering healthy messages.
func TestHandedBackMessagesAreNotDeadLetteredForMaxDeliver(t *testing.T) {
	srv := testenv.Start(t)
	first := newService(t, srv, "inventory")
	const n = 20
	release := make(chan struct{})
	var started atomic.Int64
	sub, err := framework.Subscribe(t.Context(), first, created, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		started.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, &framework.SubscribeOptions{MaxDeliver: 1, Concurrency: 1, Prefetch: n, AckWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, first, n)
	// Every message is out with the first instance: one in its handler, the
	// rest buffered.
	testenv.Eventually(t, 10*time.Second, "all delivered to the first instance", func() bool {
		info, err := sub.Consumer().Info(context.Background())
		return err == nil && started.Load() == 1 && info.NumAckPending == n && info.NumPending == 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = first.Shutdown(ctx)
	close(release)
	// NumAckPending counts a message once the server queues it to send:
	// under load some may not have reached the client when it shut down.
	// The server redelivers those at once (it finds nobody listening),
	// without counting the failed delivery; the rest are handed back.
	if st := sub.Stats(); st.HandedBack < 1 || st.HandedBack > n || st.Acked != 0 || st.DeadLettered != 0 {
		t.Fatalf("first instance: %+v, want what it held handed back, nothing settled otherwise", st)
	} else if st.HandedBack < n {
		t.Logf("%d of %d messages were still on their way to the first instance when it shut down", n-st.HandedBack, n)
	}

	second := newService(t, srv, "inventory")
	var handled atomic.Int64
	sub2, err := framework.Subscribe(t.Context(), second, created, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		handled.Add(1)
		return nil
	}, &framework.SubscribeOptions{MaxDeliver: 1, AckWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the second instance settled every message", func() bool {
		st := sub2.Stats()
		return st.Acked+st.DeadLettered == n
	})
	if st := sub2.Stats(); st.Acked != n || handled.Load() != n {
		t.Fatalf("second instance: %+v, handled %d: healthy handed-back messages were dead-lettered", st, handled.Load())
	}
	testenv.WaitConsumerIdle(t, second.Conn().JS, "ORDERS", "inventory", 5*time.Second)
}
