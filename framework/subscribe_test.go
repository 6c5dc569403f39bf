package framework_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv"
)

// deadLetters reads every message in the dead-letter stream.
func deadLetters(t *testing.T, svc *framework.Service) []*nats.Msg {
	t.Helper()
	// Generous: a dead letter can be megabytes and the machine loaded.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := svc.Conn().JS.Stream(ctx, svc.Config().DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*nats.Msg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &nats.Msg{Subject: raw.Subject, Data: raw.Data, Header: raw.Header})
	}
	return out
}

func TestFanOutAndWorkSharing(t *testing.T) {
	srv := testenv.Start(t)
	pub := newService(t, srv, "order")
	const n = 200
	var billing, inv1, inv2 atomic.Int64
	var seenMu sync.Mutex
	seen := map[int]int{} // index -> inventory deliveries
	count := func(c *atomic.Int64, inventory bool) framework.TypedHandler[orderCreated] {
		return func(ctx context.Context, ev orderCreated, m *framework.Message) error {
			c.Add(1)
			if inventory {
				seenMu.Lock()
				seen[ev.Index]++
				seenMu.Unlock()
			}
			return nil
		}
	}
	billingSvc := newService(t, srv, "billing")
	invA := newService(t, srv, "inventory")
	invB := newService(t, srv, "inventory")
	subs := []*framework.Subscription{}
	for _, s := range []struct {
		svc *framework.Service
		dur string
		c   *atomic.Int64
		inv bool
	}{{billingSvc, "billing", &billing, false}, {invA, "inventory", &inv1, true}, {invB, "inventory", &inv2, true}} {
		sub, err := framework.Subscribe(t.Context(), s.svc, created, s.dur, count(s.c, s.inv), &framework.SubscribeOptions{Concurrency: 4, Prefetch: 8})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	publishN(t, pub, n)
	testenv.Eventually(t, 20*time.Second, "every event reached both services", func() bool {
		return billing.Load() == n && inv1.Load()+inv2.Load() == n
	})
	testenv.WaitConsumerIdle(t, pub.Conn().JS, "ORDERS", "billing", 5*time.Second)
	testenv.WaitConsumerIdle(t, pub.Conn().JS, "ORDERS", "inventory", 5*time.Second)
	if inv1.Load() == 0 || inv2.Load() == 0 {
		t.Errorf("work not shared: instance A %d, instance B %d", inv1.Load(), inv2.Load())
	}
	seenMu.Lock()
	defer seenMu.Unlock()
	for i := range n {
		if seen[i] != 1 {
			t.Fatalf("event %d handled %d times by the inventory service", i, seen[i])
		}
	}
	var acked uint64
	for _, s := range subs {
		acked += s.Stats().Acked
	}
	if acked != 2*n {
		t.Fatalf("reconcile: published %d to 2 services, acked %d", n, acked)
	}
}

func TestAckModesAndConcurrencyBound(t *testing.T) {
	for _, mode := range []framework.AckMode{framework.AckModeSync, framework.AckModeAsync} {
		for _, conc := range []int{1, 8} {
			t.Run(fmt.Sprintf("conc%d", conc), func(t *testing.T) {
				srv := testenv.Start(t)
				svc := newService(t, srv, "order")
				const n = 300
				var running, peak atomic.Int64
				var mu sync.Mutex
				var order []int
				sub, err := framework.Subscribe(t.Context(), svc, created, "worker", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
					now := running.Add(1)
					for {
						p := peak.Load()
						if now <= p || peak.CompareAndSwap(p, now) {
							break
						}
					}
					if ev.Index%10 == 0 {
						time.Sleep(time.Millisecond) // let overlap show
					}
					mu.Lock()
					order = append(order, ev.Index)
					mu.Unlock()
					running.Add(-1)
					return nil
				}, &framework.SubscribeOptions{Concurrency: conc, AckMode: mode})
				if err != nil {
					t.Fatal(err)
				}
				publishN(t, svc, n)
				testenv.Eventually(t, 20*time.Second, "all acked", func() bool { return sub.Stats().Acked == n })
				testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "worker", 5*time.Second)
				if p := peak.Load(); p > int64(conc) {
					t.Fatalf("concurrency bound %d exceeded: %d handlers at once", conc, p)
				}
				if conc == 1 {
					for i, idx := range order {
						if idx != i {
							t.Fatalf("concurrency 1 broke stream order at position %d: got event %d", i, idx)
						}
					}
				}
				if st := sub.Stats(); st.Acked != n || st.Retried != 0 || st.DeadLettered != 0 {
					t.Fatalf("reconcile: %+v", st)
				}
			})
		}
	}
}

