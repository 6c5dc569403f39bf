package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetkit/jetkit/framework"
)

// ErrHandlerTimeout is wrapped by the error a handler call returns when
// its deadline, RetryPolicy.AttemptTimeout, passed. A handler that
// honours its context returns soon after the deadline; one that ignores it
// and is still running a grace period later (the timeout / 10, between
// 100ms and 5s) is abandoned: the call returns an error wrapping
// ErrHandlerTimeout, the attempt is retried (or the message redelivered or
// dead-lettered), and the stuck goroutine is left to finish on its own.
//
// The timeout is part of the retry policy, not a middleware of its own, so
// that it cannot be put around Retry, where every attempt would share one
// deadline. For a deadline without retries: RetryPolicy{MaxAttempts: 1,
// AttemptTimeout: d}.
var ErrHandlerTimeout = errors.New("handler timed out")

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
