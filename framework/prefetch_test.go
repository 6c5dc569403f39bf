package framework_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// handledLog records, at concurrency 1, the order events were handled in
// (by stream sequence) and how often each was (by index).
type handledLog struct {
	mu    sync.Mutex
	order []uint64 // stream sequences, in handling order
	index []int    // the events' indexes, in handling order
	nth   []uint64 // their delivery counts
	times map[int]int
}

func (l *handledLog) add(i int, m *framework.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.times == nil {
		l.times = map[int]int{}
	}
	l.order = append(l.order, m.StreamSeq)
	l.index = append(l.index, i)
	l.nth = append(l.nth, m.NumDelivered)
	l.times[i]++
}

// check fails t unless events 0..n-1 were each handled exactly once, in
// stream order. Stream order is what concurrency 1 keeps; it is the
// publish order unless a publish was resent (nats.go resends an async
// publish that met no responders, after later ones), which is logged.
func (l *handledLog) check(t *testing.T, n int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range n {
		if l.times[i] != 1 {
			t.Errorf("event %d handled %d times", i, l.times[i])
		}
	}
	for i := 1; i < len(l.order); i++ {
		if l.order[i] <= l.order[i-1] {
			t.Fatalf("out of stream order at position %d: sequence %d (event %d, delivery %d) after sequence %d (event %d, delivery %d)",
				i, l.order[i], l.index[i], l.nth[i], l.order[i-1], l.index[i-1], l.nth[i-1])
		}
	}
	for i := 1; i < len(l.index); i++ {
		if l.index[i] < l.index[i-1] {
			t.Logf("stored out of publish order: event %d (sequence %d) after event %d (sequence %d)", l.index[i], l.order[i], l.index[i-1], l.order[i-1])
			break
		}
	}
	if len(l.order) != n {
		t.Fatalf("%d handler runs for %d events", len(l.order), n)
	}
}

// subscribeInOrder subscribes at concurrency 1 with a handler that logs
// each event, notes the deepest prefetch seen and then works for work.
func subscribeInOrder(t *testing.T, svc *framework.Service, durable string, work time.Duration) (*framework.Subscription, *handledLog, *atomic.Int64) {
	t.Helper()
	log, deepest := &handledLog{}, &atomic.Int64{}
	var sub atomic.Pointer[framework.Subscription]
	s, err := framework.Subscribe(t.Context(), svc, created, durable, func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		log.add(ev.Index, m)
		if s := sub.Load(); s != nil {
			if p := int64(s.Prefetch()); p > deepest.Load() {
				deepest.Store(p)
			}
		}
		time.Sleep(work)
		return nil
	}, &framework.SubscribeOptions{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	sub.Store(s)
	return s, log, deepest
}

// A slow handler behind the initial 256-message buffer would leave the
// last buffered messages waiting past AckWait (80 × 40 ms = 3.2 s against
// 2 s), and the server would redeliver them while they sit in the client:
// handled twice. The tuner shrinks the buffer after the first handler
// times are in, and keeps what the deep buffer held alive with InProgress
// until a worker takes it, in order.
func TestAdaptivePrefetchShrinksForSlowHandler(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	const n = 80
	publishN(t, svc, n)
	var log handledLog
	sub, err := framework.Subscribe(t.Context(), svc, created, "slow", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		log.add(ev.Index, m)
		time.Sleep(40 * time.Millisecond)
		return nil
	}, &framework.SubscribeOptions{Concurrency: 1, AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := sub.Prefetch(); got != 256 {
		t.Fatalf("initial prefetch %d, want 256", got)
	}
	testenv.Eventually(t, 30*time.Second, "all acked", func() bool { return sub.Stats().Acked == n })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "slow", 10*time.Second)
	// 2 s / 4 / 40 ms = 12 at most; the first samples (cold start) can
	// only make it smaller.
	if got := sub.Prefetch(); got > 12 {
		t.Errorf("prefetch %d after handlers of 40 ms with AckWait 2s; want at most 12", got)
	}
	st := sub.Stats()
	if st.Acked != n || st.DeadLettered != 0 || st.Retried != 0 {
		t.Errorf("stats %+v: want %d acked, nothing retried or dead-lettered", st, n)
	}
	if st.HandedBack != 0 || st.InProgress == 0 {
		t.Errorf("stats %+v: want the old buffer kept alive with InProgress and handled, not handed back", st)
	}
	log.check(t, n)
}

// A fast handler gets a deeper buffer than the initial one, and the
// resize keeps stream order at concurrency 1.
func TestAdaptivePrefetchGrowsForFastHandlerInOrder(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	const n = 3000
	publishN(t, svc, n)
	sub, log, maxPrefetch := subscribeInOrder(t, svc, "fast", 300*time.Microsecond) // ≥ 0.9 s in all: several tuner ticks
	testenv.Eventually(t, 60*time.Second, "all acked", func() bool { return sub.Stats().Acked == n })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "fast", 10*time.Second)
	if got := maxPrefetch.Load(); got <= 256 {
		t.Errorf("prefetch never grew past the initial 256 (max seen %d) for a sub-millisecond handler", got)
	}
	if st := sub.Stats(); st.Acked != n || st.DeadLettered != 0 || st.HandedBack != 0 {
		t.Errorf("stats %+v: want %d acked, nothing handed back (growing hands nothing back)", st, n)
	}
	log.check(t, n)
}