func TestTransientErrorIsRedeliveredAfterBackoff(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	var mu sync.Mutex
	var times []time.Time
	backoff := framework.Backoff{Initial: 150 * time.Millisecond, Max: time.Second}
	sub, err := framework.Subscribe(t.Context(), svc, created, "flaky", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if m.NumDelivered != uint64(len(times)) {
			return framework.Permanent(fmt.Errorf("delivery count %d, want %d", m.NumDelivered, len(times)))
		}
		if len(times) < 3 {
			return errors.New("database busy")
		}
		return nil
	}, &framework.SubscribeOptions{RetryBackoff: backoff})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc, 1)
	testenv.Eventually(t, 10*time.Second, "the third delivery succeeded", func() bool { return sub.Stats().Acked == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 3 {
		t.Fatalf("handler ran %d times, want 3", len(times))
	}
	// Delays are Initial·2^(n-1) with ±20% jitter: >= 120ms, then >= 240ms.
	for i, min := range []time.Duration{120 * time.Millisecond, 240 * time.Millisecond} {
		if gap := times[i+1].Sub(times[i]); gap < min {
			t.Errorf("redelivery %d came after %s, before the backoff of at least %s", i+2, gap, min)
		}
	}
	if st := sub.Stats(); st.Retried != 2 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v", st)
	}
	if dl := deadLetters(t, svc); len(dl) != 0 {
		t.Fatalf("%d dead letters, want none", len(dl))
	}
}

func TestPermanentErrorIsDeadLetteredOnceWithReason(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	var calls atomic.Int64
	sub, err := framework.Subscribe(t.Context(), svc, created, "strict", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		calls.Add(1)
		return framework.Permanent(fmt.Errorf("order %s: qty %d not allowed", ev.ID, ev.Qty))
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc, 1)
	testenv.Eventually(t, 10*time.Second, "dead-lettered", func() bool { return sub.Stats().DeadLettered == 1 })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "strict", 5*time.Second)
	if c := calls.Load(); c != 1 {
		t.Fatalf("handler ran %d times for a permanent error, want 1", c)
	}
	dl := deadLetters(t, svc)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	h := dl[0].Header
	want := map[string]string{
		wire.HeaderDLQReason:    wire.ReasonPermanent,
		wire.HeaderDLQSubject:   "orders.created.v1",
		wire.HeaderDLQStream:    "ORDERS",
		wire.HeaderDLQConsumer:  "strict",
		wire.HeaderDLQStreamSeq: "1",
		wire.HeaderDLQDelivered: "1",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("dead letter header %s = %q, want %q", k, got, v)
		}
	}
	if !strings.Contains(h.Get(wire.HeaderDLQError), "qty 1 not allowed") {
		t.Errorf("error header %q lacks the handler's error", h.Get(wire.HeaderDLQError))
	}
	if dl[0].Subject != wire.DeadLetterSubject("ORDERS", "strict") || h.Get("ce-type") != "orders.created.v1" {
		t.Errorf("dead letter subject %q / ce-type %q", dl[0].Subject, h.Get("ce-type"))
	}
}

func TestAttemptsExhaustedAreDeadLettered(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	var calls atomic.Int64
	sub, err := framework.Subscribe(t.Context(), svc, created, "doomed", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		calls.Add(1)
		panic("boom") // a panic is an error like any other
	}, &framework.SubscribeOptions{MaxDeliver: 3, RetryBackoff: framework.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc, 2)
	testenv.Eventually(t, 10*time.Second, "both dead-lettered", func() bool { return sub.Stats().DeadLettered == 2 })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "doomed", 5*time.Second)
	if c := calls.Load(); c != 6 {
		t.Fatalf("handler ran %d times, want 3 deliveries x 2 messages", c)
	}
	for _, m := range deadLetters(t, svc) {
		if m.Header.Get(wire.HeaderDLQReason) != wire.ReasonMaxDeliver || m.Header.Get(wire.HeaderDLQDelivered) != "3" ||
			!strings.Contains(m.Header.Get(wire.HeaderDLQError), "panicked: boom") {
			t.Errorf("dead letter headers %v", m.Header)
		}
	}
	if st := sub.Stats(); st.Retried != 4 || st.Acked != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMalformedPayloadIsDeadLetteredAtOnce(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	var calls atomic.Int64
	sub, err := framework.Subscribe(t.Context(), svc, created, "parser", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		calls.Add(1)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	js := svc.Conn().JS
	ctx := context.Background()
	good := nats.Header{}
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "x1", "ce-type": "orders.created.v1", "ce-source": "raw"} {
		good.Set(k, v)
	}
	bad := []*nats.Msg{
		{Subject: "orders.created.v1", Data: []byte(`{"id": 12`), Header: good},                                    // truncated JSON
		{Subject: "orders.created.v1", Data: []byte(`{"id":"a"}`)},                                                 // no envelope
		{Subject: "orders.created.v1", Data: []byte(`{"id":"a"}`), Header: nats.Header{"ce-specversion": {"0.3"}}}, // wrong version
		{Subject: "orders.created.v1", Data: []byte(`{"id":"a"}`), Header: withType(good, "payments.settled.v1")},  // wrong type
		{Subject: "orders.created.v1", Data: []byte(`{"id":"ok"}`), Header: withType(good, "orders.created.v1")},   // fine
	}
	for _, m := range bad {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "4 dead letters and 1 ack", func() bool {
		st := sub.Stats()
		return st.DeadLettered == 4 && st.Acked == 1
	})
	testenv.WaitConsumerIdle(t, js, "ORDERS", "parser", 5*time.Second)
	if st := sub.Stats(); st.Retried != 0 {
		t.Fatalf("malformed input was retried: %+v", st)
	}
	if c := calls.Load(); c != 1 {
		t.Fatalf("handler ran %d times, want only for the valid message", c)
	}
	for _, m := range deadLetters(t, svc) {
		if m.Header.Get(wire.HeaderDLQReason) != wire.ReasonDecode || m.Header.Get(wire.HeaderDLQDelivered) != "1" {
			t.Errorf("dead letter reason %q after %s deliveries: %s", m.Header.Get(wire.HeaderDLQReason),
				m.Header.Get(wire.HeaderDLQDelivered), m.Header.Get(wire.HeaderDLQError))
		}
	}
}

