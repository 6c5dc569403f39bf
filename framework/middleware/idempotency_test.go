package middleware_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/middleware"
	"github.com/jetkit/jetkit/testenv"
)

func newIdempotency(t *testing.T, svc *framework.Service, cfg middleware.IdempotencyConfig) *middleware.Idempotency {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idem, err := middleware.NewIdempotency(ctx, svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return idem
}

func TestIdempotencySameEventTwiceAndForcedRedeliveryRunOnce(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "idem")
	idem := newIdempotency(t, svc, middleware.IdempotencyConfig{})
	runs := newCounter()
	// loseFirstAck fails the first delivery of "redelivered" after the
	// handler has succeeded, as if the ack had been lost: the broker
	// redelivers it.
	var lostOnce atomic.Bool
	loseFirstAck := func(next framework.Handler) framework.Handler {
		return framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			err := next.Handle(ctx, m)
			if err == nil && m.Envelope.ID == "redelivered" && lostOnce.CompareAndSwap(false, true) {
				return errors.New("ack lost")
			}
			return err
		})
	}
	sub, err := framework.SubscribeHandler(t.Context(), svc, "jobs.>", "worker", framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		runs.add(m.Envelope.ID)
		return nil
	}), &framework.SubscribeOptions{Concurrency: 4, Middleware: []framework.Middleware{loseFirstAck, idem.Middleware()}})
	if err != nil {
		t.Fatal(err)
	}
	publishEvent(t, svc, "twice", "msg-a")
	publishEvent(t, svc, "twice", "msg-b") // same event id, different Nats-Msg-Id: stored twice
	publishEvent(t, svc, "redelivered", "msg-c")
	publishEvent(t, svc, "odd id/with.dots *and spaces", "msg-d")
	testenv.Eventually(t, 10*time.Second, "all four deliveries acked", func() bool { return sub.Stats().Acked == 4 })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "JOBS", "worker", 5*time.Second)
	for id, want := range map[string]int{"twice": 1, "redelivered": 1, "odd id/with.dots *and spaces": 1} {
		if got := runs.get(id); got != want {
			t.Errorf("event %q ran %d times, want %d", id, got, want)
		}
	}
	st := idem.Stats()
	if st.Ran != 3 || st.Skipped != 2 || sub.Stats().Retried != 1 {
		t.Fatalf("idempotency %+v, subscription %+v: want 3 runs and 2 skips after one redelivery", st, sub.Stats())
	}
}

func TestIdempotencyTwoInstancesRacing(t *testing.T) {
	srv := testenv.Start(t)
	svcA := newService(t, srv, "idem-a")
	svcB := newService(t, srv, "idem-b")
	const events = 60
	runs := newCounter()
	var running, overlap atomic.Int32
	handler := framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		if running.Add(1) > 1 {
			overlap.Add(1)
		}
		defer running.Add(-1)
		runs.add(m.Envelope.ID)
		time.Sleep(5 * time.Millisecond) // simulated work, so duplicates meet in flight
		return nil
	})
	var subs []*framework.Subscription
	var idems []*middleware.Idempotency
	for _, svc := range []*framework.Service{svcA, svcB} {
		idem := newIdempotency(t, svc, middleware.IdempotencyConfig{})
		idems = append(idems, idem)
		sub, err := framework.SubscribeHandler(t.Context(), svc, "jobs.>", "worker", handler,
			&framework.SubscribeOptions{Concurrency: 8, Prefetch: 8, Middleware: []framework.Middleware{idem.Middleware()}})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	for i := range events { // each event stored twice, back to back
		publishEvent(t, svcA, eventID(i), eventID(i)+"-1")
		publishEvent(t, svcA, eventID(i), eventID(i)+"-2")
	}
	acked := func() uint64 { return subs[0].Stats().Acked + subs[1].Stats().Acked }
	testenv.Eventually(t, 20*time.Second, "every delivery acked", func() bool { return acked() == 2*events })
	testenv.WaitConsumerIdle(t, svcA.Conn().JS, "JOBS", "worker", 5*time.Second)
	for i := range events {
		if got := runs.get(eventID(i)); got != 1 {
			t.Errorf("event %s ran %d times, want 1", eventID(i), got)
		}
	}
	ran := idems[0].Stats().Ran + idems[1].Stats().Ran
	skipped := idems[0].Stats().Skipped + idems[1].Stats().Skipped
	if ran != events || skipped != events {
		t.Fatalf("ran %d skipped %d, want %d each (A %+v, B %+v)", ran, skipped, events, idems[0].Stats(), idems[1].Stats())
	}
	if subs[0].Stats().Acked == 0 || subs[1].Stats().Acked == 0 {
		t.Logf("one instance took all the work (A %d, B %d): the race was not exercised across instances", subs[0].Stats().Acked, subs[1].Stats().Acked)
	}
}