// A fixed Prefetch is never resized.
func TestFixedPrefetchStays(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	const n = 500
	publishN(t, svc, n)
	sub, err := framework.Subscribe(t.Context(), svc, created, "fixed", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		time.Sleep(time.Millisecond)
		return nil
	}, &framework.SubscribeOptions{Prefetch: 32})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "all acked", func() bool { return sub.Stats().Acked == n })
	if got := sub.Prefetch(); got != 32 {
		t.Fatalf("%s: prefetch %d, want the fixed 32", fmt.Sprint(sub.Stats()), got)
	}
}

// A handler that hangs longer than AckWait (with InProgress heartbeats for
// its own message) holds up everything buffered behind it at concurrency
// 1. The tuner sees that every worker has been busy for long before the
// handler returns, shrinks the buffer, and keeps the old buffer alive with
// InProgress: nothing is redelivered while it waits, everything is handled
// once, in order.
func TestAdaptivePrefetchShrinksBehindStuckHandler(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	const n = 40
	publishN(t, svc, n)
	var log handledLog
	sub, err := framework.Subscribe(t.Context(), svc, created, "stuck", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		log.add(ev.Index, m)
		if ev.Index == 0 {
			time.Sleep(3 * time.Second) // 1.5x AckWait
		}
		return nil
	}, &framework.SubscribeOptions{Concurrency: 1, AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "all acked", func() bool { return sub.Stats().Acked == n })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "stuck", 10*time.Second)
	if st := sub.Stats(); st.Acked != n || st.HandedBack != 0 || st.DeadLettered != 0 || st.InProgress == 0 {
		t.Errorf("stats %+v: want %d acked, nothing handed back or dead-lettered, InProgress sent", st, n)
	}
	log.check(t, n)
}

// Growing while events are still being published: the old pull is
// replaced with messages in flight to it. Every event is still handled
// exactly once, and at concurrency 1 in stream order. (Under load a
// message the server sent to a pull just as it was replaced came back
// after newer ones, 4 runs in 81, until the resize waited for the server
// to queue it for redelivery: awaitStrandedDeliveries.)
func TestAdaptivePrefetchGrowsUnderLivePublishing(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	const backlog, live = 3000, 3000
	publishN(t, svc, backlog)
	sub, log, maxPrefetch := subscribeInOrder(t, svc, "live", 100*time.Microsecond)
	publishFrom(t, svc, backlog, live)
	testenv.Eventually(t, 60*time.Second, "all acked", func() bool { return sub.Stats().Acked == backlog+live })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "live", 10*time.Second)
	if got := maxPrefetch.Load(); got <= 256 {
		t.Errorf("prefetch never grew (max seen %d): the test did not exercise a resize", got)
	}
	if st := sub.Stats(); st.DeadLettered != 0 || st.HandedBack != 0 {
		t.Errorf("stats %+v", st)
	}
	log.check(t, backlog+live)
}
