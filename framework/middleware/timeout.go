package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetkit/jetkit/framework"
)

// ErrHandlerTimeout is wrapped by the error a handler call returns when
// its deadline (Timeout or RetryPolicy.AttemptTimeout) passed.
var ErrHandlerTimeout = errors.New("handler timed out")

// Timeout gives each handler call a deadline of d on its context. A
// handler that honours its context returns soon after; one that ignores it
// and is still running a grace period later (d/10, between 100ms and 5s) is
// abandoned: the call returns an error wrapping ErrHandlerTimeout, the
// message is retried or dead-lettered, and the stuck goroutine is left to
// finish on its own. A hung handler therefore never holds its worker (or
// its message's InProgress heartbeats) forever.
//
//	framework.Subscribe(ctx, svc, orderCreated, "billing", charge,
//		framework.Wrap(middleware.Timeout(10*time.Second)))
//
// With Retry, do not wrap Retry in Timeout (every attempt would share one
// deadline); set RetryPolicy.AttemptTimeout instead, which gives each
// attempt its own. Retry logs a warning when it finds itself inside Timeout.
func Timeout(d time.Duration) framework.Middleware {
	if d <= 0 {
		panic(fmt.Sprintf("middleware.Timeout(%s): the timeout must be positive", d))
	}
	return func(next framework.Handler) framework.Handler {
		return framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			return callWithTimeout(context.WithValue(ctx, timeoutKey{}, d), next, m, d)
		})
	}
}

// timeoutKey marks a context as bounded by the Timeout middleware, so that
// Retry inside it can warn that its attempts share one deadline.
type timeoutKey struct{}

// graceAfter is how long past its deadline a handler may take to return
// before it is abandoned.
func graceAfter(d time.Duration) time.Duration {
	return min(max(d/10, 100*time.Millisecond), 5*time.Second)
}

// callWithTimeout runs next with a deadline of d, recovering panics. If the
// handler has not returned a grace period after the deadline it is
// abandoned and an ErrHandlerTimeout error returned. The abandoned handler
// gets its own copy of the Message so that later attempts do not race
// with it.
func callWithTimeout(ctx context.Context, next framework.Handler, m *framework.Message, d time.Duration) error {
	if d <= 0 {
		return safeCall(ctx, next, m)
	}
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	own := *m
	done := make(chan error, 1)
	go func() { done <- safeCall(cctx, next, &own) }()
	var err error
	select {
	case err = <-done:
	case <-cctx.Done():
		grace := time.NewTimer(graceAfter(d))
		defer grace.Stop()
		select {
		case err = <-done:
		case <-grace.C:
			if ctx.Err() != nil { // cancelled from outside (shutdown), not our deadline
				return fmt.Errorf("handler still running after cancellation; abandoned: %w", ctx.Err())
			}
			return fmt.Errorf("%w after %s: still running %s later, abandoned (its goroutine keeps running; make the handler honour ctx)",
				ErrHandlerTimeout, d, graceAfter(d))
		}
	}
	m.Attempt = own.Attempt
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) && !errors.Is(err, ErrHandlerTimeout) {
		err = fmt.Errorf("%w after %s: %w", ErrHandlerTimeout, d, err)
	}
	return err
}
