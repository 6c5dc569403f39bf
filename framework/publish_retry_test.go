package framework_test

import (
	"context"
	"errors"
	"log/slog"
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
	topic := framework.MustNewTopic[orderCreated]("late.created.v1")

	type result struct {
		ack framework.PubAck
		err error
	}
	done := make(chan result, 1)
	go func() {
		ack, err := topic.Publish(context.Background(), svc, orderCreated{ID: "o-1"}, framework.WithEventID("late-1"),
			framework.WithPublishRetry(framework.PublishRetry{Attempts: 50, Backoff: framework.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}}))
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
	topic := framework.MustNewTopic[orderCreated]("nowhere.created.v1")
	ctx := context.Background()

	_, err = topic.Publish(ctx, svc, orderCreated{}, framework.WithPublishRetry(framework.PublishRetry{Attempts: 3, Backoff: framework.Backoff{Initial: time.Millisecond, Max: time.Millisecond}}))
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
	// Zero Attempts means the default, 12 sends.
	resends.Store(0)
	if _, err := topic.Publish(ctx, svc, orderCreated{}, framework.WithPublishRetry(framework.PublishRetry{Backoff: framework.Backoff{Initial: time.Millisecond, Max: time.Millisecond}})); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("zero Attempts: err = %v, want ErrNoStreamResponse", err)
	}
	if n := resends.Load(); n != 11 {
		t.Fatalf("%d resends with zero Attempts, want 11 (12 sends)", n)
	}
	// The caller's deadline ends the retry early.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = topic.Publish(short, svc, orderCreated{}, framework.WithPublishRetry(framework.PublishRetry{Attempts: 1000, Backoff: framework.Backoff{Initial: 50 * time.Millisecond, Max: 50 * time.Millisecond}}))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("err = %v after %s, want the caller's deadline", err, time.Since(start))
	}
	// An invalid policy is refused before anything is sent.
	if _, err := topic.Publish(ctx, svc, orderCreated{}, framework.WithPublishRetry(framework.PublishRetry{Attempts: -1})); err == nil || !strings.Contains(err.Error(), "Attempts") {
		t.Fatalf("invalid policy: err = %v", err)
	}
}

// TestPublishResendsTheSameEventAfterAnAttemptTimeout: a send whose ack
// never comes ends after AttemptTimeout and is resent with the same event
// id (Nats-Msg-Id), at most Attempts times; an ack to a resend completes
// the publish.
func TestPublishResendsTheSameEventAfterAnAttemptTimeout(t *testing.T) {
	srv := testenv.Start(t)
	svc, err := framework.New(context.Background(), srv.Config("order"), framework.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Shutdown(context.Background()) })
	topic := framework.MustNewTopic[orderCreated]("silent.created.v1")
	// No stream: a plain subscriber that swallows the first sends of each
	// event and acks the later ones as a stream would.
	var mu sync.Mutex
	seen := map[string]int{}
	ackFrom := map[string]int{"never": 1 << 30, "third": 3}
	sub, err := svc.Conn().NC.Subscribe("silent.created.v1", func(m *nats.Msg) {
		id := m.Header.Get(nats.MsgIdHdr)
		mu.Lock()
		seen[id]++
		n := seen[id]
		mu.Unlock()
		if n >= ackFrom[id] {
			_ = m.Respond([]byte(`{"stream":"SILENT","seq":7}`))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	policy := framework.PublishRetry{Attempts: 3, Backoff: framework.Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond}, AttemptTimeout: 200 * time.Millisecond}
	ctx := context.Background()

	start := time.Now()
	_, err = topic.Publish(ctx, svc, orderCreated{ID: "o-1"}, framework.WithEventID("never"), framework.WithPublishRetry(policy))
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the attempt timeout (context.DeadlineExceeded)", err)
	}
	if elapsed < 3*policy.AttemptTimeout || elapsed > 30*time.Second {
		t.Fatalf("three sends of %s each took %s", policy.AttemptTimeout, elapsed)
	}
	ack, err := topic.Publish(ctx, svc, orderCreated{ID: "o-2"}, framework.WithEventID("third"), framework.WithPublishRetry(policy))
	if err != nil || ack.Stream != "SILENT" || ack.Sequence != 7 || ack.EventID != "third" {
		t.Fatalf("acked on the third send: %+v, %v", ack, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["never"] != 3 || seen["third"] != 3 {
		t.Fatalf("sends per event id: %v, want 3 of each (the same id every time)", seen)
	}
}
