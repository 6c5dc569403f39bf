package framework_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// Subscribe and Shutdown may run at once: every Subscribe either returns a
// subscription the shutdown stopped, or ErrClosed; nothing races (run with
// -race) and nothing panics.
func TestSubscribeRacingShutdown(t *testing.T) {
	srv := testenv.Start(t)
	for i := range 40 {
		svc := newService(t, srv, "race")
		var wg sync.WaitGroup
		var subErr error
		var sub *framework.Subscription
		wg.Add(2)
		go func() {
			defer wg.Done()
			sub, subErr = framework.Subscribe(t.Context(), svc, created, "racer", func(context.Context, orderCreated, *framework.Message) error { return nil }, nil)
		}()
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := svc.Shutdown(ctx); err != nil {
				t.Errorf("round %d: shutdown: %v", i, err)
			}
		}()
		wg.Wait()
		switch {
		case subErr != nil && !errors.Is(subErr, framework.ErrClosed):
			t.Fatalf("round %d: Subscribe racing Shutdown failed with %v, want ErrClosed", i, subErr)
		case subErr == nil && len(svc.Subscriptions()) != 1:
			t.Fatalf("round %d: Subscribe succeeded but the service tracks %d subscriptions", i, len(svc.Subscriptions()))
		case subErr == nil && sub == nil:
			t.Fatalf("round %d: nil subscription without an error", i)
		}
	}
}

// After Shutdown, publishing, subscribing and declaring streams through the
// service fail with ErrClosed, also when the connection is not the
// service's own (WithConn) and is still open.
func TestClosedServiceRefusesWork(t *testing.T) {
	srv := testenv.Start(t)
	for _, shared := range []bool{false, true} {
		cfg := srv.Config("closed")
		var opts []framework.Option
		if shared {
			conn, err := framework.Connect(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(conn.Close)
			opts = append(opts, framework.WithConn(conn))
		}
		opts = append(opts, framework.WithLogger(slog.New(slog.DiscardHandler)))
		ctx := context.Background()
		svc, err := framework.New(ctx, cfg, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.EnsureStream(ctx, ordersStream); err != nil {
			t.Fatal(err)
		}
		if err := svc.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := created.Publish(ctx, svc, orderCreated{ID: "late"}); !errors.Is(err, framework.ErrClosed) {
			t.Errorf("shared conn %v: Publish after Shutdown: %v, want ErrClosed", shared, err)
		}
		if _, err := created.PublishAsync(ctx, svc, orderCreated{ID: "late"}); !errors.Is(err, framework.ErrClosed) {
			t.Errorf("shared conn %v: PublishAsync after Shutdown: %v, want ErrClosed", shared, err)
		}
		_, err = framework.Subscribe(ctx, svc, created, "late", func(context.Context, orderCreated, *framework.Message) error { return nil }, nil)
		if !errors.Is(err, framework.ErrClosed) {
			t.Errorf("shared conn %v: Subscribe after Shutdown: %v, want ErrClosed", shared, err)
		}
		if err != nil && strings.Contains(err.Error(), "EnsureStream") {
			t.Errorf("shared conn %v: Subscribe after Shutdown hints at declaring a stream: %v", shared, err)
		}
		if _, err := svc.EnsureStream(ctx, ordersStream); !errors.Is(err, framework.ErrClosed) {
			t.Errorf("shared conn %v: EnsureStream after Shutdown: %v, want ErrClosed", shared, err)
		}
	}
	// Publishing through the service's own, now closed, connection fails
	// with ErrClosed too.
	svc := newService(t, srv, "closed-conn")
	svc.Conn().Close()
	if _, err := created.Publish(context.Background(), svc.Conn(), orderCreated{ID: "x"}); !errors.Is(err, framework.ErrClosed) {
		t.Errorf("Publish on a closed Conn: %v, want ErrClosed", err)
	}
}

// Subscribing to a subject no stream stores hints at EnsureStream; any
// other lookup failure carries its own cause instead.
func TestSubscribeHintsAtStreamOnlyWhenNoneFound(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "hint")
	nowhere := framework.MustNewTopic[orderCreated]("nowhere.created.v1")
	_, err := framework.Subscribe(t.Context(), svc, nowhere, "hint", func(context.Context, orderCreated, *framework.Message) error { return nil }, nil)
	if !errors.Is(err, jetstream.ErrStreamNotFound) || !strings.Contains(err.Error(), "EnsureStream") {
		t.Fatalf("Subscribe to a subject no stream stores: %v, want ErrStreamNotFound with the EnsureStream hint", err)
	}
}

// PublishAsync with a full async window waits for room until its ctx is
// done, not nats.go's fixed stall: a slot that frees after the stall still
// takes the publish, and a ctx that ends first ends the wait with its error.
func TestPublishAsyncWaitsForRoomUntilCtxDone(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "stall", func(c *framework.Config) { c.PublishAsyncMaxPending = 1 })
	stalled := framework.MustNewTopic[orderCreated]("stall.created.v1")
	// A core subscriber on the subject that does not answer at once keeps
	// the first publish pending (no stream stores stall.>).
	nc := svc.Conn().NC
	replies := make(chan string, 4)
	sub, err := nc.Subscribe("stall.created.v1", func(m *nats.Msg) { replies <- m.Reply })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := stalled.PublishAsync(ctx, svc, orderCreated{ID: "first"}); err != nil {
		t.Fatal(err)
	}
	first := <-replies
	ack, _ := json.Marshal(map[string]any{"stream": "STALL", "seq": 1})
	timer := time.AfterFunc(700*time.Millisecond, func() { _ = nc.Publish(first, ack) }) // after nats.go's 200 ms stall
	defer timer.Stop()

	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := stalled.PublishAsync(waitCtx, svc, orderCreated{ID: "second"}); err != nil {
		t.Fatalf("PublishAsync waiting for room failed after %v: %v", time.Since(start), err)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Fatalf("PublishAsync returned after %v, before the window had room", waited)
	}
	<-replies // the second is pending now; a third must wait and give up with ctx
	shortCtx, cancel2 := context.WithTimeout(ctx, 600*time.Millisecond)
	defer cancel2()
	start = time.Now()
	_, err = stalled.PublishAsync(shortCtx, svc, orderCreated{ID: "third"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PublishAsync with a full window and a 600 ms ctx: %v, want context.DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited < 550*time.Millisecond {
		t.Fatalf("PublishAsync gave up after %v, before its ctx ended", waited)
	}
}
