package framework_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// A backlog of ~900 KB events, consumed right after Subscribe: a pull of
// the message-count depth alone (256 × 900 KB) overruns nats.go's pending
// limit (it drops messages) and the server's outbound buffer (it closes the
// client as a slow consumer), and what was dropped comes back only after
// AckWait. The pull is capped in bytes from the first request and its depth
// sized from the stream's mean message size: everything is delivered once,
// in order, and what the client holds unacked stays within the 16 MiB
// bound.
func TestPrefetchLargeMessageBacklogStaysWithinByteCap(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	const n = 40
	publishLarge(t, svc, n)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	var log handledLog
	var maxDelivered atomic.Uint64
	sub, err := framework.Subscribe(t.Context(), svc, created, "large", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		log.add(ev.Index, m)
		if m.NumDelivered > maxDelivered.Load() {
			maxDelivered.Store(m.NumDelivered)
		}
		time.Sleep(10 * time.Millisecond) // the handler's work: the backlog arrives faster
		return nil
	}, &framework.SubscribeOptions{Concurrency: 1, AckWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Sized from the stream's mean message size before the first pull.
	if got := sub.Prefetch(); got*largeSize > byteCap {
		t.Errorf("initial prefetch %d × %d B exceeds the 16 MiB bound", got, largeSize)
	}

	// Sample what the client holds unacked (buffered in the client or in a
	// handler) and the heap, until everything is acked.
	sample := sampleUnacked(t, srv, "large")
	testenv.Eventually(t, 60*time.Second, "all acked", func() bool { return sub.Stats().Acked >= n })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "large", 10*time.Second)
	maxAckPending, peakHeap := sample()

	if sc := srv.NS.NumSlowConsumers(); sc != 0 {
		t.Errorf("the server closed %d slow consumers", sc)
	}
	if d := maxDelivered.Load(); d != 1 {
		t.Errorf("an event was delivered %d times: dropped or buffered past AckWait", d)
	}
	// 16 MiB of buffer, one message in the handler and one waiting for it.
	if bound := byteCap/largeSize + 2; maxAckPending > bound {
		t.Errorf("up to %d messages (%d MiB) unacked in the client; want at most %d", maxAckPending, maxAckPending*largeSize>>20, bound)
	}
	// The heap is logged, not checked: the embedded server shares it (its
	// block cache and outbound buffers), and what the client holds is
	// counted above.
	t.Logf("max unacked %d, heap growth %d MiB, prefetch %d", maxAckPending, (int64(peakHeap)-int64(base.HeapAlloc))>>20, sub.Prefetch())
	if st := sub.Stats(); st.Acked != n || st.Retried != 0 || st.HandedBack != 0 || st.DeadLettered != 0 {
		t.Errorf("stats %+v: want %d acked and nothing else", st, n)
	}
	log.check(t, n)
}

// A fixed Prefetch is capped in bytes too: 40 events of ~900 KB behind a
// handler that has not returned yet stay within 16 MiB in the client; the
// rest waits on the server.
func TestFixedPrefetchCappedInBytes(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	const n = 40
	publishLarge(t, svc, n)
	var log handledLog
	release := make(chan struct{})
	sub, err := framework.Subscribe(t.Context(), svc, created, "fixed-large", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		log.add(ev.Index, m)
		if ev.Index == 0 {
			<-release
		}
		return nil
	}, &framework.SubscribeOptions{Concurrency: 1, Prefetch: n, AckWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sample := sampleUnacked(t, srv, "fixed-large")
	// Wait until the server has sent all it will while the handler holds
	// the first event: the unacked count settles.
	var last int
	var since time.Time
	if err := testenv.WaitFor(context.Background(), 20*time.Second, func() bool {
		now := unackedNow(srv, "fixed-large")
		if now != last || since.IsZero() {
			last, since = now, time.Now()
		}
		return now == n || (now > 0 && time.Since(since) > 500*time.Millisecond)
	}); err != nil {
		t.Fatalf("the unacked count did not settle (last %d)", last)
	}
	close(release)
	testenv.Eventually(t, 60*time.Second, "all acked", func() bool { return sub.Stats().Acked >= n })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "fixed-large", 10*time.Second)
	maxAckPending, _ := sample()
	if bound := byteCap/largeSize + 2; maxAckPending > bound {
		t.Errorf("up to %d messages (%d MiB) unacked in the client with Prefetch(%d); want at most %d", maxAckPending, maxAckPending*largeSize>>20, n, bound)
	}
	if st := sub.Stats(); st.Acked != n || st.Retried != 0 || st.HandedBack != 0 || st.DeadLettered != 0 {
		t.Errorf("stats %+v: want %d acked and nothing else", st, n)
	}
	if sub.Prefetch() != n {
		t.Errorf("prefetch %d, want the fixed %d", sub.Prefetch(), n)
	}
	log.check(t, n)
}

