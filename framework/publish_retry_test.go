package framework_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// resendCounter is a slog.Handler counting "resending" records.
type resendCounter struct{ n *atomic.Int64 }

func (h resendCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h resendCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "resending") {
		h.n.Add(1)
	}
	return nil
}
func (h resendCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h resendCounter) WithGroup(string) slog.Handler      { return h }

// TestPublishRetryRidesOutAMissingStream publishes while no stream stores
// the subject (no responders, as during a leader election): Publish keeps
// resending the same message and succeeds once the stream appears; the
// stream holds it once.
func TestPublishRetryRidesOutAMissingStream(t *testing.T) {
	srv := testenv.Start(t)
	var resends atomic.Int64
	cfg := srv.Config("order")
	svc, err := framework.New(context.Background(), cfg, framework.WithLogger(slog.New(resendCounter{&resends})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Shutdown(context.Background()) })
	topic := framework.NewTopic[orderCreated]("late.created.v1")

	type result struct {
		ack framework.PubAck
		err error
	}
	done := make(chan result, 1)
	go func() {
		ack, err := topic.Publish(context.Background(), svc, orderCreated{ID: "o-1"}, framework.WithEventID("late-1"),
			framework.WithPublishRetry(framework.PublishRetry{Attempts: 50, Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}))
		done <- result{ack, err}
	}()
	testenv.Eventually(t, 10*time.Second, "the publish is being resent", func() bool { return resends.Load() >= 2 })
	if _, err := svc.EnsureStream(context.Background(), framework.StreamSpec{Name: "LATE", Subjects: []string{"late.>"}}); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("publish did not return within 30s of the stream appearing")
	}
	if r.err != nil || r.ack.Stream != "LATE" || r.ack.EventID != "late-1" {
		t.Fatalf("ack %+v err %v", r.ack, r.err)
	}
	st, _ := svc.Conn().JS.Stream(context.Background(), "LATE")
	info, _ := st.Info(context.Background())
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
}

// TestPublishRetryIsBounded checks that retrying stops after Attempts
// sends, returns the last error, and that Attempts: 1 never resends.
func TestPublishRetryIsBounded(t *testing.T) {
	srv := testenv.Start(t)
	var resends atomic.Int64
	svc, err := framework.New(context.Background(), srv.Config("order"), framework.WithLogger(slog.New(resendCounter{&resends})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Shutdown(context.Background()) })
	topic := framework.NewTopic[orderCreated]("nowhere.created.v1")
	ctx := context.Background()

	_, err = topic.Publish(ctx, svc, orderCreated{}, framework.WithPublishRetry(framework.PublishRetry{Attempts: 3, Initial: time.Millisecond, Max: time.Millisecond}))
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("err = %v, want ErrNoStreamResponse", err)
	}
	if n := resends.Load(); n != 2 {
		t.Fatalf("%d resends for 3 attempts, want 2", n)
	}
	resends.Store(0)
	if _, err := topic.Publish(ctx, svc, orderCreated{}, framework.WithPublishRetry(framework.PublishRetry{Attempts: 1})); err == nil {
		t.Fatal("publish without a stream succeeded")
	}
	if n := resends.Load(); n != 0 {
		t.Fatalf("%d resends with Attempts 1", n)
	}
	// The caller's deadline ends the retry early.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = topic.Publish(short, svc, orderCreated{}, framework.WithPublishRetry(framework.PublishRetry{Attempts: 1000, Initial: 50 * time.Millisecond, Max: 50 * time.Millisecond}))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("err = %v after %s, want the caller's deadline", err, time.Since(start))
	}
	// An invalid policy is refused before anything is sent.
	if _, err := topic.Publish(ctx, svc, orderCreated{}, framework.WithPublishRetry(framework.PublishRetry{Attempts: 0})); err == nil || !strings.Contains(err.Error(), "Attempts") {
		t.Fatalf("invalid policy: err = %v", err)
	}
}
