package middleware_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/middleware"
)

func TestRecoverTurnsPanicIntoErrorWithStack(t *testing.T) {
	var seenByOuter error
	outer := func(next framework.Handler) framework.Handler {
		return framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			seenByOuter = next.Handle(ctx, m)
			return seenByOuter
		})
	}
	h := chain(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		panic(errFlaky)
	}), outer, middleware.Recover())
	err := h.Handle(context.Background(), message("e1"))
	var pe *framework.PanicError
	if !errors.As(err, &pe) || seenByOuter != err {
		t.Fatalf("want a PanicError seen by the outer middleware, got %v", err)
	}
	if !errors.Is(err, errFlaky) || !strings.Contains(string(pe.Stack), "recover_timeout_logging_test.go") {
		t.Fatalf("panic value or stack lost: %v\n%s", err, pe.Stack)
	}
}

func TestRetryRetriesPanicsInProcess(t *testing.T) {
	runs := 0
	h := middleware.Retry(middleware.RetryPolicy{Backoff: framework.Backoff{Initial: time.Millisecond}, MaxAttempts: 3, Logger: slog.New(slog.DiscardHandler)})(
		framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			runs++
			if runs < 3 {
				panic("boom")
			}
			return nil
		}))
	if err := h.Handle(context.Background(), message("e1")); err != nil || runs != 3 {
		t.Fatalf("err %v after %d runs; want success on the third", err, runs)
	}
}

func TestTimeoutSetsDeadlineAndAbandonsHungHandler(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := middleware.Retry(middleware.RetryPolicy{MaxAttempts: 1, AttemptTimeout: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("no deadline on the handler's context")
		}
		<-release // ignores ctx: hangs until the test ends
		return nil
	}))
	start := time.Now()
	err := h.Handle(context.Background(), message("e1"))
	if !errors.Is(err, middleware.ErrHandlerTimeout) || framework.IsPermanent(err) {
		t.Fatalf("want a transient ErrHandlerTimeout, got %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("hung handler held the call for %s", took)
	}
}

func TestTimeoutKeepsAHandlersOwnResult(t *testing.T) {
	h := middleware.Retry(middleware.RetryPolicy{MaxAttempts: 1, AttemptTimeout: time.Second, Logger: slog.New(slog.DiscardHandler)})(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		return errFlaky
	}))
	if err := h.Handle(context.Background(), message("e1")); err != errFlaky {
		t.Fatalf("an error returned in time must pass unchanged, got %v", err)
	}
}

func TestLoggingLevelsAndFields(t *testing.T) {
	log, buf := bufferLogger(slog.LevelInfo)
	ok := middleware.Logging(log)(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error { return nil }))
	if err := ok.Handle(context.Background(), message("quiet")); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "" {
		t.Fatalf("success must log only at debug, got:\n%s", buf.String())
	}
	failing := chain(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error { panic("kaput") }),
		middleware.Logging(log), middleware.Recover())
	m := message("evt-9")
	m.Attempt = 2
	_ = failing.Handle(context.Background(), m)
	out := buf.String()
	for _, want := range []string{"level=ERROR", "handler panicked", "event_id=evt-9", "type=" + eventType, "subject=" + subject,
		"stream_seq=7", "attempt=2", "delivery=1", "stack=", "kaput"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	transient := middleware.Logging(log)(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error { return errFlaky }))
	_ = transient.Handle(context.Background(), message("evt-10"))
	if !strings.Contains(buf.String(), "level=WARN msg=\"handler failed; the message will be redelivered\"") {
		t.Errorf("transient failure not at warn:\n%s", buf.String())
	}
}
