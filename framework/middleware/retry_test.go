package middleware_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/middleware"
	"github.com/jetkit/jetkit/testenv"
)

var errFlaky = errors.New("flaky dependency")

func TestRetrySucceedsAfterKFailuresWithBackoff(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "retry")
	const k = 3
	policy := middleware.RetryPolicy{Backoff: framework.Backoff{Initial: 40 * time.Millisecond, Multiplier: 2, Max: time.Second, Jitter: -1}, MaxAttempts: 5, Logger: slog.New(slog.DiscardHandler)}
	var mu sync.Mutex
	var calls []time.Time
	var attempts []int
	var deliveries []uint64
	sub, err := framework.SubscribeHandler(t.Context(), svc, "jobs.>", "worker", framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, time.Now())
		attempts = append(attempts, m.Attempt)
		deliveries = append(deliveries, m.NumDelivered)
		if len(calls) <= k {
			return errFlaky
		}
		return nil
	}), &framework.SubscribeOptions{Middleware: []framework.Middleware{middleware.Retry(policy)}})
	if err != nil {
		t.Fatal(err)
	}
	publishEvent(t, svc, "e1", "m1")
	testenv.Eventually(t, 10*time.Second, "the event is acked", func() bool { return sub.Stats().Acked == 1 })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "JOBS", "worker", 5*time.Second)

	mu.Lock()
	defer mu.Unlock()
	if len(calls) != k+1 {
		t.Fatalf("handler ran %d times, want %d", len(calls), k+1)
	}
	want := 40 * time.Millisecond
	for i := 1; i < len(calls); i++ {
		if gap := calls[i].Sub(calls[i-1]); gap < want {
			t.Errorf("gap before attempt %d = %s, want at least %s", i+1, gap, want)
		}
		want *= 2
	}
	for i := range attempts {
		if attempts[i] != i+1 || deliveries[i] != 1 {
			t.Errorf("call %d: attempt %d delivery %d, want attempt %d delivery 1", i, attempts[i], deliveries[i], i+1)
		}
	}
	if st := sub.Stats(); st.Retried != 0 || st.DeadLettered != 0 {
		t.Fatalf("in-process retries must not reach the broker: %+v", st)
	}
}

func TestRetryNonRetryableAndPermanentAreDeadLetteredWithoutRetry(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "retry")
	errBadInput := errors.New("customer does not exist")
	policy := middleware.RetryPolicy{Backoff: framework.Backoff{Initial: time.Millisecond}, MaxAttempts: 5, Logger: slog.New(slog.DiscardHandler),
		NonRetryable: func(err error) bool { return errors.Is(err, errBadInput) }}
	calls := newCounter()
	sub, err := framework.SubscribeHandler(t.Context(), svc, "jobs.>", "worker", framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		calls.add(m.Envelope.ID)
		if m.Envelope.ID == "classified" {
			return errBadInput
		}
		return framework.Permanent(errors.New("marked permanent"))
	}), &framework.SubscribeOptions{MaxDeliver: 5, Middleware: []framework.Middleware{middleware.Retry(policy)}})
	if err != nil {
		t.Fatal(err)
	}
	publishEvent(t, svc, "classified", "m1")
	publishEvent(t, svc, "permanent", "m2")
	testenv.Eventually(t, 10*time.Second, "both dead-lettered", func() bool { return sub.Stats().DeadLettered == 2 })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "JOBS", "worker", 5*time.Second)
	if calls.get("classified") != 1 || calls.get("permanent") != 1 {
		t.Fatalf("handler runs %v, want one each", calls.snapshot())
	}
	if st := sub.Stats(); st.Retried != 0 || st.Acked != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := deadLetterCount(t, svc); n != 2 {
		t.Fatalf("dead-letter stream holds %d, want 2", n)
	}
}

func TestRetryGivesEachAttemptItsOwnDeadline(t *testing.T) {
	const perAttempt = 150 * time.Millisecond
	policy := middleware.RetryPolicy{Backoff: framework.Backoff{Initial: 10 * time.Millisecond, Jitter: -1}, MaxAttempts: 3,
		AttemptTimeout: perAttempt, Logger: slog.New(slog.DiscardHandler)}
	type seen struct {
		started, deadline time.Time
		err               error
	}
	var got []seen
	h := middleware.Retry(policy)(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		dl, ok := ctx.Deadline()
		if !ok {
			t.Error("attempt has no deadline")
		}
		s := seen{started: time.Now(), deadline: dl}
		if m.Attempt < 3 {
			<-ctx.Done() // a slow dependency: this attempt times out
			s.err = ctx.Err()
			got = append(got, s)
			return ctx.Err()
		}
		got = append(got, s)
		return nil
	}))
	m := message("e1")
	if err := h.Handle(context.Background(), m); err != nil {
		t.Fatalf("third attempt should succeed: %v", err)
	}
	if len(got) != 3 || m.Attempt != 3 {
		t.Fatalf("%d attempts, Message.Attempt %d; want 3", len(got), m.Attempt)
	}
	for i, s := range got {
		left := s.deadline.Sub(s.started)
		if left <= perAttempt/2 || left > perAttempt {
			t.Errorf("attempt %d started with %s left, want a fresh %s", i+1, left, perAttempt)
		}
		if i < 2 && !errors.Is(s.err, context.DeadlineExceeded) {
			t.Errorf("attempt %d: %v", i+1, s.err)
		}
	}
}

