package framework_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/middleware"
	"github.com/jetkit/jetkit/testenv"
)

// A handler that ignores its context and never returns, under the default
// middleware (no per-attempt timeout) and one worker, used to stall the
// subscription for good behind InProgress heartbeats, silently. Past
// MaxHandlerTime its context is cancelled, then it is abandoned: the next
// messages are handled, the hung one is retried (and succeeds), and the
// overrun is logged and counted.
func TestHungHandlerIsAbandonedPastMaxHandlerTime(t *testing.T) {
	srv := testenv.Start(t)
	var logs lockedBuffer
	cfg := srv.Config("hung")
	cfg.RetryInitial, cfg.RetryMax = 50*time.Millisecond, 100*time.Millisecond
	svc, err := framework.New(context.Background(), cfg, framework.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	if _, err := svc.EnsureStream(context.Background(), ordersStream); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	var hung, handled atomic.Int32
	var causeSeen atomic.Bool
	h := func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		if ev.Index == 0 && m.NumDelivered == 1 {
			hung.Add(1)
			<-ctx.Done() // the context is cancelled at MaxHandlerTime...
			causeSeen.Store(strings.Contains(context.Cause(ctx).Error(), "MaxHandlerTime"))
			<-release // ...but the handler ignores it
			return nil
		}
		handled.Add(1)
		return nil
	}
	sub, err := framework.Subscribe(t.Context(), svc, created, "hung", h, &framework.SubscribeOptions{Concurrency: 1, AckWait: 200 * time.Millisecond, MaxHandlerTime: 500 * time.Millisecond, Middleware: middleware.Defaults(middleware.Options{Logger: slog.New(slog.DiscardHandler)})})
	if err != nil {
		t.Fatal(err)
	}
	const next = 20
	publishN(t, svc, 1+next)
	// The handler's return comes before its ack is counted: wait for the count.
	testenv.Eventually(t, 10*time.Second, "every message, the hung one retried, is handled and acked", func() bool {
		return handled.Load() == 1+next && sub.Stats().Acked == 1+next
	})
	testenv.WaitConsumerIdle(t, svc.Conn().JS, ordersStream.Name, "hung", 5*time.Second)
	st := sub.Stats()
	if hung.Load() != 1 || st.Abandoned != 1 || st.Overran < 1 || st.Retried < 1 || st.DeadLettered != 0 {
		t.Fatalf("hung %d, stats %+v: want one handler abandoned and overrun, retried, nothing dead-lettered", hung.Load(), st)
	}
	// Reconcile: 21 published = 21 acked (the hung message on its retry).
	if st.Acked != 1+next {
		t.Fatalf("acked %d, want %d: %+v", st.Acked, 1+next, st)
	}
	if !causeSeen.Load() {
		t.Error("the cancelled context's cause does not name MaxHandlerTime")
	}
	for _, want := range []string{"longer than AckWait", "past MaxHandlerTime", "abandoned"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line says %q:\n%s", want, logs.String())
		}
	}
	// The stuck goroutine returns at last: its result is discarded, and
	// the subscription goes on with its new worker.
	releaseOnce.Do(func() { close(release) })
	publishFrom(t, svc, 1+next, 1)
	testenv.Eventually(t, 5*time.Second, "the next message is handled and acked", func() bool {
		return handled.Load() == 2+next && sub.Stats().Acked == 2+next
	})
	if st := sub.Stats(); st.Acked != 2+next || st.Abandoned != 1 {
		t.Fatalf("after the stuck handler returned: %+v", st)
	}
}