func withType(h nats.Header, typ string) nats.Header {
	out := nats.Header{}
	for k, v := range h {
		out[k] = v
	}
	out.Set("ce-type", typ)
	out.Set("ce-id", typ+"-id")
	return out
}

func TestSlowHandlerWithBoundedPrefetchIsNotRedelivered(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	const n = 12
	var calls atomic.Int64
	// 12 messages x 150ms = 1.8s of work, well past the 600ms AckWait:
	// with Prefetch(1) no message waits in the client for long, and the
	// handler's own message gets InProgress heartbeats.
	sub, err := framework.Subscribe(t.Context(), svc, created, "slow", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		calls.Add(1)
		if m.NumDelivered != 1 {
			return framework.Permanent(fmt.Errorf("event %d redelivered (%d)", ev.Index, m.NumDelivered))
		}
		time.Sleep(150 * time.Millisecond)
		return nil
	}, &framework.SubscribeOptions{Concurrency: 1, Prefetch: 1, AckWait: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc, n)
	testenv.Eventually(t, 20*time.Second, "all handled", func() bool { return sub.Stats().Acked == n })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "slow", 5*time.Second)
	if c, st := calls.Load(), sub.Stats(); c != n || st.DeadLettered != 0 {
		t.Fatalf("handler ran %d times for %d events; stats %+v", c, n, st)
	}
	c, _ := svc.Conn().JS.Consumer(context.Background(), "ORDERS", "slow")
	if info, _ := c.Info(context.Background()); info.NumRedelivered != 0 {
		t.Fatalf("%d redeliveries", info.NumRedelivered)
	}
}

func TestLongHandlerGetsHeartbeats(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	var calls atomic.Int64
	sub, err := framework.Subscribe(t.Context(), svc, created, "long", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		calls.Add(1)
		time.Sleep(1500 * time.Millisecond) // 3x AckWait
		return nil
	}, &framework.SubscribeOptions{AckWait: 500 * time.Millisecond, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc, 1)
	testenv.Eventually(t, 10*time.Second, "acked", func() bool { return sub.Stats().Acked == 1 })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "long", 5*time.Second)
	if c, st := calls.Load(), sub.Stats(); c != 1 || st.InProgress < 2 {
		t.Fatalf("calls %d, stats %+v: want one call kept alive by InProgress", c, st)
	}
}

func TestServiceUseWrapsLaterSubscriptions(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	var trace []string
	var mu sync.Mutex
	mark := func(name string) framework.Middleware {
		return func(next framework.Handler) framework.Handler {
			return framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
				mu.Lock()
				trace = append(trace, name)
				mu.Unlock()
				return next.Handle(ctx, m)
			})
		}
	}
	svc.Use(mark("service"))
	sub, err := framework.Subscribe(t.Context(), svc, created, "used", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		mu.Lock()
		trace = append(trace, "handler")
		mu.Unlock()
		return nil
	}, &framework.SubscribeOptions{Middleware: []framework.Middleware{mark("subscription")}})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, svc, 1)
	testenv.Eventually(t, 10*time.Second, "acked", func() bool { return sub.Stats().Acked == 1 })
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(trace, ",") != "service,subscription,handler" {
		t.Fatalf("middleware order %v", trace)
	}
}