func TestRetryAttemptTimeoutErrorAndExhaustion(t *testing.T) {
	policy := middleware.RetryPolicy{Backoff: framework.Backoff{Initial: time.Millisecond}, MaxAttempts: 2, AttemptTimeout: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	runs := 0
	h := middleware.Retry(policy)(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		runs++
		<-ctx.Done()
		return ctx.Err()
	}))
	err := h.Handle(context.Background(), message("e1"))
	if !errors.Is(err, middleware.ErrHandlerTimeout) || !errors.Is(err, context.DeadlineExceeded) || framework.IsPermanent(err) {
		t.Fatalf("error %v: want a transient ErrHandlerTimeout", err)
	}
	if runs != 2 || !strings.Contains(err.Error(), "2 in-process attempts") {
		t.Fatalf("runs %d, error %q", runs, err)
	}
}

func TestRetryStopsAtOnceWhenTheDeliveryIsCancelled(t *testing.T) {
	policy := middleware.RetryPolicy{Backoff: framework.Backoff{Initial: time.Hour, Max: time.Hour}, MaxAttempts: 5, MaxElapsed: -1, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	h := middleware.Retry(policy)(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		cancel() // shutdown begins while the first attempt fails
		return errFlaky
	}))
	done := make(chan error, 1)
	go func() { done <- h.Handle(ctx, message("e1")) }()
	select {
	case err := <-done:
		if !errors.Is(err, errFlaky) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Retry kept waiting for its backoff after the context was cancelled")
	}
}

func TestRetryZeroPolicyMeansDefaultsAndBadPolicyPanics(t *testing.T) {
	if err := (middleware.RetryPolicy{}).Validate(); err != nil {
		t.Fatalf("zero policy: %v", err)
	}
	d := middleware.DefaultRetryPolicy()
	if d.Backoff.Initial <= 0 || d.Backoff.Multiplier < 1 || d.MaxAttempts < 2 || d.MaxElapsed <= 0 {
		t.Fatalf("defaults must back off: %+v", d)
	}
	err := (middleware.RetryPolicy{Backoff: framework.Backoff{Multiplier: 0.5, Jitter: 2}, MaxAttempts: -1}).Validate()
	for _, want := range []string{"Multiplier", "MaxAttempts", "Jitter"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate should report %s: %v", want, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Retry with an invalid policy must panic at wiring time")
		}
	}()
	middleware.Retry(middleware.RetryPolicy{Backoff: framework.Backoff{Multiplier: 0.5}})
}

func TestRetryWarnsWhenNested(t *testing.T) {
	log, buf := bufferLogger(slog.LevelWarn)
	policy := middleware.RetryPolicy{Backoff: framework.Backoff{Initial: time.Millisecond}, MaxAttempts: 2, Logger: log}
	h := chain(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error { return nil }),
		middleware.Retry(policy), middleware.Retry(policy))
	for range 3 {
		if err := h.Handle(context.Background(), message("e1")); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	if strings.Count(out, "nested in another Retry") != 1 {
		t.Errorf("want exactly one nested-Retry warning, got:\n%s", out)
	}
}

func TestRetryLogsEachRetryWithEventFields(t *testing.T) {
	log, buf := bufferLogger(slog.LevelWarn)
	policy := middleware.RetryPolicy{Backoff: framework.Backoff{Initial: time.Millisecond}, MaxAttempts: 3, Logger: log}
	h := middleware.Retry(policy)(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error { return errFlaky }))
	_ = h.Handle(context.Background(), message("evt-42"))
	out := buf.String()
	if n := strings.Count(out, "retrying in process"); n != 2 {
		t.Fatalf("want 2 retry records for 3 attempts, got %d:\n%s", n, out)
	}
	for _, want := range []string{"event_id=evt-42", "type=" + eventType, "subject=" + subject, "stream_seq=7", "attempt=1", "attempt=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