// A service consuming a stream it did not declare may lack the permission
// to read the stream's info: Subscribe does not ask for it (a refusal
// would fail Subscribe), and the pull is capped in bytes all the same.
func TestPrefetchByteCapWithoutStreamInfo(t *testing.T) {
	srv, user, admin := leastPrivilegeServer(t, without(servicePermissions(), "$JS.API.STREAM.INFO.ORDERS"))
	owner := startService(t, admin.Credentials().Apply(srv.Config("owner")))
	if _, err := owner.EnsureStream(context.Background(), ordersStream); err != nil {
		t.Fatal(err)
	}
	const n = 30
	publishLarge(t, owner, n)
	svc := startService(t, slowTimeoutConfig(srv, user))
	sub, err := framework.Subscribe(t.Context(), svc, created, "inventory", func(context.Context, orderCreated, *framework.Message) error {
		time.Sleep(10 * time.Millisecond) // the handler's work: the backlog arrives faster
		return nil
	}, &framework.SubscribeOptions{Concurrency: 1})
	if err != nil {
		t.Fatalf("Subscribe to a stream declared by another service: %v", err)
	}
	sample := sampleUnackedAs(t, srv, admin.Credentials(), "inventory")
	testenv.Eventually(t, 60*time.Second, "all acked", func() bool { return sub.Stats().Acked >= n })
	maxAckPending, _ := sample()
	if bound := byteCap/largeSize + 2; maxAckPending > bound {
		t.Errorf("up to %d messages (%d MiB) unacked in the client; want at most %d", maxAckPending, maxAckPending*largeSize>>20, bound)
	}
	if st := sub.Stats(); st.Acked != n || st.Retried != 0 || st.HandedBack != 0 || st.DeadLettered != 0 {
		t.Errorf("stats %+v: want %d acked and nothing else", st, n)
	}
}

const (
	byteCap   = 16 << 20 // the documented bound on buffered bytes
	largeSize = 900 << 10
)

// publishLarge publishes n events of about largeSize bytes (below the
// test server's 1 MiB max payload).
func publishLarge(t *testing.T, svc *framework.Service, n int) {
	t.Helper()
	note := strings.Repeat("x", largeSize)
	for i := range n {
		if _, err := created.Publish(context.Background(), svc, orderCreated{ID: "o", Qty: 1, Note: note, Index: i}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

// unackedNow is the ORDERS consumer's count of messages delivered and not
// acked, asked on a connection of its own: on the subscriber's, the reply
// would queue behind the backlog being sent to it. -1 on error.
func unackedNow(srv *testenv.Server, durable string) int {
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		return -1
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, "ORDERS", durable)
	if err != nil {
		return -1
	}
	return c.CachedInfo().NumAckPending
}

// sampleUnacked samples the consumer's unacked count and the heap every
// 10 ms until the returned func is called, which returns their peaks.
func sampleUnacked(t *testing.T, srv *testenv.Server, durable string) func() (maxUnacked int, peakHeap uint64) {
	t.Helper()
	return sampleUnackedAs(t, srv, testenv.Credentials{}, durable)
}

// sampleUnackedAs is sampleUnacked connecting with creds.
func sampleUnackedAs(t *testing.T, srv *testenv.Server, creds testenv.Credentials, durable string) func() (maxUnacked int, peakHeap uint64) {
	t.Helper()
	nc, err := nats.Connect(srv.URL(), nats.UserInfo(creds.User, creds.Password))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var maxUnacked int
	var peakHeap uint64
	wg.Go(func() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if c, err := js.Consumer(ctx, "ORDERS", durable); err == nil {
				maxUnacked = max(maxUnacked, c.CachedInfo().NumAckPending)
			}
			cancel()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapAlloc)
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	return func() (int, uint64) {
		close(done)
		wg.Wait()
		nc.Close()
		return maxUnacked, peakHeap
	}
}
