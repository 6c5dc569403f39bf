package framework_test

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// resizeLog counts the subscription's "prefetch resized" records.
type resizeLog struct {
	mu    sync.Mutex
	sizes []int64 // the depth after each resize
}

func (l *resizeLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *resizeLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *resizeLog) WithGroup(string) slog.Handler            { return l }
func (l *resizeLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "prefetch resized" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "to" {
			l.mu.Lock()
			l.sizes = append(l.sizes, a.Value.Int64())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *resizeLog) resizes() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int64(nil), l.sizes...)
}

// A fast handler at Concurrency(1) drains a backlog while four busy-looping
// goroutines per core compete for the CPU: handlers are preempted midway
// and take tens of milliseconds now and then. The buffer grows once and stays:
// the tuner does not shrink it for scheduler stalls and grow it back
// (each round trip replaced the pull, sent InProgress for the whole
// buffer and had the server redeliver what was in flight). Every event is
// handled once, in order.
func TestAdaptivePrefetchStableUnderCPUContention(t *testing.T) {
	srv := testenv.Start(t)
	rl := &resizeLog{}
	svc := newServiceLogging(t, srv, "order", slog.New(rl))
	const n = 5000
	publishN(t, svc, n)

	stop := make(chan struct{})
	var busy sync.WaitGroup
	deadline := time.Now().Add(60 * time.Second) // bounded even if the test fails early
	for range 4 * runtime.GOMAXPROCS(0) {
		busy.Go(func() {
			for i := 0; ; i++ {
				if i%1024 == 0 {
					select {
					case <-stop:
						return
					default:
					}
					if time.Now().After(deadline) {
						return
					}
				}
			}
		})
	}
	defer busy.Wait()
	defer close(stop)

	var log handledLog
	var redelivered atomic.Int64
	sub, err := framework.Subscribe(t.Context(), svc, created, "contended", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		log.add(ev.Index, m)
		if m.NumDelivered > 1 {
			redelivered.Add(1)
		}
		return nil
	}, &framework.SubscribeOptions{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "all acked", func() bool { return sub.Stats().Acked >= n })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "contended", 10*time.Second)

	sizes := rl.resizes()
	st := sub.Stats()
	t.Logf("resizes %v, stats %+v, redelivered %d", sizes, st, redelivered.Load())
	// One growth, perhaps in two steps while the measurements settle. A
	// machine loaded beyond this test's own contention may make the handler
	// slow enough to shrink the buffer once, but nothing may grow it back:
	// shrinking and growing again is the oscillation.
	prev, shrunk := int64(256), false
	for _, to := range sizes {
		if to > prev && shrunk {
			t.Errorf("resizes %v: grew again to %d after shrinking", sizes, to)
		}
		shrunk = shrunk || to < prev
		prev = to
	}
	if len(sizes) > 3 {
		t.Errorf("%d resizes %v: want at most 3", len(sizes), sizes)
	}
	if st.Acked != n || st.DeadLettered != 0 || st.HandedBack != 0 || st.Retried != 0 {
		t.Errorf("stats %+v: want %d acked and nothing else", st, n)
	}
	log.check(t, n)
}
