package framework_test

import (
	"bytes"
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

// effects counts completed handler runs per event index.
type effects struct {
	mu sync.Mutex
	n  map[int]int
}

func (e *effects) add(i int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n[i]++
}

func (e *effects) distinct() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.n)
}

func (e *effects) check(t *testing.T, n int) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range n {
		if e.n[i] != 1 {
			t.Errorf("event %d took effect %d times, want exactly once", i, e.n[i])
		}
	}
}

// TestShutdownUnderLoadHandsBackEverythingUnfinished stops a service with
// about a thousand handlers in flight and more buffered, on a budget far
// shorter than the handlers need. A second instance with the same durable
// must then get every unfinished message at once (AckWait is 60s, so a
// message that was not handed back could not arrive in time), and with
// idempotency on every event must take effect exactly once.
func TestShutdownUnderLoadHandsBackEverythingUnfinished(t *testing.T) {
	srv := testenv.Start(t)
	const (
		n       = 3000
		ackWait = 60 * time.Second
		budget  = 300 * time.Millisecond
	)
	long := func(c *framework.Config) { c.AckWait = ackWait }
	svc1 := newService(t, srv, "worker-1", long)
	ctx := context.Background()
	var idemLog syncBuf
	defer func() {
		if t.Failed() {
			out := idemLog.String()
			t.Logf("idempotency log: %d lines, %d release failures; first lines:\n%.3000s", strings.Count(out, "\n"), strings.Count(out, "could not release"), out)
		}
	}()
	newIdem := func(svc *framework.Service) *middleware.Idempotency {
		idem, err := middleware.NewIdempotency(ctx, svc, middleware.IdempotencyConfig{Logger: slog.New(slog.NewTextHandler(&idemLog, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			t.Fatal(err)
		}
		return idem
	}
	done := &effects{n: map[int]int{}}
	var inFlight atomic.Int64
	slow := func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		work := time.Duration(20+(ev.Index%25)*100) * time.Millisecond // 20ms .. 2.42s
		select {
		case <-time.After(work):
		case <-ctx.Done():
			return ctx.Err()
		}
		done.add(ev.Index)
		return nil
	}
	idem1 := newIdem(svc1)
	// A fixed prefetch: this test counts deliveries, and replacing a pull
	// while messages flow to it (an adaptive resize) can add one to the
	// delivery count of messages in flight to the old one (see Prefetch).
	sub1, err := framework.Subscribe(ctx, svc1, created, "worker", slow,
		&framework.SubscribeOptions{Concurrency: 1000, Prefetch: 2000, Middleware: []framework.Middleware{idem1.Middleware()}})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc1, n)
	testenv.Eventually(t, 30*time.Second, "some events done and many in flight", func() bool {
		return sub1.Stats().Acked >= 200 && inFlight.Load() >= 500
	})
	inFlightAtStop := inFlight.Load()
	stopCtx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	start := time.Now()
	if err := svc1.Shutdown(stopCtx); err != nil {
		t.Logf("shutdown: %v", err)
	}
	stopTook := time.Since(start)
	st1 := sub1.Stats()
	if stopTook > budget+10*time.Second {
		t.Fatalf("shutdown took %s on a %s budget", stopTook, budget)
	}
	// Every delivery a handler started was acked or handed back; what the
	// first instance never pulled (its buffer adapts) waits in the stream.
	if st1.HandedBack == 0 || st1.DeadLettered != 0 || st1.Acked+st1.HandedBack > n || st1.Acked+st1.HandedBack < st1.Received {
		t.Fatalf("first instance: %+v", st1)
	}

	svc2 := newService(t, srv, "worker-2", long)
	idem2 := newIdem(svc2)
	var fast atomic.Int64
	var redelivered atomic.Int64 // deliveries beyond the one hand-back
	start = time.Now()
	sub2, err := framework.Subscribe(ctx, svc2, created, "worker", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		fast.Add(1)
		if m.NumDelivered > 2 {
			redelivered.Add(1)
		}
		done.add(ev.Index)
		return nil
	}, &framework.SubscribeOptions{Concurrency: 64, Middleware: []framework.Middleware{idem2.Middleware()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.WaitFor(ctx, ackWait/2, func() bool { return done.distinct() == n }); err != nil {
		c, _ := svc2.Conn().JS.Consumer(ctx, "ORDERS", "worker")
		info, _ := c.Info(ctx)
		t.Fatalf("second instance has %d of %d events after %s: first %+v, second %+v, idempotency %+v, consumer pending %d ack-pending %d redelivered %d",
			done.distinct(), n, ackWait/2, st1, sub2.Stats(), idem2.Stats(), info.NumPending, info.NumAckPending, info.NumRedelivered)
	}
	takeover := time.Since(start)
	testenv.WaitConsumerIdle(t, svc2.Conn().JS, "ORDERS", "worker", 10*time.Second)
	done.check(t, n)
	if r := redelivered.Load(); r != 0 {
		t.Errorf("%d messages reached the second instance after more than one delivery: a hand-back was redelivered to the stopping instance", r)
	}
	st2 := sub2.Stats()
	if st1.Acked+st2.Acked < n || st2.DeadLettered != 0 {
		t.Fatalf("acked %d + %d of %d; second instance %+v", st1.Acked, st2.Acked, n, st2)
	}
	t.Logf("in flight at stop %d; shutdown took %s (budget %s); first instance acked %d, handed back %d; "+
		"second instance took %d messages (%d ran, %d skipped as done, %d waited for a claim) in %s",
		inFlightAtStop, stopTook.Round(time.Millisecond), budget, st1.Acked, st1.HandedBack,
		st2.Received, fast.Load(), idem2.Stats().Skipped, idem2.Stats().Waited, takeover.Round(time.Millisecond))
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestRunCancelHandsBackHandlersThatIgnoreTheirContext stops a service
// through Run (context cancelled, as SIGTERM does) while its handlers hang
// without looking at their context. Run must still return soon after
// ShutdownTimeout, and every event must reach a second instance at once.
func TestRunCancelHandsBackHandlersThatIgnoreTheirContext(t *testing.T) {
	srv := testenv.Start(t)
	const (
		n       = 300
		ackWait = 60 * time.Second
	)
	budget := 200 * time.Millisecond
	svc1 := newService(t, srv, "stuck", func(c *framework.Config) { c.AckWait = ackWait; c.ShutdownTimeout = budget })
	release := make(chan struct{})
	defer close(release)
	var started atomic.Int64
	sub1, err := framework.Subscribe(t.Context(), svc1, created, "worker", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		started.Add(1)
		<-release // hangs, ignoring ctx
		return nil
	}, &framework.SubscribeOptions{Concurrency: 50})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc1, n)
	testenv.Eventually(t, 20*time.Second, "50 handlers hanging", func() bool { return started.Load() == 50 })
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- svc1.Run(ctx) }()
	start := time.Now()
	cancel()
	select {
	case <-ran:
	case <-time.After(budget + 20*time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	if took := time.Since(start); took < budget {
		t.Fatalf("Run returned after %s, before the %s budget was spent", took, budget)
	}
	if st := sub1.Stats(); st.HandedBack < 50 || st.Acked != 0 {
		t.Fatalf("first instance %+v: want everything it held handed back", st)
	}

	svc2 := newService(t, srv, "rescuer", func(c *framework.Config) { c.AckWait = ackWait })
	done := &effects{n: map[int]int{}}
	sub2, err := framework.Subscribe(t.Context(), svc2, created, "worker", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		done.add(ev.Index)
		return nil
	}, &framework.SubscribeOptions{Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, ackWait/3, "every event handled by the second instance", func() bool { return done.distinct() == n })
	testenv.WaitConsumerIdle(t, svc2.Conn().JS, "ORDERS", "worker", 10*time.Second)
	done.check(t, n)
	if st := sub2.Stats(); st.Acked != n || st.DeadLettered != 0 {
		t.Fatalf("second instance %+v", st)
	}
}