func TestIdempotencyConcurrentDuplicatesWaitForTheClaim(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "idem")
	idem := newIdempotency(t, svc, middleware.IdempotencyConfig{Lease: 2 * time.Second, TTL: time.Minute})
	var runs atomic.Int32
	h := idem.Middleware()(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		runs.Add(1)
		time.Sleep(200 * time.Millisecond) // long enough that every duplicate finds the claim held
		return nil
	}))
	const racers = 16
	var wg sync.WaitGroup
	errs := make(chan error, racers)
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- h.Handle(context.Background(), message("contended"))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a duplicate failed instead of waiting: %v", err)
		}
	}
	st := idem.Stats()
	if runs.Load() != 1 || st.Ran != 1 || st.Skipped != racers-1 {
		t.Fatalf("handler ran %d times (stats %+v), want once with %d skipped", runs.Load(), st, racers-1)
	}
	if st.Waited == 0 {
		t.Fatalf("no duplicate waited for the live claim: %+v", st)
	}
}

func TestIdempotencyFailureReleasesClaimAndCrashedClaimIsTakenOver(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "idem")
	const lease = 500 * time.Millisecond
	idem := newIdempotency(t, svc, middleware.IdempotencyConfig{Lease: lease, TTL: time.Minute})
	runs := newCounter()
	fail := true
	h := idem.Middleware()(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		runs.add(m.Envelope.ID)
		if fail {
			return errFlaky
		}
		return nil
	}))
	ctx := context.Background()
	if err := h.Handle(ctx, message("fails-first")); !errors.Is(err, errFlaky) {
		t.Fatalf("want the handler's error, got %v", err)
	}
	fail = false
	start := time.Now()
	if err := h.Handle(ctx, message("fails-first")); err != nil {
		t.Fatal(err)
	}
	if runs.get("fails-first") != 2 || time.Since(start) > lease {
		t.Fatalf("after a failure the retry must run at once: runs %d, took %s", runs.get("fails-first"), time.Since(start))
	}
	if err := h.Handle(ctx, message("fails-first")); err != nil || runs.get("fails-first") != 2 {
		t.Fatalf("done event ran again: %v, runs %d", err, runs.get("fails-first"))
	}

	// Another process claims "crashed" and dies mid-handler: its connection
	// goes away, so its claim is never renewed, released or marked done. A
	// redelivery must take the event over once the lease has run out.
	conn, err := framework.Connect(ctx, srv.Config("doomed"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	doomed, err := framework.New(ctx, srv.Config("doomed"), framework.WithConn(conn), framework.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	dead, err := middleware.NewIdempotency(ctx, doomed, middleware.IdempotencyConfig{Lease: lease, TTL: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	claimed, hang := make(chan struct{}), make(chan struct{})
	defer close(hang)
	go func() {
		_ = dead.Middleware()(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			close(claimed)
			<-hang
			return nil
		})).Handle(ctx, message("crashed"))
	}()
	<-claimed
	conn.Close() // the crash
	start = time.Now()
	if err := h.Handle(ctx, message("crashed")); err != nil {
		t.Fatal(err)
	}
	if runs.get("crashed") != 1 || idem.Stats().TookOver != 1 {
		t.Fatalf("runs %d, stats %+v: want one take-over run", runs.get("crashed"), idem.Stats())
	}
	if took := time.Since(start); took < lease/2 {
		t.Fatalf("took over after %s, before the lease of %s could run out", took, lease)
	}
	e, err := idem.Bucket().Get(ctx, "JOBS.worker.crashed")
	if err != nil || e.Operation() != jetstream.KeyValuePut {
		t.Fatalf("record of the crashed event: %v", err)
	}
}
